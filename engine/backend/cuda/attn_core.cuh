// The fused block-attention kernel shared by dense causal and block-sparse attention: one
// CTA of 4 warps takes 64 query rows of a pass, walks its key tiles (up to 64 keys each)
// with an online softmax (scores in log2 units, as the CPU kernels), and keeps Q, K, V, the
// scores, the probabilities and the unnormalised output rows in shared memory. Products run
// on CUDA cores (kF32) or tensor cores through wmma (kTF32: m16n16k8 tf32; kBF16:
// m16n16k16 bf16), always accumulating in float32.
#pragma once

#include <cuda_bf16.h>
#include <mma.h>

#include <cstdint>
#include <type_traits>

#include "backend/cuda/common.cuh"

namespace attnscope::cuda::attn {

__device__ __forceinline__ int64_t imin(int64_t a, int64_t b) {
  return a < b ? a : b;
}

enum class Mode { kF32, kTF32, kBF16 };

constexpr int kBQ = 64;  // query rows per CTA (16 per warp)
constexpr int kBK = 64;  // keys per tile
constexpr int kWarps = 4;
constexpr int kCtaThreads = kWarps * 32;

// One pass over (H, nq) query rows. Dense passes (rows == nullptr) are computed on the fly:
// row block b covers queries [64 b, 64 b + 64) and keys [0, min(nk, q_offset + q1)), query
// r seeing keys [0, min(nk, q_offset + r + 1)). Sparse passes give rows, tiles, lo and hi in
// pass order, with qpos / kpos mapping pass rows and keys to absolute ones (null: identity).
template <typename TIn>
struct PassArgs {
  const TIn *q, *k, *v;      // q (H, nq, d); k, v (H, nk, d)
  float* out;                // (H, nq, d): the result when last, else the accumulator state
  float *m_state, *l_state;  // (H, nq) running max (log2 units) and sum; unused when first && last
  int64_t nq, nk, q_offset;
  const int* qpos;
  const int* kpos;
  const int* lo;
  const int* hi;
  const int4* rows;   // (q0, q1, t0, t1) per row block
  const int2* tiles;  // (k0, k1) per key tile
  const int* heads;   // head of blockIdx.y (null: blockIdx.y)
  float alpha;        // log2(e) / sqrt(d)
  bool first, last;   // state starts empty / output is normalised into out
  bool reverse;       // walk row blocks last first (causal balance)
  bool vec;           // q, k, v are 16-byte aligned: rows load as 16-byte vectors
};

template <int D, Mode M>
struct Layout {
  using TS = typename std::conditional<M == Mode::kBF16, __nv_bfloat16, float>::type;
  // Shared-memory row strides (elements): +1 float breaks bank conflicts for the CUDA-core
  // loops; wmma needs strides that are multiples of 16 bytes and 32-byte aligned fragments.
  static constexpr int LD = M == Mode::kF32 ? D + 1 : (M == Mode::kTF32 ? D + 4 : D + 8);
  static constexpr int SLD = kBK + 4;                               // scores, float
  static constexpr int PLD = M == Mode::kBF16 ? kBK + 8 : kBK + 4;  // probabilities, TS
  static constexpr int OLD = D + 4;                                 // output rows, float
  static constexpr size_t round(size_t b) { return (b + 127) / 128 * 128; }
  static constexpr size_t q_off = 0;
  static constexpr size_t k_off = q_off + round(sizeof(TS) * kBQ * LD);
  static constexpr size_t v_off = k_off + round(sizeof(TS) * kBK * LD);
  static constexpr size_t s_off = v_off + round(sizeof(TS) * kBK * LD);
  static constexpr size_t p_off = s_off + round(sizeof(float) * kBQ * SLD);
  static constexpr size_t o_off = p_off + round(sizeof(TS) * kBQ * PLD);
  static constexpr size_t m_off = o_off + round(sizeof(float) * kBQ * OLD);
  static constexpr size_t l_off = m_off + round(sizeof(float) * kBQ);
  static constexpr size_t lo_off = l_off + round(sizeof(float) * kBQ);
  static constexpr size_t hi_off = lo_off + round(sizeof(int) * kBQ);
  static constexpr size_t abs_off = hi_off + round(sizeof(int) * kBQ);
  static constexpr size_t bytes = abs_off + round(sizeof(int64_t) * kBQ);
};

template <typename TS, typename TIn>
__device__ __forceinline__ TS convert(TIn x);
template <>
__device__ __forceinline__ float convert<float, float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ float convert<float, __nv_bfloat16>(__nv_bfloat16 x) {
  return __bfloat162float(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 convert<__nv_bfloat16, float>(float x) {
  return __float2bfloat16_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 convert<__nv_bfloat16, __nv_bfloat16>(__nv_bfloat16 x) {
  return x;
}

// Elements of TIn in one 16-byte load.
template <typename TIn>
constexpr int kVecElems = 16 / static_cast<int>(sizeof(TIn));

// dst[0 .. V) = src[0 .. V) converted, V = kVecElems<TIn>: one 16-byte load when vec (src
// 16-byte aligned), else V scalar loads.
template <typename TS, typename TIn>
__device__ __forceinline__ void load_vec(const TIn* src, TS* dst, bool vec) {
  constexpr int V = kVecElems<TIn>;
  if (vec) {
    const uint4 raw = __ldg(reinterpret_cast<const uint4*>(src));
    const TIn* x = reinterpret_cast<const TIn*>(&raw);
#pragma unroll
    for (int i = 0; i < V; ++i) dst[i] = convert<TS, TIn>(x[i]);
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) dst[i] = convert<TS, TIn>(src[i]);
  }
}

template <typename TS, int V>
__device__ __forceinline__ void zero_vec(TS* dst) {
#pragma unroll
  for (int i = 0; i < V; ++i) dst[i] = convert<TS, float>(0.0f);
}

inline bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

// S (16 rows of warp w, 64 keys) = Q · K^T, raw (unscaled).
template <int D, Mode M>
__device__ __forceinline__ void warp_scores(const typename Layout<D, M>::TS* Qs,
                                            const typename Layout<D, M>::TS* Ks, float* S, int warp,
                                            int lane) {
  using L = Layout<D, M>;
  namespace wmma = nvcuda::wmma;
  if constexpr (M == Mode::kF32) {
    // Lane owns key columns lane and lane + 32 for the warp's 16 rows.
    float acc[16][2];
#pragma unroll
    for (int r = 0; r < 16; ++r) acc[r][0] = acc[r][1] = 0.0f;
    const float* q0 = Qs + warp * 16 * L::LD;
    const float* k0 = Ks + lane * L::LD;
    const float* k1 = Ks + (lane + 32) * L::LD;
    for (int c = 0; c < D; ++c) {
      const float a = k0[c], b = k1[c];
#pragma unroll
      for (int r = 0; r < 16; ++r) {
        const float qv = q0[r * L::LD + c];
        acc[r][0] = fmaf(qv, a, acc[r][0]);
        acc[r][1] = fmaf(qv, b, acc[r][1]);
      }
    }
#pragma unroll
    for (int r = 0; r < 16; ++r) {
      S[(warp * 16 + r) * L::SLD + lane] = acc[r][0];
      S[(warp * 16 + r) * L::SLD + lane + 32] = acc[r][1];
    }
  } else if constexpr (M == Mode::kTF32) {
#pragma unroll
    for (int j = 0; j < kBK / 16; ++j) {
      wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
      wmma::fill_fragment(acc, 0.0f);
#pragma unroll
      for (int c = 0; c < D; c += 8) {
        wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major> b;
        wmma::load_matrix_sync(a, Qs + warp * 16 * L::LD + c, L::LD);
        wmma::load_matrix_sync(b, Ks + j * 16 * L::LD + c, L::LD);
#pragma unroll
        for (int e = 0; e < a.num_elements; ++e) a.x[e] = wmma::__float_to_tf32(a.x[e]);
#pragma unroll
        for (int e = 0; e < b.num_elements; ++e) b.x[e] = wmma::__float_to_tf32(b.x[e]);
        wmma::mma_sync(acc, a, b, acc);
      }
      wmma::store_matrix_sync(S + warp * 16 * L::SLD + j * 16, acc, L::SLD, wmma::mem_row_major);
    }
  } else {
#pragma unroll
    for (int j = 0; j < kBK / 16; ++j) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.0f);
#pragma unroll
      for (int c = 0; c < D; c += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> b;
        wmma::load_matrix_sync(a, Qs + warp * 16 * L::LD + c, L::LD);
        wmma::load_matrix_sync(b, Ks + j * 16 * L::LD + c, L::LD);
        wmma::mma_sync(acc, a, b, acc);
      }
      wmma::store_matrix_sync(S + warp * 16 * L::SLD + j * 16, acc, L::SLD, wmma::mem_row_major);
    }
  }
}

// O (16 rows of warp w, D) += P (16, 64) · V (64, D).
template <int D, Mode M>
__device__ __forceinline__ void warp_pv(const typename Layout<D, M>::TS* P,
                                        const typename Layout<D, M>::TS* Vs, float* O, int warp,
                                        int lane) {
  using L = Layout<D, M>;
  namespace wmma = nvcuda::wmma;
  if constexpr (M == Mode::kF32) {
    constexpr int C = D / 32;  // columns per lane: lane + 32 i
    float acc[16][C];
#pragma unroll
    for (int r = 0; r < 16; ++r)
#pragma unroll
      for (int i = 0; i < C; ++i) acc[r][i] = 0.0f;
    for (int t = 0; t < kBK; ++t) {
      float vv[C];
#pragma unroll
      for (int i = 0; i < C; ++i) vv[i] = Vs[t * L::LD + lane + 32 * i];
#pragma unroll
      for (int r = 0; r < 16; ++r) {
        const float p = P[(warp * 16 + r) * L::PLD + t];
#pragma unroll
        for (int i = 0; i < C; ++i) acc[r][i] = fmaf(p, vv[i], acc[r][i]);
      }
    }
#pragma unroll
    for (int r = 0; r < 16; ++r)
#pragma unroll
      for (int i = 0; i < C; ++i) O[(warp * 16 + r) * L::OLD + lane + 32 * i] += acc[r][i];
  } else if constexpr (M == Mode::kTF32) {
#pragma unroll
    for (int j = 0; j < D / 16; ++j) {
      wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
      float* o = O + warp * 16 * L::OLD + j * 16;
      wmma::load_matrix_sync(acc, o, L::OLD, wmma::mem_row_major);
#pragma unroll
      for (int t = 0; t < kBK; t += 8) {
        wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> b;
        wmma::load_matrix_sync(a, P + warp * 16 * L::PLD + t, L::PLD);
        wmma::load_matrix_sync(b, Vs + t * L::LD + j * 16, L::LD);
#pragma unroll
        for (int e = 0; e < a.num_elements; ++e) a.x[e] = wmma::__float_to_tf32(a.x[e]);
#pragma unroll
        for (int e = 0; e < b.num_elements; ++e) b.x[e] = wmma::__float_to_tf32(b.x[e]);
        wmma::mma_sync(acc, a, b, acc);
      }
      wmma::store_matrix_sync(o, acc, L::OLD, wmma::mem_row_major);
    }
  } else {
#pragma unroll
    for (int j = 0; j < D / 16; ++j) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      float* o = O + warp * 16 * L::OLD + j * 16;
      wmma::load_matrix_sync(acc, o, L::OLD, wmma::mem_row_major);
#pragma unroll
      for (int t = 0; t < kBK; t += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> b;
        wmma::load_matrix_sync(a, P + warp * 16 * L::PLD + t, L::PLD);
        wmma::load_matrix_sync(b, Vs + t * L::LD + j * 16, L::LD);
        wmma::mma_sync(acc, a, b, acc);
      }
      wmma::store_matrix_sync(o, acc, L::OLD, wmma::mem_row_major);
    }
  }
}

// Grid: x = row blocks of the pass, y = heads of the launch. 128 threads.
template <int D, Mode M, typename TIn>
__global__ void __launch_bounds__(kCtaThreads) block_attention_kernel(PassArgs<TIn> a) {
  using L = Layout<D, M>;
  using TS = typename L::TS;
  extern __shared__ __align__(128) unsigned char smem[];
  TS* Qs = reinterpret_cast<TS*>(smem + L::q_off);
  TS* Ks = reinterpret_cast<TS*>(smem + L::k_off);
  TS* Vs = reinterpret_cast<TS*>(smem + L::v_off);
  float* S = reinterpret_cast<float*>(smem + L::s_off);
  TS* P = reinterpret_cast<TS*>(smem + L::p_off);
  float* O = reinterpret_cast<float*>(smem + L::o_off);
  float* m_s = reinterpret_cast<float*>(smem + L::m_off);
  float* l_s = reinterpret_cast<float*>(smem + L::l_off);
  int* lo_s = reinterpret_cast<int*>(smem + L::lo_off);
  int* hi_s = reinterpret_cast<int*>(smem + L::hi_off);
  int64_t* abs_s = reinterpret_cast<int64_t*>(smem + L::abs_off);
  __shared__ int key_s[kBK];  // pass index of each key slot of the tile (-1: none)

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int64_t h = a.heads ? a.heads[blockIdx.y] : blockIdx.y;
  const int64_t b = a.reverse ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
  const bool dense = a.rows == nullptr;
  int64_t q0, q1;
  int t0 = 0, t1 = 0;
  int64_t kend = 0;  // dense: keys [0, kend)
  if (dense) {
    q0 = b * kBQ;
    q1 = imin(a.nq, q0 + kBQ);
    kend = imin(a.nk, a.q_offset + q1);
  } else {
    const int4 rb = a.rows[b];
    q0 = rb.x, q1 = rb.y, t0 = rb.z, t1 = rb.w;
  }
  const int nr = static_cast<int>(q1 - q0);

  // Row bookkeeping: absolute query row and allowed pass-key range of each of the 64 rows.
  for (int r = tid; r < kBQ; r += kCtaThreads) {
    if (r < nr) {
      const int64_t pr = q0 + r;
      abs_s[r] = a.qpos ? a.qpos[pr] : pr;
      lo_s[r] = dense ? 0 : a.lo[pr];
      hi_s[r] = dense ? static_cast<int>(imin(a.nk, a.q_offset + pr + 1)) : a.hi[pr];
    } else {
      abs_s[r] = -1;
      lo_s[r] = hi_s[r] = 0;
    }
  }
  __syncthreads();
  const TIn* qh = a.q + h * a.nq * D;
  const TIn* kh = a.k + h * a.nk * D;
  const TIn* vh = a.v + h * a.nk * D;
  constexpr int V = kVecElems<TIn>, G = D / V;  // 16-byte groups per row
  for (int e = tid; e < kBQ * G; e += kCtaThreads) {
    const int r = e / G, c = e % G * V;
    const int64_t ar = abs_s[r];
    if (ar >= 0)
      load_vec<TS, TIn>(qh + ar * D + c, Qs + r * L::LD + c, a.vec);
    else
      zero_vec<TS, V>(Qs + r * L::LD + c);
  }
  for (int e = tid; e < kBQ * D; e += kCtaThreads) {
    const int r = e / D, c = e % D;
    const int64_t ar = abs_s[r];
    float o = 0.0f;
    if (!a.first && ar >= 0) o = a.out[(h * a.nq + ar) * D + c];
    O[r * L::OLD + c] = o;
  }
  for (int r = tid; r < kBQ; r += kCtaThreads) {
    const int64_t ar = abs_s[r];
    const bool carry = !a.first && ar >= 0;
    m_s[r] = carry ? a.m_state[h * a.nq + ar] : -INFINITY;
    l_s[r] = carry ? a.l_state[h * a.nq + ar] : 0.0f;
  }

  int t = t0;
  int64_t kd = 0;  // dense: next key
  while (dense ? kd < kend : t < t1) {
    // This step's keys: pass keys [k0, k1), at most 64; adjacent sparse tiles are merged.
    int64_t k0, k1;
    if (dense) {
      k0 = kd;
      k1 = imin(kend, kd + kBK);
      kd = k1;
    } else {
      k0 = a.tiles[t].x;
      k1 = a.tiles[t].y;
      ++t;
      while (t < t1 && a.tiles[t].x == k1 && a.tiles[t].y - k0 <= kBK) k1 = a.tiles[t++].y;
    }
    const int nc = static_cast<int>(k1 - k0);
    __syncthreads();  // the previous step is done with K, V, P (and Q / O stores are visible)
    for (int c = tid; c < kBK; c += kCtaThreads) key_s[c] = c < nc ? static_cast<int>(k0 + c) : -1;
    for (int e = tid; e < kBK * G; e += kCtaThreads) {
      const int r = e / G, c = e % G * V;
      if (r < nc) {
        const int64_t pk = k0 + r;
        const int64_t ak = a.kpos ? a.kpos[pk] : pk;
        load_vec<TS, TIn>(kh + ak * D + c, Ks + r * L::LD + c, a.vec);
        load_vec<TS, TIn>(vh + ak * D + c, Vs + r * L::LD + c, a.vec);
      } else {
        zero_vec<TS, V>(Ks + r * L::LD + c);
        zero_vec<TS, V>(Vs + r * L::LD + c);
      }
    }
    __syncthreads();

    warp_scores<D, M>(Qs, Ks, S, warp, lane);
    __syncwarp();

    // Online softmax over the warp's 16 rows; lane owns key columns lane and lane + 32.
    for (int rr = 0; rr < 16; ++rr) {
      const int r = warp * 16 + rr;
      const int lo = lo_s[r], hi = hi_s[r];
      float s[2];
#pragma unroll
      for (int u = 0; u < 2; ++u) {
        const int col = lane + 32 * u;
        const int key = key_s[col];
        const bool ok = key >= 0 && key >= lo && key < hi;
        s[u] = ok ? S[r * L::SLD + col] * a.alpha : -INFINITY;
      }
      const float mx = warp_max(fmaxf(s[0], s[1]));
      const float m_old = m_s[r];
      const float m_new = fmaxf(m_old, mx);
      float p[2] = {0.0f, 0.0f};
      float corr = 1.0f;
      if (m_new != -INFINITY) {  // else nothing allowed yet: the row stays empty
        p[0] = exp2f(s[0] - m_new);
        p[1] = exp2f(s[1] - m_new);
        corr = exp2f(m_old - m_new);
      }
      const float sum = warp_sum(p[0] + p[1]);
      P[r * L::PLD + lane] = convert<TS, float>(p[0]);
      P[r * L::PLD + lane + 32] = convert<TS, float>(p[1]);
      if (corr != 1.0f)
        for (int c = lane; c < D; c += 32) O[r * L::OLD + c] *= corr;
      __syncwarp();
      if (lane == 0) {
        m_s[r] = m_new;
        l_s[r] = l_s[r] * corr + sum;
      }
    }
    __syncwarp();
    warp_pv<D, M>(P, Vs, O, warp, lane);
  }
  __syncthreads();

  // Write back: the normalised output, or the state for the next pass.
  float* oh = a.out + h * a.nq * D;
  for (int e = tid; e < kBQ * D; e += kCtaThreads) {
    const int r = e / D, c = e % D;
    const int64_t ar = abs_s[r];
    if (ar < 0) continue;
    const float o = O[r * L::OLD + c];
    if (a.last) {
      const float l = l_s[r];
      oh[ar * D + c] = l > 0.0f ? o / l : 0.0f;
    } else {
      oh[ar * D + c] = o;
    }
  }
  if (!a.last)
    for (int r = tid; r < kBQ; r += kCtaThreads) {
      const int64_t ar = abs_s[r];
      if (ar < 0) continue;
      a.m_state[h * a.nq + ar] = m_s[r];
      a.l_state[h * a.nq + ar] = l_s[r];
    }
}

// Launches one pass over blocks row blocks for n_heads heads.
template <int D, Mode M, typename TIn>
Status launch_pass(CudaCtx& ctx, const PassArgs<TIn>& args, int64_t blocks, int n_heads) {
  if (blocks <= 0 || n_heads <= 0) return Status::ok();
  if (blocks > INT32_MAX || n_heads > 65535)
    return invalid_argument("attention: " + std::to_string(blocks) + " row blocks x " +
                            std::to_string(n_heads) + " heads exceed the launch grid");
  using L = Layout<D, M>;
  auto kernel = block_attention_kernel<D, M, TIn>;
  ATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(L::bytes)));
  dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(n_heads));
  kernel<<<grid, kCtaThreads, L::bytes, ctx.stream>>>(args);
  ATTN_CUDA_CHECK_LAUNCH();
  return Status::ok();
}

// Dispatch over head width and precision; d must be 32, 64 or 128.
template <typename TIn>
Status run_pass(CudaCtx& ctx, const PassArgs<TIn>& args, int64_t blocks, int n_heads, int d,
                Mode mode) {
  switch (d) {
#define ATTN_CASE(DD)                                                                              \
  case DD:                                                                                         \
    if (mode == Mode::kF32) return launch_pass<DD, Mode::kF32, TIn>(ctx, args, blocks, n_heads);   \
    if (mode == Mode::kTF32) return launch_pass<DD, Mode::kTF32, TIn>(ctx, args, blocks, n_heads); \
    return launch_pass<DD, Mode::kBF16, TIn>(ctx, args, blocks, n_heads);
    ATTN_CASE(32)
    ATTN_CASE(64)
    ATTN_CASE(128)
#undef ATTN_CASE
    default:
      return unsupported("CUDA attention runs head widths 32, 64 and 128; this layer has d = " +
                         std::to_string(d));
  }
}

inline Mode mode_of(CudaPrecision p) {
  return p == CudaPrecision::kF32    ? Mode::kF32
         : p == CudaPrecision::kTF32 ? Mode::kTF32
                                     : Mode::kBF16;
}

}  // namespace attnscope::cuda::attn
