// Backends: the CPU always; CUDA when the build has it and a device answers. A backend says
// which ops it runs; whatever it declines runs on the CPU (the ordinary path, not an error).
#pragma once

#include <memory>
#include <string>

#include "attnscope/config.h"
#include "attnscope/cuda.h"
#include "attnscope/model.h"
#include "attnscope/status.h"

namespace attnscope {

enum class BackendKind { kCpu, kCuda };

struct BackendChoice {
  BackendKind kind = BackendKind::kCpu;
  std::string note;  // one informative line: which backend and why
};
// Picks CUDA when asked for and available (backend_cuda_device_count, cuda.h), else the CPU;
// never fails.
BackendChoice backend_select(bool want_cuda);

// ---- models on the device --------------------------------------------------------------
// A Model whose forward is the family's one graph (models/family_graph.h) run by the CUDA
// executor (weights uploaded once), for every family; its decode step is the same graph on one
// row with device K/V caches for the dense and sparse families (the others' decode_step returns
// unsupported, and model_create_placed generates with them on the CPU). The attention views run
// on the CPU over the same weights. Head widths other than 32, 64 and 128 are unsupported.
Expected<std::unique_ptr<Model>> model_create_cuda(const ModelConfig& cfg, const WeightMap& w,
                                                   CudaPrecision p);

// ---- where a model runs ----------------------------------------------------------------
enum class ModelUse { kForward, kGenerate };
struct ModelPlacement {
  std::unique_ptr<Model> model;
  bool on_cuda = false;
  // One informative line: "backend: cuda (NVIDIA H200, compute capability 9.0, driver 13.0;
  // bf16)" or "backend: cpu (why not cuda)"; "backend: cpu" when the CPU was asked for.
  std::string note;
};
// The model for cfg and weights on the CPU, or on the GPU when want_cuda and the build has
// CUDA, a device answers and the device runs what use needs (the Reformer's decode does not).
// Whatever keeps it off the device is a note, not an error: the CPU model runs instead.
// Errors are what the CPU refuses too (invalid configuration, missing weights).
Expected<ModelPlacement> model_create_placed(const ModelConfig& cfg, WeightMap weights,
                                             bool want_cuda, CudaPrecision p, ModelUse use);

}  // namespace attnscope
