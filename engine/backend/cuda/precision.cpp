// CUDA precision names, the same in every build (with or without the CUDA backend), so that
// flags parse and messages name the precision even where no device code exists.
#include <algorithm>
#include <cctype>

#include "attnscope/cuda.h"

namespace attnscope {

const char* cuda_precision_name(CudaPrecision p) {
  switch (p) {
    case CudaPrecision::kF32:
      return "f32";
    case CudaPrecision::kTF32:
      return "tf32";
    case CudaPrecision::kBF16:
      return "bf16";
  }
  return "f32";
}

Expected<CudaPrecision> cuda_precision_from_name(const std::string& s) {
  std::string t = s;
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t == "f32" || t == "fp32" || t == "float32") return CudaPrecision::kF32;
  if (t == "tf32") return CudaPrecision::kTF32;
  if (t == "bf16" || t == "bfloat16") return CudaPrecision::kBF16;
  return invalid_argument("unknown CUDA precision '" + s + "' (f32, tf32 or bf16)");
}

}  // namespace attnscope
