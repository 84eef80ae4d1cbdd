// The model file: safetensors with the configuration in its metadata. Writing is atomic;
// reading memory-maps the file and refuses anything malformed with a message naming the fault.
// The byte layout, the keys and every rule the reader enforces are in engine/io/FORMAT.md.
#pragma once

#include <cstddef>
#include <string>

#include "attnscope/config.h"
#include "attnscope/model.h"
#include "attnscope/status.h"

namespace attnscope {

// How tensors are stored in the file; in memory they are always float32.
enum class DType { kF32, kF16, kBF16 };
const char* dtype_name(DType d);  // "F32", "F16", "BF16": the safetensors spelling

struct LoadedModel {
  ModelConfig cfg;    // resolved and validated
  WeightMap weights;  // F32 tensors borrow the mapped file; F16/BF16 are converted copies
  size_t file_bytes = 0;
};

// Writes cfg (resolved) and w to path: to a temporary file in the same folder, then renamed
// over path, so path is either the old file or the complete new one. Refuses weights that do
// not match cfg, that are not finite, or that do not fit dtype.
Status safetensors_save(const std::string& path, const ModelConfig& cfg, const WeightMap& w,
                        DType dtype = DType::kF32);
// The safetensors format alone, by the rules of its reference library (huggingface/safetensors;
// tests/data/safetensors/reference.tsv holds its verdict on our corpus): ok for any well-formed
// safetensors file, whatever its dtypes or metadata, else the first fault. safetensors_load
// applies exactly these rules first, then Attnscope's own (engine/io/FORMAT.md section 5).
Status safetensors_check_format(const std::string& path);
// kNotFound when path does not exist; kInvalidArgument, with the file name and the fault,
// for anything that is not a well-formed Attnscope model file.
Expected<LoadedModel> safetensors_load(const std::string& path);

}  // namespace attnscope
