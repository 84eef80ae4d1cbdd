// Decode attention on the device: one query per head against a KV cache, over the first
// n_keys rows (attn_dense_decode_cpu) or only the keys of a Sparse Transformer pattern
// A(i) (attn_sparse_decode_cpu). Split over the keys: CTAs of 4 warps each reduce a key
// range with an online softmax, a second kernel merges the ranges per head. Key counts and
// positions may be read on the device, so a captured CUDA graph replays for every position.
#include <cmath>

#include "attention/sparse_keys.h"
#include "backend/cuda/common.cuh"

namespace attnscope::cuda {

namespace {

constexpr int kDecodeWarps = 4;
constexpr int kMaxD = 256;  // head width limit: 8 values per lane
constexpr int64_t kKeysPerSplit = 256;
constexpr int kMaxSplits = 128;

// Which keys a head reads: all of 0 .. n_keys-1 (dense), or a Sparse Transformer pattern
// whose sets and keys are attention/sparse_keys.h's, the CPU's own definitions.
struct Pattern {
  bool sparse;
  SparseConfig cfg;  // sparse only
  int layer, heads;
  int64_t n_keys, i;          // host values
  const int64_t* n_keys_dev;  // dense: read instead of n_keys when not null
  const int64_t* i_dev;       // sparse: read instead of i when not null
};

// Grid (heads, splits), kDecodeWarps warps. part (H, splits, d + 2): acc (d), m, l.
__global__ void decode_partial_kernel(Pattern p, const float* q, const float* kc, const float* vc,
                                      int64_t cap, int d, int64_t chunk, float alpha, float* part) {
  __shared__ float sm[kDecodeWarps], sl[kDecodeWarps];
  __shared__ float sacc[kDecodeWarps][kMaxD];
  const int head = blockIdx.x, split = blockIdx.y, splits = gridDim.y;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int64_t n;
  detail::SparseKeys keys;
  int64_t i = 0;
  if (!p.sparse) {
    n = p.n_keys_dev ? *p.n_keys_dev : p.n_keys;
  } else {
    i = p.i_dev ? *p.i_dev : p.i;
    keys = detail::sparse_keys_of(p.cfg,
                                  detail::sparse_head_set(p.cfg.combine, p.layer, head, p.heads));
    n = detail::sparse_key_count(keys, i);
  }
  const int64_t t0 = split * chunk, t1 = min(n, t0 + chunk);
  const float* qh = q + static_cast<int64_t>(head) * d;
  const float* kh = kc + static_cast<int64_t>(head) * cap * d;
  const float* vh = vc + static_cast<int64_t>(head) * cap * d;
  constexpr int R = kMaxD / 32;
  float qv[R], acc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int c = lane + 32 * r;
    qv[r] = c < d ? qh[c] * alpha : 0.0f;
    acc[r] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int64_t t = t0 + warp; t < t1; t += kDecodeWarps) {
    const int64_t j = p.sparse ? detail::sparse_key_at(keys, i, t) : t;
    const float* kr = kh + j * d;
    const float* vr = vh + j * d;
    float dot = 0.0f;
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int c = lane + 32 * r;
      if (c < d) dot = fmaf(qv[r], kr[c], dot);
    }
    const float s = warp_sum(dot);
    const float m_new = fmaxf(m, s);
    const float corr = exp2f(m - m_new), w = exp2f(s - m_new);
    l = l * corr + w;
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int c = lane + 32 * r;
      acc[r] = acc[r] * corr + (c < d ? w * vr[c] : 0.0f);
    }
    m = m_new;
  }
  if (lane == 0) sm[warp] = m, sl[warp] = l;
#pragma unroll
  for (int r = 0; r < R; ++r) sacc[warp][lane + 32 * r] = acc[r];
  __syncthreads();
  float M = -INFINITY;
  for (int w = 0; w < kDecodeWarps; ++w) M = fmaxf(M, sm[w]);
  float* out = part + (static_cast<int64_t>(head) * splits + split) * (d + 2);
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float s = 0.0f;
    for (int w = 0; w < kDecodeWarps; ++w)
      if (sm[w] != -INFINITY) s += sacc[w][c] * exp2f(sm[w] - M);
    out[c] = s;
  }
  if (threadIdx.x == 0) {
    float L = 0.0f;
    for (int w = 0; w < kDecodeWarps; ++w)
      if (sm[w] != -INFINITY) L += sl[w] * exp2f(sm[w] - M);
    out[d] = M;
    out[d + 1] = L;
  }
}

// Grid heads; out (H, d) = merged partials, zeros when no key.
__global__ void decode_merge_kernel(const float* part, int splits, int d, float* out) {
  const int head = blockIdx.x;
  const float* ph = part + static_cast<int64_t>(head) * splits * (d + 2);
  float M = -INFINITY;
  for (int s = 0; s < splits; ++s) M = fmaxf(M, ph[s * (d + 2) + d]);
  float L = 0.0f;
  for (int s = 0; s < splits; ++s) {
    const float ms = ph[s * (d + 2) + d];
    if (ms != -INFINITY) L += ph[s * (d + 2) + d + 1] * exp2f(ms - M);
  }
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float a = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float ms = ph[s * (d + 2) + d];
      if (ms != -INFINITY) a += ph[s * (d + 2) + c] * exp2f(ms - M);
    }
    out[static_cast<int64_t>(head) * d + c] = L > 0.0f ? a / L : 0.0f;
  }
}

// max_keys bounds the count of every head (for the split geometry).
Status run_decode(CudaCtx& ctx, const Pattern& p, const float* q, const float* kc, const float* vc,
                  float* out, int heads, int64_t cap, int d, int64_t max_keys) {
  if (heads <= 0) return Status::ok();
  if (d <= 0 || d > kMaxD)
    return unsupported("CUDA decode runs head widths 1.." + std::to_string(kMaxD) + ", not " +
                       std::to_string(d));
  if (heads > INT32_MAX) return invalid_argument("decode: too many heads");
  const int64_t splits =
      std::clamp<int64_t>((max_keys + kKeysPerSplit - 1) / kKeysPerSplit, 1, kMaxSplits);
  const int64_t chunk = std::max<int64_t>(1, (max_keys + splits - 1) / splits);
  auto st = ctx.scratch(sizeof(float) * static_cast<size_t>(heads * splits * (d + 2)), 1);
  if (!st) return st.status();
  float* part = static_cast<float*>(*st);
  const float alpha = 1.4426950408889634f / std::sqrt(static_cast<float>(d));
  decode_partial_kernel<<<dim3(static_cast<unsigned>(heads), static_cast<unsigned>(splits)),
                          kDecodeWarps * 32, 0, ctx.stream>>>(p, q, kc, vc, cap, d, chunk, alpha,
                                                              part);
  ATTN_CUDA_CHECK_LAUNCH();
  decode_merge_kernel<<<static_cast<unsigned>(heads), 128, 0, ctx.stream>>>(
      part, static_cast<int>(splits), d, out);
  ATTN_CUDA_CHECK_LAUNCH();
  return Status::ok();
}

}  // namespace

Status attn_decode_dense(CudaCtx& ctx, const float* q, const float* kcache, const float* vcache,
                         float* out, int heads, int64_t cap, int64_t n_keys, int d,
                         const int64_t* n_keys_dev) {
  if (!n_keys_dev && (n_keys < 0 || n_keys > cap))
    return invalid_argument("decode: n_keys " + std::to_string(n_keys) + " outside 0.." +
                            std::to_string(cap));
  Pattern p{};
  p.sparse = false;
  p.n_keys = n_keys;
  p.n_keys_dev = n_keys_dev;
  return run_decode(ctx, p, q, kcache, vcache, out, heads, cap, d, n_keys_dev ? cap : n_keys);
}

Status attn_decode_sparse(CudaCtx& ctx, const float* q, const float* kcache, const float* vcache,
                          float* out, int heads, int64_t cap, int64_t i, int d,
                          const SparseConfig& cfg, int layer, const int64_t* i_dev) {
  ATTN_RETURN_IF_ERROR(attn_sparse_validate(cfg));
  if (!i_dev && (i < 0 || i >= cap))
    return invalid_argument("sparse decode: position " + std::to_string(i) + " outside 0.." +
                            std::to_string(cap - 1));
  Pattern p{};
  p.sparse = true;
  p.cfg = cfg;
  p.layer = layer;
  p.heads = heads;
  p.i = i;
  p.i_dev = i_dev;
  // The largest |A(i)| for i < cap (or i itself): A1 has at most l keys; A2 at most
  // i/l + 1 (strided) or (i/l + 1) c (fixed).
  const int64_t top = i_dev ? cap - 1 : i;
  const int64_t l = cfg.stride;
  const int64_t bound = l + (cfg.pattern == SparsePattern::kStrided
                                 ? top / l + 1
                                 : (top / l + 1) * static_cast<int64_t>(cfg.summary));
  return run_decode(ctx, p, q, kcache, vcache, out, heads, cap, d, bound);
}

}  // namespace attnscope::cuda
