// The CUDA backend's public entry points: precisions, device discovery and the benchmarks
// (models on the device and where a model runs: backend.h; the host-pointer kernel entry
// points the parity tests call: engine/backend/cuda/testing.h). Every function exists in
// every build: without CUDA (or without a device) it returns an unsupported / not-found
// Status whose message says why, so callers print a SKIP line.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "attnscope/attention.h"
#include "attnscope/config.h"
#include "attnscope/status.h"

namespace attnscope {

// Arithmetic of matrix products and attention: float32, TF32 tensor cores (float32
// storage), or bf16 storage with float32 accumulation.
enum class CudaPrecision { kF32, kTF32, kBF16 };
const char* cuda_precision_name(CudaPrecision p);
Expected<CudaPrecision> cuda_precision_from_name(const std::string& s);

// Device discovery, for backend_select (backend.h) and every caller deciding where to run.
// Number of CUDA devices; 0 when the build has no CUDA or there is no driver or device.
int backend_cuda_device_count(std::string* why_none);
// Whether the CUDA backend runs an op (names as engine/backend/cuda/device.cu lists them:
// "attn_dense", "attn_sparse_backward", "decode_lsh", ...); false for every op in a build
// without CUDA. What it declines runs on the CPU: the Reformer's decode ("decode_lsh") and
// LSH attention's backward ("attn_lsh_backward").
bool backend_cuda_supports(const char* op_name);

// ok when a device answers; else why not ("this build has no CUDA backend", "no CUDA
// device: ..."). Device name, compute capability and driver version in *info.
Status cuda_available(std::string* info = nullptr);

// ---- benchmarks (device-resident data, CUDA events) ----------------------------------------
struct CudaBenchRow {
  std::string what;  // "dense causal", "block-sparse strided", "bf16 gemm"
  int64_t n = 0;
  int heads = 0, d = 0;
  double ms = 0;       // median of timed runs
  double tflops = 0;   // counted as 4 * N^2 * H * d / 2 for causal attention
  double density = 1;  // block-sparse: share of the causal pairs evaluated
};
// Dense causal forward at each length for head widths in ds (bf16 unless p says otherwise),
// block-sparse (strided, l = sqrt N) at the same lengths, and a bf16 GEMM rate of the same
// run as the hardware anchor.
Expected<std::vector<CudaBenchRow>> cuda_bench_attention(const std::vector<int64_t>& lengths,
                                                         const std::vector<int>& ds,
                                                         int total_width, CudaPrecision p);

}  // namespace attnscope
