// Dense causal attention with a query offset on the device (attn_dense_forward_cpu's
// semantics): one pass of the fused block kernel of attn_core.cuh with its layout computed
// on the fly, row blocks launched last first so that the long causal rows start early.
#include <cmath>

#include "backend/cuda/attn_core.cuh"

namespace attnscope::cuda {

namespace {

Status check_dense(int heads, int64_t nq, int64_t nk, int d, int64_t q_offset) {
  if (heads < 0 || nq < 0 || nk < 0 || d <= 0 || q_offset < 0)
    return invalid_argument("attn_dense: heads, nq, nk, q_offset must be >= 0 and d > 0");
  if (nk >= INT32_MAX || q_offset >= INT32_MAX)
    return invalid_argument("attn_dense: key length " + std::to_string(nk) + " exceeds 2^31");
  return Status::ok();
}

// q (H, nq, d); k, v (H, nk, d); out (H, nq, d).
template <typename TIn>
Status dense_impl(CudaCtx& ctx, const TIn* q, const TIn* k, const TIn* v, float* out, int heads,
                  int64_t nq, int64_t nk, int d, int64_t q_offset, attn::Mode mode) {
  ATTN_RETURN_IF_ERROR(check_dense(heads, nq, nk, d, q_offset));
  if (heads == 0 || nq == 0) return Status::ok();
  if (nk == 0) {  // no key at all: every row is zeros, as on the CPU
    ATTN_CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(float) * heads * nq * d, ctx.stream));
    return Status::ok();
  }
  attn::PassArgs<TIn> a{};
  a.q = q, a.k = k, a.v = v, a.out = out;
  a.nq = nq, a.nk = nk, a.q_offset = q_offset;
  a.alpha = 1.4426950408889634f / std::sqrt(static_cast<float>(d));
  a.first = a.last = true;
  a.reverse = true;
  a.vec = attn::aligned16(q) && attn::aligned16(k) && attn::aligned16(v);
  return attn::run_pass(ctx, a, (nq + attn::kBQ - 1) / attn::kBQ, heads, d, mode);
}

}  // namespace

Status attn_dense(CudaCtx& ctx, const float* q, const float* k, const float* v, float* out,
                  int heads, int64_t nq, int64_t nk, int d, int64_t q_offset, CudaPrecision p) {
  return dense_impl(ctx, q, k, v, out, heads, nq, nk, d, q_offset, attn::mode_of(p));
}

Status attn_dense_bf16(CudaCtx& ctx, const __nv_bfloat16* q, const __nv_bfloat16* k,
                       const __nv_bfloat16* v, float* out, int heads, int64_t nq, int64_t nk, int d,
                       int64_t q_offset) {
  return dense_impl(ctx, q, k, v, out, heads, nq, nk, d, q_offset, attn::Mode::kBF16);
}

}  // namespace attnscope::cuda
