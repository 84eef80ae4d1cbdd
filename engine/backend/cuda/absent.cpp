// cuda.h in a build without the CUDA backend: every entry point answers unsupported with the
// reason, so callers print a SKIP line or fall back to the CPU (precision names:
// cuda/precision.cpp).
#ifndef ATTNSCOPE_HAVE_CUDA

#include "backend/cuda/testing.h"

namespace attnscope {

namespace {
Status absent() {
  return unsupported(
      "this build has no CUDA backend (configured with ATTNSCOPE_CUDA=OFF or no nvcc)");
}
}  // namespace

int backend_cuda_device_count(std::string* why_none) {
  if (why_none) *why_none = absent().message();
  return 0;
}
bool backend_cuda_supports(const char*) {
  return false;
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

Status cuda_matmul_backward(const float*, const float*, const float*, float*, float*, int64_t,
                            int64_t, int64_t, CudaPrecision) {
  return absent();
}
Status cuda_layernorm_backward(const float*, const float*, const float*, float*, float*, float*,
                               int64_t, int64_t) {
  return absent();
}
Status cuda_gelu_backward(const float*, const float*, float*, int64_t) {
  return absent();
}
Status cuda_embed_backward(const uint8_t*, const float*, float*, int64_t, int64_t) {
  return absent();
}
Status cuda_xent_backward(const float*, const uint8_t*, float*, double*, int64_t, float) {
  return absent();
}
Status cuda_attn_dense_backward(const float*, const float*, const float*, const float*, float*,
                                float*, float*, int, int64_t, int64_t, int, int64_t,
                                CudaPrecision) {
  return absent();
}
Status cuda_attn_sparse_backward(const float*, const float*, const float*, const float*, float*,
                                 float*, float*, int, int64_t, int, const SparseConfig&, int,
                                 CudaPrecision) {
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

}  // namespace attnscope

#endif  // ATTNSCOPE_HAVE_CUDA
