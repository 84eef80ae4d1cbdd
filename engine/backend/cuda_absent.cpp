// cuda.h in a build without the CUDA backend: every entry point answers unsupported with the
// reason, so callers print a SKIP line or fall back to the CPU. Precision names still parse.
#ifndef ATTNSCOPE_HAVE_CUDA

#include <algorithm>
#include <cctype>

#include "attnscope/cuda.h"

namespace attnscope {

namespace {
Status absent() {
  return unsupported("this build has no CUDA backend (nvcc not found at configure time)");
}
}  // namespace

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

Status cuda_available(std::string* info) {
  if (info) info->clear();
  return absent();
}

Status cuda_matmul(const float*, const float*, float*, int64_t, int64_t, int64_t, CudaPrecision) {
  return absent();
}
Status cuda_layernorm(const float*, const float*, const float*, float*, int64_t, int64_t) {
  return absent();
}
Status cuda_gelu(float*, int64_t) {
  return absent();
}

Status cuda_attn_dense_forward(const float*, const float*, const float*, float*, int, int64_t,
                               int64_t, int, int64_t, CudaPrecision) {
  return absent();
}
Status cuda_attn_sparse_forward(const float*, const float*, const float*, float*, int, int64_t, int,
                                const SparseConfig&, int, CudaPrecision) {
  return absent();
}
Status cuda_attn_lsh_forward(const float*, const float*, float*, int, int64_t, int, const LshSpec&,
                             const float*, LshTrace*) {
  return absent();
}
Status cuda_attn_dense_decode(const float*, const float*, const float*, float*, int, int64_t,
                              int64_t, int) {
  return absent();
}
Status cuda_attn_sparse_decode(const float*, const float*, const float*, float*, int, int64_t,
                               int64_t, int, const SparseConfig&, int) {
  return absent();
}

Expected<int> cuda_sample_token(const float*, float, int, float, double) {
  return absent();
}

Expected<std::vector<CudaBenchRow>> cuda_bench_attention(const std::vector<int64_t>&,
                                                         const std::vector<int>&, int,
                                                         CudaPrecision) {
  return absent();
}

Expected<std::unique_ptr<Model>> model_create_cuda(const ModelConfig&, const WeightMap&,
                                                   CudaPrecision) {
  return absent();
}

}  // namespace attnscope

#endif  // ATTNSCOPE_HAVE_CUDA
