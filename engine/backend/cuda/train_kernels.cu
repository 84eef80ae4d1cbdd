// The backward (training) ops of backend/cuda/testing.h on the device: matrix product (cuBLAS,
// cuBLASLt for bf16), layer norm, GELU, embedding scatter, cross-entropy head, and fused
// FlashAttention-2 style attention backward (dense causal with query offset, block-sparse).
#include <algorithm>
#include <climits>
#include <cmath>
#include <initializer_list>
#include <utility>
#include <vector>

#include "backend/cuda/sparse_plan.cuh"

namespace attnscope {
namespace cuda {
namespace {

// ---- matrix product backward -------------------------------------------------------------

// dst (cols, rows) = bf16 of src (rows, cols) transposed.
__global__ void transpose_bf16_kernel(const float* __restrict__ src,
                                      __nv_bfloat16* __restrict__ dst, int64_t rows, int64_t cols) {
  const int64_t total = rows * cols;
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < total;
       e += int64_t{gridDim.x} * blockDim.x) {
    const int64_t c = e / rows, r = e % rows;  // e indexes dst (cols, rows)
    dst[e] = __float2bfloat16_rn(src[r * cols + c]);
  }
}

// Row-major c (m, n) = a (m, k) · b (k, n): da (m, k) += dc · bᵀ, db (k, n) += aᵀ · dc.
// da or db may be null (not wanted). Device pointers.
Status matmul_backward_dev(CudaCtx& ctx, const float* a, const float* b, const float* dc, float* da,
                           float* db, int64_t m, int64_t k, int64_t n, CudaPrecision p) {
  if (m < 0 || k < 0 || n < 0 || m > INT_MAX || k > INT_MAX || n > INT_MAX)
    return invalid_argument("cuda_matmul_backward: sizes m=" + std::to_string(m) +
                            " k=" + std::to_string(k) + " n=" + std::to_string(n) +
                            " must be in 0.." + std::to_string(INT_MAX));
  if (m == 0 || k == 0 || n == 0) return Status::ok();  // every product is empty or zero
  const int M = static_cast<int>(m), K = static_cast<int>(k), N = static_cast<int>(n);
  if (p == CudaPrecision::kBF16) {
    // Scratch slot 3 holds dc16 (m, n), bt16 (n, k) = bᵀ and at16 (k, m) = aᵀ, each rounded up
    // to 128 elements (256 bytes); the products are cuBLASLt's plain row-major ones.
    auto up = [](int64_t x) { return (x + 127) / 128 * 128; };
    const int64_t n_dc = up(m * n), n_bt = up(n * k), n_at = up(k * m);
    auto s = ctx.scratch(sizeof(__nv_bfloat16) * static_cast<size_t>(n_dc + n_bt + n_at), 3);
    if (!s) return s.status();
    auto* dc16 = static_cast<__nv_bfloat16*>(*s);
    __nv_bfloat16* bt16 = dc16 + n_dc;
    __nv_bfloat16* at16 = bt16 + n_bt;
    ATTN_RETURN_IF_ERROR(to_bf16(ctx, dc, dc16, m * n));
    if (da) {
      transpose_bf16_kernel<<<grid_for(k * n), kThreads, 0, ctx.stream>>>(b, bt16, k, n);
      ATTN_CUDA_CHECK_LAUNCH();
      // da (m, k) += dc (m, n) · bᵀ (n, k)
      ATTN_RETURN_IF_ERROR(lt_matmul_bf16(ctx, dc16, bt16, da, CUDA_R_32F, m, n, k, 1.0f));
    }
    if (db) {
      transpose_bf16_kernel<<<grid_for(m * k), kThreads, 0, ctx.stream>>>(a, at16, m, k);
      ATTN_CUDA_CHECK_LAUNCH();
      // db (k, n) += aᵀ (k, m) · dc (m, n)
      ATTN_RETURN_IF_ERROR(lt_matmul_bf16(ctx, at16, dc16, db, CUDA_R_32F, k, m, n, 1.0f));
    }
    return Status::ok();
  }
  const float one = 1.0f;
  const cublasComputeType_t compute =
      p == CudaPrecision::kTF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  // cuBLAS is column-major: a row-major (r, c) matrix is its transpose (c, r) with ld c.
  if (da) {
    // daᵀ (k, m) = b (k, n) · dcᵀ (n, m): b is stored as bᵀ (n, k) -> op T; dc as dcᵀ (n, m).
    ATTN_CUDA_CHECK(cublasGemmEx(ctx.cublas, CUBLAS_OP_T, CUBLAS_OP_N, K, M, N, &one, b, CUDA_R_32F,
                                 N, dc, CUDA_R_32F, N, &one, da, CUDA_R_32F, K, compute,
                                 CUBLAS_GEMM_DEFAULT));
  }
  if (db) {
    // dbᵀ (n, k) = dcᵀ (n, m) · a (m, k): a is stored as aᵀ (k, m) -> op T.
    ATTN_CUDA_CHECK(cublasGemmEx(ctx.cublas, CUBLAS_OP_N, CUBLAS_OP_T, N, K, M, &one, dc,
                                 CUDA_R_32F, N, a, CUDA_R_32F, K, &one, db, CUDA_R_32F, N, compute,
                                 CUBLAS_GEMM_DEFAULT));
  }
  return Status::ok();
}

// ---- layer norm, GELU, embedding, cross-entropy --------------------------------------------

// One block per row of x (n, D), statistics in double as the CPU's backward:
// dx += inv * (dxh - mean(dxh) - xhat * mean(dxh * xhat)), dxh = dy * g. stats (n, 2) gets
// each row's mean and 1/std for the dg pass. dx may be null.
__global__ void layernorm_bwd_rows_kernel(const float* __restrict__ x, const float* __restrict__ g,
                                          const float* __restrict__ dy, float* __restrict__ dx,
                                          double* __restrict__ stats, int64_t D) {
  __shared__ double red[kThreads / 32];
  const int64_t row = blockIdx.x;
  const float* xr = x + row * D;
  const float* dyr = dy + row * D;
  double mean, inv;
  row_mean_inv_std(xr, D, red, &mean, &inv);
  double s1 = 0.0, s2 = 0.0;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    const double dxh = static_cast<double>(dyr[i]) * g[i];
    s1 += dxh;
    s2 += dxh * (xr[i] - mean) * inv;
  }
  s1 = block_sum(s1, red) / static_cast<double>(D);
  s2 = block_sum(s2, red) / static_cast<double>(D);
  if (dx) {
    float* dxr = dx + row * D;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
      const double xh = (xr[i] - mean) * inv;
      const double dxh = static_cast<double>(dyr[i]) * g[i];
      dxr[i] += static_cast<float>(inv * (dxh - s1 - xh * s2));
    }
  }
  if (threadIdx.x == 0) {
    stats[2 * row] = mean;
    stats[2 * row + 1] = inv;
  }
}

// One thread per column i of (n, D): dg[i] += sum_r dy * xhat, db[i] += sum_r dy (double sums
// in row order). dg or db may be null.
__global__ void layernorm_bwd_cols_kernel(const float* __restrict__ x, const float* __restrict__ dy,
                                          const double* __restrict__ stats, float* __restrict__ dg,
                                          float* __restrict__ db, int64_t n, int64_t D) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < D;
       i += int64_t{gridDim.x} * blockDim.x) {
    double sg = 0.0, sb = 0.0;
    for (int64_t r = 0; r < n; ++r) {
      const double dyv = dy[r * D + i];
      sg += dyv * ((x[r * D + i] - stats[2 * r]) * stats[2 * r + 1]);
      sb += dyv;
    }
    if (dg) dg[i] += static_cast<float>(sg);
    if (db) db[i] += static_cast<float>(sb);
  }
}

// dx += dy * gelu'(x) for GPT-2's tanh GELU 0.5 v (1 + tanh u), u = k (v + c v^3).
__global__ void gelu_bwd_kernel(const float* __restrict__ x, const float* __restrict__ dy,
                                float* __restrict__ dx, int64_t count) {
  const float kc = 0.7978845608028654f, c = 0.044715f;
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < count;
       e += int64_t{gridDim.x} * blockDim.x) {
    const float v = x[e];
    const float t = tanhf(kc * (v + c * v * v * v));
    const float dv = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * kc * (1.0f + 3.0f * c * v * v);
    dx[e] += dy[e] * dv;
  }
}

// dtable (256, D) += row r of dy (n, D) at row tokens[r] (atomics: tokens repeat).
__global__ void embed_bwd_kernel(const uint8_t* __restrict__ tokens, const float* __restrict__ dy,
                                 float* __restrict__ dtable, int64_t n, int64_t D) {
  const int64_t total = n * D;
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < total;
       e += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = e / D, i = e % D;
    atomicAdd(dtable + static_cast<int64_t>(tokens[r]) * D + i, dy[e]);
  }
}

// One block of kVocab (256) threads per row of logits (n, 256), one logit each: logsumexp in
// double as the CPU, dlogits += coef * (softmax - onehot), row_loss[r] = lse - logit[target]
// in nats.
__global__ void __launch_bounds__(kVocab)
    xent_bwd_kernel(const float* __restrict__ logits, const uint8_t* __restrict__ targets,
                    float* __restrict__ dlogits, double* __restrict__ row_loss, double coef) {
  __shared__ float redf[kVocab / 32];
  __shared__ double redd[kVocab / 32];
  const int64_t row = blockIdx.x;
  const int j = threadIdx.x, lane = j % 32, warp = j / 32;
  const float lj = logits[row * kVocab + j];
  const float wm = warp_max(lj);
  if (lane == 0) redf[warp] = wm;
  __syncthreads();
  float mx = redf[0];
  for (int w = 1; w < kVocab / 32; ++w) mx = fmaxf(mx, redf[w]);
  const double s = block_sum(exp(static_cast<double>(lj) - mx), redd);
  const double lse = static_cast<double>(mx) + log(s);
  const double pj = exp(static_cast<double>(lj) - lse);
  const int tgt = targets[row];
  dlogits[row * kVocab + j] += static_cast<float>(coef * (pj - (j == tgt ? 1.0 : 0.0)));
  if (j == tgt) row_loss[row] = lse - static_cast<double>(lj);
}

// ---- attention: forward with logsumexps ---------------------------------------------------
//
// Float32 throughout, whatever CudaPrecision the caller names: the backward recomputes the
// probabilities from q, k and the forward's logsumexps, which must come from the same float32
// scores (attn_core.cuh's kF32 forward). Head widths up to 128 run in the kernels' widths 32,
// 64 or 128 with zero columns appended (zeros change no score; scale uses the true d).

constexpr int kMaxHeadWidth = 128;

int padded_width(int d) {
  return d <= 32 ? 32 : d <= 64 ? 64 : 128;
}

// State (rows): acc (rows, D) = 0, m = -inf, l = 0.
__global__ void state_init_kernel(float* acc, float* m, float* l, int64_t rows, int D) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < rows * D;
       i += int64_t{gridDim.x} * blockDim.x) {
    acc[i] = 0.0f;
    if (i < rows) m[i] = -INFINITY, l[i] = 0.0f;
  }
}

// One warp per row of (rows, D): out /= l (zeros when the row saw no key); lse = m + log2 l in
// the forward's log2 units (-inf when no key); delta = rowsum(dout * out).
__global__ void finish_delta_kernel(float* __restrict__ out, const float* __restrict__ m,
                                    const float* __restrict__ l, const float* __restrict__ dout,
                                    float* __restrict__ lse, float* __restrict__ delta,
                                    int64_t rows, int D) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t{gridDim.x} * blockDim.x / 32;
  for (int64_t r = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) / 32; r < rows; r += warps) {
    const float li = l[r];
    const float inv = li > 0.0f ? 1.0f / li : 0.0f;
    float acc = 0.0f;
    for (int c = lane; c < D; c += 32) {
      const float o = out[r * D + c] * inv;
      out[r * D + c] = o;
      acc = fmaf(o, dout[r * D + c], acc);
    }
    acc = warp_sum(acc);
    if (lane == 0) {
      lse[r] = li > 0.0f ? m[r] + log2f(li) : -INFINITY;
      delta[r] = acc;
    }
  }
}

template <int D>
Status launch_forward(CudaCtx& ctx, const attn::PassArgs<float>& a, int64_t blocks, int n_heads) {
  return attn::launch_pass<D, attn::Mode::kF32, float>(ctx, a, blocks, n_heads);
}

Status run_forward(CudaCtx& ctx, const attn::PassArgs<float>& a, int64_t blocks, int n_heads,
                   int D) {
  switch (D) {
    case 32:
      return launch_forward<32>(ctx, a, blocks, n_heads);
    case 64:
      return launch_forward<64>(ctx, a, blocks, n_heads);
    case 128:
      return launch_forward<128>(ctx, a, blocks, n_heads);
    default:
      return invalid_argument("attention backward: internal head width " + std::to_string(D));
  }
}

// ---- attention: the backward kernel -------------------------------------------------------
//
// FlashAttention-2's backward: one CTA owns a tile of up to 64 keys of one head (K, V and the
// dK, dV accumulators stay on chip) and walks the 64-row query blocks that reach it. Per block
// it recomputes S = Q Kᵀ and P = exp2(S alpha - lse) (masked by each row's allowed pass-key
// range), dP = dO Vᵀ and dS = P (dP - delta) / sqrt(d); then dV += Pᵀ dO, dK += dSᵀ Q, and
// dQ += dS K goes to global memory with atomics (several key CTAs share a query row). No
// nq x nk matrix exists anywhere. Within one launch key tiles are disjoint, so dK, dV rows
// are plain read-add-writes; launches (passes) run one after another on the stream.

constexpr int kTB = 64;           // keys per CTA, query rows per step
constexpr int kBwdThreads = 256;  // 16 x 16: ty picks rows ty + 16 i, tx columns tx + 16 j

template <int D>
struct BwdLayout {
  static constexpr int LD = D + 1;     // K, V, Q, dO rows (floats): odd stride, no bank conflicts
  static constexpr int PLD = kTB + 1;  // P, dS rows
  static constexpr size_t tile = sizeof(float) * kTB * LD;
  static constexpr size_t k_off = 0;
  static constexpr size_t v_off = k_off + tile;
  static constexpr size_t q_off = v_off + tile;
  static constexpr size_t do_off = q_off + tile;
  static constexpr size_t p_off = do_off + tile;
  static constexpr size_t ds_off = p_off + sizeof(float) * kTB * PLD;
  static constexpr size_t lse_off = ds_off + sizeof(float) * kTB * PLD;
  static constexpr size_t del_off = lse_off + sizeof(float) * kTB;
  static constexpr size_t lo_off = del_off + sizeof(float) * kTB;
  static constexpr size_t hi_off = lo_off + sizeof(int) * kTB;
  static constexpr size_t qabs_off = hi_off + sizeof(int) * kTB;
  static constexpr size_t kabs_off = qabs_off + sizeof(int64_t) * kTB;
  static constexpr size_t bytes = kabs_off + sizeof(int64_t) * kTB;
  static_assert(q_off % 8 == 0 && qabs_off % 8 == 0, "int64 rows must be 8-byte aligned");
};

// One launch over one pass. Dense (groups == nullptr): CTA x takes keys [64 x, 64 x + 64) and
// the query blocks from the first row that sees its first key, row m seeing keys
// [0, min(nk, q_offset + m + 1)). Sparse: CTA x takes pass keys [g.x, g.y) and the pass-row
// blocks blocks[g.z .. g.w), g = groups[x]; qpos / kpos map pass rows and keys to absolute
// ones (null: identity); lo / hi are each pass row's allowed pass-key range.
struct BwdArgs {
  const float *q, *k, *v, *dout;  // q, dout (H, nq, D); k, v (H, nk, D)
  const float *lse, *delta;       // (H, nq): log2-unit logsumexp of scaled scores, rowsum(dO O)
  float *dq, *dk, *dv;            // += gradients; dq (H, nq, D), dk, dv (H, nk, D)
  int64_t nq, nk, q_offset;
  const int* qpos;
  const int* kpos;
  const int* lo;
  const int* hi;
  const int4* groups;
  const int2* blocks;
  const int* heads;  // head of blockIdx.y (null: blockIdx.y)
  float alpha;       // log2(e) / sqrt(d)
  float scale;       // 1 / sqrt(d)
};

template <int D>
__global__ void __launch_bounds__(kBwdThreads) attn_bwd_kernel(BwdArgs a) {
  using L = BwdLayout<D>;
  constexpr int LD = L::LD, PLD = L::PLD, J = D / 16;
  extern __shared__ __align__(128) unsigned char bwd_smem[];
  unsigned char* smem = bwd_smem;
  float* Ks = reinterpret_cast<float*>(smem + L::k_off);
  float* Vs = reinterpret_cast<float*>(smem + L::v_off);
  float* Qs = reinterpret_cast<float*>(smem + L::q_off);
  float* dOs = reinterpret_cast<float*>(smem + L::do_off);
  float* Ps = reinterpret_cast<float*>(smem + L::p_off);
  float* dSs = reinterpret_cast<float*>(smem + L::ds_off);
  float* lse_s = reinterpret_cast<float*>(smem + L::lse_off);
  float* del_s = reinterpret_cast<float*>(smem + L::del_off);
  int* lo_s = reinterpret_cast<int*>(smem + L::lo_off);
  int* hi_s = reinterpret_cast<int*>(smem + L::hi_off);
  int64_t* qabs_s = reinterpret_cast<int64_t*>(smem + L::qabs_off);
  int64_t* kabs_s = reinterpret_cast<int64_t*>(smem + L::kabs_off);

  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const bool dense = a.groups == nullptr;
  const int64_t h = a.heads ? a.heads[blockIdx.y] : blockIdx.y;
  int64_t k0, k1, b_first, b_count;
  if (dense) {
    k0 = int64_t{blockIdx.x} * kTB;
    k1 = attn::imin(a.nk, k0 + kTB);
    // Query m sees key k0 iff q_offset + m >= k0.
    const int64_t first_row = attn::imin(a.nq, k0 > a.q_offset ? k0 - a.q_offset : 0);
    b_first = first_row / kTB;
    b_count = (a.nq + kTB - 1) / kTB - b_first;
  } else {
    const int4 g = a.groups[blockIdx.x];
    k0 = g.x, k1 = g.y, b_first = g.z, b_count = g.w - g.z;
  }
  const int nc = static_cast<int>(k1 - k0);

  // Key rows of the tile (absolute; -1 past nc), then K and V (zeros past nc).
  for (int c = tid; c < kTB; c += kBwdThreads) {
    int64_t ak = -1;
    if (c < nc) ak = dense || a.kpos == nullptr ? k0 + c : a.kpos[k0 + c];
    kabs_s[c] = ak;
  }
  __syncthreads();
  const float* kh = a.k + h * a.nk * D;
  const float* vh = a.v + h * a.nk * D;
  for (int e = tid; e < kTB * D; e += kBwdThreads) {
    const int r = e / D, c = e % D;
    const int64_t ak = kabs_s[r];
    Ks[r * LD + c] = ak >= 0 ? kh[ak * D + c] : 0.0f;
    Vs[r * LD + c] = ak >= 0 ? vh[ak * D + c] : 0.0f;
  }

  // dK, dV of key rows ty + 16 i, columns tx + 16 j.
  float acc_dk[4][J], acc_dv[4][J];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < J; ++j) acc_dk[i][j] = acc_dv[i][j] = 0.0f;

  const float* qh = a.q + h * a.nq * D;
  const float* doh = a.dout + h * a.nq * D;
  float* dqh = a.dq + h * a.nq * D;
  for (int64_t it = 0; it < b_count; ++it) {
    int64_t q0, q1;
    if (dense) {
      q0 = (b_first + it) * kTB;
      q1 = attn::imin(a.nq, q0 + kTB);
    } else {
      const int2 rb = a.blocks[b_first + it];
      q0 = rb.x, q1 = rb.y;
    }
    const int nr = static_cast<int>(q1 - q0);
    __syncthreads();  // the previous step is done with Q, dO, P, dS and the row bookkeeping
    for (int r = tid; r < kTB; r += kBwdThreads) {
      if (r < nr) {
        const int64_t pr = q0 + r;
        const int64_t ar = dense || a.qpos == nullptr ? pr : a.qpos[pr];
        qabs_s[r] = ar;
        lo_s[r] = dense ? 0 : a.lo[pr];
        hi_s[r] = dense ? static_cast<int>(attn::imin(a.nk, a.q_offset + pr + 1)) : a.hi[pr];
        lse_s[r] = a.lse[h * a.nq + ar];
        del_s[r] = a.delta[h * a.nq + ar];
      } else {
        qabs_s[r] = -1;
        lo_s[r] = hi_s[r] = 0;
        lse_s[r] = del_s[r] = 0.0f;
      }
    }
    __syncthreads();
    for (int e = tid; e < kTB * D; e += kBwdThreads) {
      const int r = e / D, c = e % D;
      const int64_t ar = qabs_s[r];
      Qs[r * LD + c] = ar >= 0 ? qh[ar * D + c] : 0.0f;
      dOs[r * LD + c] = ar >= 0 ? doh[ar * D + c] : 0.0f;
    }
    __syncthreads();

    // S = Q Kᵀ and dP = dO Vᵀ for rows ty + 16 i and keys tx + 16 j.
    float s[4][4], dp[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) s[i][j] = dp[i][j] = 0.0f;
#pragma unroll 4
    for (int c = 0; c < D; ++c) {
      float qv[4], dov[4], kv[4], vv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        qv[i] = Qs[(ty + 16 * i) * LD + c];
        dov[i] = dOs[(ty + 16 * i) * LD + c];
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        kv[j] = Ks[(tx + 16 * j) * LD + c];
        vv[j] = Vs[(tx + 16 * j) * LD + c];
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          s[i][j] = fmaf(qv[i], kv[j], s[i][j]);
          dp[i][j] = fmaf(dov[i], vv[j], dp[i][j]);
        }
    }
    // P = exp2(S alpha - lse) on allowed entries (zero elsewhere and on rows without keys);
    // dS = P (dP - delta) / sqrt(d).
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int r = ty + 16 * i;
      const float l = lse_s[r], dl = del_s[r];
      const int lo = lo_s[r], hi = hi_s[r];
      const bool row_ok = r < nr && l != -INFINITY;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int c = tx + 16 * j;
        const int64_t pk = k0 + c;
        const bool ok = row_ok && c < nc && pk >= lo && pk < hi;
        const float p = ok ? exp2f(fminf(s[i][j] * a.alpha - l, 0.0f)) : 0.0f;
        Ps[r * PLD + c] = p;
        dSs[r * PLD + c] = ok ? p * (dp[i][j] - dl) * a.scale : 0.0f;
      }
    }
    __syncthreads();

    // dV += Pᵀ dO and dK += dSᵀ Q for key rows ty + 16 i, columns tx + 16 j.
    for (int r = 0; r < nr; ++r) {
      float pv[4], dsv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        pv[i] = Ps[r * PLD + ty + 16 * i];
        dsv[i] = dSs[r * PLD + ty + 16 * i];
      }
#pragma unroll
      for (int j = 0; j < J; ++j) {
        const float dov = dOs[r * LD + tx + 16 * j];
        const float qv = Qs[r * LD + tx + 16 * j];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          acc_dv[i][j] = fmaf(pv[i], dov, acc_dv[i][j]);
          acc_dk[i][j] = fmaf(dsv[i], qv, acc_dk[i][j]);
        }
      }
    }

    // dQ (rows ty + 16 i, columns tx + 16 j) += dS K, atomically.
    float dqa[4][J];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < J; ++j) dqa[i][j] = 0.0f;
    for (int c = 0; c < nc; ++c) {
      float dsv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) dsv[i] = dSs[(ty + 16 * i) * PLD + c];
#pragma unroll
      for (int j = 0; j < J; ++j) {
        const float kv = Ks[c * LD + tx + 16 * j];
#pragma unroll
        for (int i = 0; i < 4; ++i) dqa[i][j] = fmaf(dsv[i], kv, dqa[i][j]);
      }
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int r = ty + 16 * i;
      if (r >= nr) continue;
      const int64_t ar = qabs_s[r];
#pragma unroll
      for (int j = 0; j < J; ++j) atomicAdd(dqh + ar * D + tx + 16 * j, dqa[i][j]);
    }
  }

  // This CTA is the only one of the launch holding these key rows.
  float* dkh = a.dk + h * a.nk * D;
  float* dvh = a.dv + h * a.nk * D;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int kr = ty + 16 * i;
    if (kr >= nc) continue;
    const int64_t ak = kabs_s[kr];
#pragma unroll
    for (int j = 0; j < J; ++j) {
      dkh[ak * D + tx + 16 * j] += acc_dk[i][j];
      dvh[ak * D + tx + 16 * j] += acc_dv[i][j];
    }
  }
}

template <int D>
Status launch_backward(CudaCtx& ctx, const BwdArgs& a, int64_t ctas, int n_heads) {
  using L = BwdLayout<D>;
  auto kernel = attn_bwd_kernel<D>;
  ATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(L::bytes)));
  dim3 grid(static_cast<unsigned>(ctas), static_cast<unsigned>(n_heads));
  kernel<<<grid, kBwdThreads, L::bytes, ctx.stream>>>(a);
  ATTN_CUDA_CHECK_LAUNCH();
  return Status::ok();
}

Status run_backward(CudaCtx& ctx, const BwdArgs& a, int64_t ctas, int n_heads, int D) {
  if (ctas <= 0 || n_heads <= 0) return Status::ok();
  if (ctas > INT32_MAX || n_heads > 65535)
    return invalid_argument("attention backward: " + std::to_string(ctas) + " key tiles x " +
                            std::to_string(n_heads) + " heads exceed the launch grid");
  switch (D) {
    case 32:
      return launch_backward<32>(ctx, a, ctas, n_heads);
    case 64:
      return launch_backward<64>(ctx, a, ctas, n_heads);
    case 128:
      return launch_backward<128>(ctx, a, ctas, n_heads);
    default:
      return invalid_argument("attention backward: internal head width " + std::to_string(D));
  }
}

// ---- attention: host side ------------------------------------------------------------------

Status check_head_width(const char* what, int d) {
  if (d <= 0 || d > kMaxHeadWidth)
    return invalid_argument(std::string(what) + ": head width d = " + std::to_string(d) +
                            " must be in 1.." + std::to_string(kMaxHeadWidth) +
                            " (the CUDA attention kernels' widest head)");
  return Status::ok();
}

// buf (rows, D) on the device = host (rows, d), zero columns appended when d < D.
Status upload_rows(CudaCtx& ctx, DeviceBuffer<float>& buf, const float* host, int64_t rows, int d,
                   int D) {
  if (rows == 0) return Status::ok();
  if (d == D) return buf.upload(host, static_cast<size_t>(rows) * D, ctx.stream);
  ATTN_CUDA_CHECK(
      cudaMemsetAsync(buf.get(), 0, sizeof(float) * static_cast<size_t>(rows) * D, ctx.stream));
  ATTN_CUDA_CHECK(cudaMemcpy2DAsync(buf.get(), sizeof(float) * D, host, sizeof(float) * d,
                                    sizeof(float) * d, static_cast<size_t>(rows),
                                    cudaMemcpyHostToDevice, ctx.stream));
  return Status::ok();
}

// host (rows, d) = the first d columns of buf (rows, D).
Status download_rows(CudaCtx& ctx, const DeviceBuffer<float>& buf, float* host, int64_t rows, int d,
                     int D) {
  if (rows == 0) return Status::ok();
  if (d == D) return buf.download(host, static_cast<size_t>(rows) * D, ctx.stream);
  ATTN_CUDA_CHECK(cudaMemcpy2DAsync(host, sizeof(float) * d, buf.get(), sizeof(float) * D,
                                    sizeof(float) * d, static_cast<size_t>(rows),
                                    cudaMemcpyDeviceToHost, ctx.stream));
  return Status::ok();
}

// The device buffers of one attention backward: inputs, the forward's output and state, and
// the gradients, each (rows, D) with D the padded head width.
struct AttnBuffers {
  DeviceBuffer<float> q, k, v, dout, out, dq, dk, dv;
  DeviceBuffer<float> m, l, lse, delta;  // (H, nq)
  Status alloc(size_t nqe, size_t nke, size_t rows) {
    for (DeviceBuffer<float>* b : {&q, &dout, &out, &dq}) ATTN_RETURN_IF_ERROR(b->alloc(nqe));
    for (DeviceBuffer<float>* b : {&k, &v, &dk, &dv}) ATTN_RETURN_IF_ERROR(b->alloc(nke));
    for (DeviceBuffer<float>* b : {&m, &l, &lse, &delta}) ATTN_RETURN_IF_ERROR(b->alloc(rows));
    return Status::ok();
  }
  // q, dq, dout (H, nq, d); k, v, dk, dv (H, nk, d) from the host (gradients too: they add).
  Status upload(CudaCtx& ctx, const float* qh, const float* kh, const float* vh, const float* douth,
                const float* dqh, const float* dkh, const float* dvh, int64_t rows_q,
                int64_t rows_k, int d, int D) {
    ATTN_RETURN_IF_ERROR(upload_rows(ctx, q, qh, rows_q, d, D));
    ATTN_RETURN_IF_ERROR(upload_rows(ctx, dout, douth, rows_q, d, D));
    ATTN_RETURN_IF_ERROR(upload_rows(ctx, dq, dqh, rows_q, d, D));
    ATTN_RETURN_IF_ERROR(upload_rows(ctx, k, kh, rows_k, d, D));
    ATTN_RETURN_IF_ERROR(upload_rows(ctx, v, vh, rows_k, d, D));
    ATTN_RETURN_IF_ERROR(upload_rows(ctx, dk, dkh, rows_k, d, D));
    return upload_rows(ctx, dv, dvh, rows_k, d, D);
  }
  Status download(CudaCtx& ctx, float* dqh, float* dkh, float* dvh, int64_t rows_q, int64_t rows_k,
                  int d, int D) {
    ATTN_RETURN_IF_ERROR(download_rows(ctx, dq, dqh, rows_q, d, D));
    ATTN_RETURN_IF_ERROR(download_rows(ctx, dk, dkh, rows_k, d, D));
    return download_rows(ctx, dv, dvh, rows_k, d, D);
  }
  // After the forward: out normalised, lse and delta (rows of (H, nq)).
  Status finish(CudaCtx& ctx, int64_t rows, int D) {
    if (rows == 0) return Status::ok();
    finish_delta_kernel<<<grid_for(rows * 32), kThreads, 0, ctx.stream>>>(
        out.get(), m.get(), l.get(), dout.get(), lse.get(), delta.get(), rows, D);
    ATTN_CUDA_CHECK_LAUNCH();
    return Status::ok();
  }
  BwdArgs bwd_args(int64_t nq, int64_t nk, int d) const {
    BwdArgs a{};
    a.q = q.get(), a.k = k.get(), a.v = v.get(), a.dout = dout.get();
    a.lse = lse.get(), a.delta = delta.get();
    a.dq = dq.get(), a.dk = dk.get(), a.dv = dv.get();
    a.nq = nq, a.nk = nk;
    a.alpha = 1.4426950408889634f / std::sqrt(static_cast<float>(d));
    a.scale = 1.0f / std::sqrt(static_cast<float>(d));
    return a;
  }
  attn::PassArgs<float> fwd_args(int64_t nq, int64_t nk, int d) const {
    attn::PassArgs<float> a{};
    a.q = q.get(), a.k = k.get(), a.v = v.get(), a.out = out.get();
    a.m_state = m.get(), a.l_state = l.get();
    a.nq = nq, a.nk = nk;
    a.alpha = 1.4426950408889634f / std::sqrt(static_cast<float>(d));
    a.vec = attn::aligned16(a.q) && attn::aligned16(a.k) && attn::aligned16(a.v);
    return a;
  }
};

// The sparse layout (row-major for the forward, key-major for the backward) is
// sparse_plan_build's (attn_sparse.cu), shared with the inference forward.
static_assert(kTB == attn::kBK, "a key-major group is at most one backward CTA of keys");

}  // namespace
}  // namespace cuda

using cuda::CudaCtx;
using cuda::DeviceBuffer;

Status cuda_matmul_backward(const float* a, const float* b, const float* dc, float* da, float* db,
                            int64_t m, int64_t k, int64_t n, CudaPrecision p) {
  size_t na, nb, nc;
  ATTN_RETURN_IF_ERROR(cuda::element_count("cuda_matmul_backward", {m, k}, &na));
  ATTN_RETURN_IF_ERROR(cuda::element_count("cuda_matmul_backward", {k, n}, &nb));
  ATTN_RETURN_IF_ERROR(cuda::element_count("cuda_matmul_backward", {m, n}, &nc));
  auto ctx = cuda::host_ctx();
  if (!ctx) return ctx.status();
  CudaCtx& x = **ctx;
  DeviceBuffer<float> d_a, d_b, d_dc, d_da, d_db;
  ATTN_RETURN_IF_ERROR(d_a.alloc(na));
  ATTN_RETURN_IF_ERROR(d_b.alloc(nb));
  ATTN_RETURN_IF_ERROR(d_dc.alloc(nc));
  if (da) ATTN_RETURN_IF_ERROR(d_da.alloc(na));
  if (db) ATTN_RETURN_IF_ERROR(d_db.alloc(nb));
  ATTN_RETURN_IF_ERROR(d_a.upload(a, na, x.stream));
  ATTN_RETURN_IF_ERROR(d_b.upload(b, nb, x.stream));
  ATTN_RETURN_IF_ERROR(d_dc.upload(dc, nc, x.stream));
  if (da) ATTN_RETURN_IF_ERROR(d_da.upload(da, na, x.stream));
  if (db) ATTN_RETURN_IF_ERROR(d_db.upload(db, nb, x.stream));
  ATTN_RETURN_IF_ERROR(cuda::matmul_backward_dev(x, d_a.get(), d_b.get(), d_dc.get(),
                                                 da ? d_da.get() : nullptr,
                                                 db ? d_db.get() : nullptr, m, k, n, p));
  if (da) ATTN_RETURN_IF_ERROR(d_da.download(da, na, x.stream));
  if (db) ATTN_RETURN_IF_ERROR(d_db.download(db, nb, x.stream));
  return x.sync();
}

Status cuda_layernorm_backward(const float* xh, const float* g, const float* dy, float* dx,
                               float* dg, float* db, int64_t n, int64_t D) {
  size_t nx, nd;
  ATTN_RETURN_IF_ERROR(cuda::element_count("cuda_layernorm_backward", {n, D}, &nx));
  ATTN_RETURN_IF_ERROR(cuda::element_count("cuda_layernorm_backward", {D}, &nd));
  if (n > INT32_MAX)
    return invalid_argument("cuda_layernorm_backward: " + std::to_string(n) +
                            " rows exceed the launch grid");
  auto ctx = cuda::host_ctx();
  if (!ctx) return ctx.status();
  CudaCtx& x = **ctx;
  DeviceBuffer<float> d_x, d_g, d_dy, d_dx, d_dg, d_db;
  DeviceBuffer<double> stats;
  ATTN_RETURN_IF_ERROR(d_x.alloc(nx));
  ATTN_RETURN_IF_ERROR(d_g.alloc(nd));
  ATTN_RETURN_IF_ERROR(d_dy.alloc(nx));
  if (dx) ATTN_RETURN_IF_ERROR(d_dx.alloc(nx));
  if (dg) ATTN_RETURN_IF_ERROR(d_dg.alloc(nd));
  if (db) ATTN_RETURN_IF_ERROR(d_db.alloc(nd));
  ATTN_RETURN_IF_ERROR(stats.alloc(2 * static_cast<size_t>(n)));
  if (n == 0 || D == 0) return Status::ok();
  ATTN_RETURN_IF_ERROR(d_x.upload(xh, nx, x.stream));
  ATTN_RETURN_IF_ERROR(d_g.upload(g, nd, x.stream));
  ATTN_RETURN_IF_ERROR(d_dy.upload(dy, nx, x.stream));
  if (dx) ATTN_RETURN_IF_ERROR(d_dx.upload(dx, nx, x.stream));
  if (dg) ATTN_RETURN_IF_ERROR(d_dg.upload(dg, nd, x.stream));
  if (db) ATTN_RETURN_IF_ERROR(d_db.upload(db, nd, x.stream));
  cuda::layernorm_bwd_rows_kernel<<<static_cast<unsigned>(n), cuda::kThreads, 0, x.stream>>>(
      d_x.get(), d_g.get(), d_dy.get(), dx ? d_dx.get() : nullptr, stats.get(), D);
  ATTN_CUDA_CHECK_LAUNCH();
  if (dg || db) {
    cuda::layernorm_bwd_cols_kernel<<<cuda::grid_for(D), cuda::kThreads, 0, x.stream>>>(
        d_x.get(), d_dy.get(), stats.get(), dg ? d_dg.get() : nullptr, db ? d_db.get() : nullptr, n,
        D);
    ATTN_CUDA_CHECK_LAUNCH();
  }
  if (dx) ATTN_RETURN_IF_ERROR(d_dx.download(dx, nx, x.stream));
  if (dg) ATTN_RETURN_IF_ERROR(d_dg.download(dg, nd, x.stream));
  if (db) ATTN_RETURN_IF_ERROR(d_db.download(db, nd, x.stream));
  return x.sync();
}

Status cuda_gelu_backward(const float* xh, const float* dy, float* dx, int64_t count) {
  size_t nx;
  ATTN_RETURN_IF_ERROR(cuda::element_count("cuda_gelu_backward", {count}, &nx));
  auto ctx = cuda::host_ctx();
  if (!ctx) return ctx.status();
  CudaCtx& x = **ctx;
  DeviceBuffer<float> d_x, d_dy, d_dx;
  ATTN_RETURN_IF_ERROR(d_x.alloc(nx));
  ATTN_RETURN_IF_ERROR(d_dy.alloc(nx));
  ATTN_RETURN_IF_ERROR(d_dx.alloc(nx));
  if (count == 0) return Status::ok();
  ATTN_RETURN_IF_ERROR(d_x.upload(xh, nx, x.stream));
  ATTN_RETURN_IF_ERROR(d_dy.upload(dy, nx, x.stream));
  ATTN_RETURN_IF_ERROR(d_dx.upload(dx, nx, x.stream));
  cuda::gelu_bwd_kernel<<<cuda::grid_for(count), cuda::kThreads, 0, x.stream>>>(
      d_x.get(), d_dy.get(), d_dx.get(), count);
  ATTN_CUDA_CHECK_LAUNCH();
  ATTN_RETURN_IF_ERROR(d_dx.download(dx, nx, x.stream));
  return x.sync();
}

Status cuda_embed_backward(const uint8_t* tokens, const float* dy, float* dtable, int64_t n,
                           int64_t D) {
  size_t ny, nt, ntab;
  ATTN_RETURN_IF_ERROR(cuda::element_count("cuda_embed_backward", {n, D}, &ny));
  ATTN_RETURN_IF_ERROR(cuda::element_count("cuda_embed_backward", {n}, &nt));
  ATTN_RETURN_IF_ERROR(cuda::element_count("cuda_embed_backward", {kVocab, D}, &ntab));
  auto ctx = cuda::host_ctx();
  if (!ctx) return ctx.status();
  CudaCtx& x = **ctx;
  DeviceBuffer<uint8_t> d_tok;
  DeviceBuffer<float> d_dy, d_tab;
  ATTN_RETURN_IF_ERROR(d_tok.alloc(nt));
  ATTN_RETURN_IF_ERROR(d_dy.alloc(ny));
  ATTN_RETURN_IF_ERROR(d_tab.alloc(ntab));
  if (ny == 0) return Status::ok();
  ATTN_RETURN_IF_ERROR(d_tok.upload(tokens, nt, x.stream));
  ATTN_RETURN_IF_ERROR(d_dy.upload(dy, ny, x.stream));
  ATTN_RETURN_IF_ERROR(d_tab.upload(dtable, ntab, x.stream));
  cuda::embed_bwd_kernel<<<cuda::grid_for(n * D), cuda::kThreads, 0, x.stream>>>(
      d_tok.get(), d_dy.get(), d_tab.get(), n, D);
  ATTN_CUDA_CHECK_LAUNCH();
  ATTN_RETURN_IF_ERROR(d_tab.download(dtable, ntab, x.stream));
  return x.sync();
}

Status cuda_xent_backward(const float* logits, const uint8_t* targets, float* dlogits,
                          double* loss_bits, int64_t n, float scale) {
  size_t nl, nt;
  ATTN_RETURN_IF_ERROR(cuda::element_count("cuda_xent_backward", {n, kVocab}, &nl));
  ATTN_RETURN_IF_ERROR(cuda::element_count("cuda_xent_backward", {n}, &nt));
  if (n > INT32_MAX)
    return invalid_argument("cuda_xent_backward: " + std::to_string(n) +
                            " rows exceed the launch grid");
  auto ctx = cuda::host_ctx();
  if (!ctx) return ctx.status();
  CudaCtx& x = **ctx;
  DeviceBuffer<float> d_logits, d_dl;
  DeviceBuffer<uint8_t> d_tg;
  DeviceBuffer<double> d_loss;
  ATTN_RETURN_IF_ERROR(d_logits.alloc(nl));
  ATTN_RETURN_IF_ERROR(d_dl.alloc(nl));
  ATTN_RETURN_IF_ERROR(d_tg.alloc(nt));
  ATTN_RETURN_IF_ERROR(d_loss.alloc(nt));
  if (n == 0) {
    if (loss_bits) *loss_bits = 0.0;
    return Status::ok();
  }
  ATTN_RETURN_IF_ERROR(d_logits.upload(logits, nl, x.stream));
  ATTN_RETURN_IF_ERROR(d_dl.upload(dlogits, nl, x.stream));
  ATTN_RETURN_IF_ERROR(d_tg.upload(targets, nt, x.stream));
  const double coef = static_cast<double>(scale) / static_cast<double>(n);
  cuda::xent_bwd_kernel<<<static_cast<unsigned>(n), kVocab, 0, x.stream>>>(
      d_logits.get(), d_tg.get(), d_dl.get(), d_loss.get(), coef);
  ATTN_CUDA_CHECK_LAUNCH();
  std::vector<double> rows(nt);
  ATTN_RETURN_IF_ERROR(d_dl.download(dlogits, nl, x.stream));
  ATTN_RETURN_IF_ERROR(d_loss.download(rows.data(), nt, x.stream));
  ATTN_RETURN_IF_ERROR(x.sync());
  if (loss_bits) {
    double total = 0.0;
    for (double r : rows) total += r;
    *loss_bits = total / static_cast<double>(n) / std::log(2.0);
  }
  return Status::ok();
}

// Float32 whatever p names (see the attention section above): p is accepted for symmetry with
// the forward.
Status cuda_attn_dense_backward(const float* q, const float* k, const float* v, const float* dout,
                                float* dq, float* dk, float* dv, int heads, int64_t nq, int64_t nk,
                                int d, int64_t q_offset, CudaPrecision p) {
  (void)p;
  const char* what = "cuda_attn_dense_backward";
  ATTN_RETURN_IF_ERROR(cuda::check_head_width(what, d));
  if (heads < 0 || nq < 0 || nk < 0 || q_offset < 0)
    return invalid_argument(std::string(what) + ": heads, nq, nk and q_offset must be >= 0");
  if (nq >= INT32_MAX || nk >= INT32_MAX || q_offset >= INT32_MAX)
    return invalid_argument(std::string(what) + ": lengths and q_offset must be below 2^31");
  if (heads > 65535) return invalid_argument(std::string(what) + ": more than 65535 heads");
  const int D = cuda::padded_width(d);
  size_t nqe, nke, rows;
  ATTN_RETURN_IF_ERROR(cuda::element_count(what, {heads, nq, D}, &nqe));
  ATTN_RETURN_IF_ERROR(cuda::element_count(what, {heads, nk, D}, &nke));
  ATTN_RETURN_IF_ERROR(cuda::element_count(what, {heads, nq}, &rows));
  auto ctx = cuda::host_ctx();
  if (!ctx) return ctx.status();
  CudaCtx& x = **ctx;
  cuda::AttnBuffers B;
  ATTN_RETURN_IF_ERROR(B.alloc(nqe, nke, rows));
  // No query or no key: every gradient is zero.
  if (heads == 0 || nq == 0 || nk == 0) return Status::ok();
  const int64_t rq = int64_t{heads} * nq, rk = int64_t{heads} * nk;
  ATTN_RETURN_IF_ERROR(B.upload(x, q, k, v, dout, dq, dk, dv, rq, rk, d, D));
  // Forward: one pass, state starts empty and is left unnormalised for finish().
  cuda::attn::PassArgs<float> fa = B.fwd_args(nq, nk, d);
  fa.q_offset = q_offset;
  fa.first = true, fa.last = false, fa.reverse = true;
  ATTN_RETURN_IF_ERROR(
      cuda::run_forward(x, fa, (nq + cuda::attn::kBQ - 1) / cuda::attn::kBQ, heads, D));
  ATTN_RETURN_IF_ERROR(B.finish(x, static_cast<int64_t>(rows), D));
  cuda::BwdArgs ba = B.bwd_args(nq, nk, d);
  ba.q_offset = q_offset;
  ATTN_RETURN_IF_ERROR(cuda::run_backward(x, ba, (nk + cuda::kTB - 1) / cuda::kTB, heads, D));
  ATTN_RETURN_IF_ERROR(B.download(x, dq, dk, dv, rq, rk, d, D));
  return x.sync();
}

// Float32 whatever p names, as the dense backward.
Status cuda_attn_sparse_backward(const float* q, const float* k, const float* v, const float* dout,
                                 float* dq, float* dk, float* dv, int heads, int64_t n, int d,
                                 const SparseConfig& cfg, int layer, CudaPrecision p) {
  (void)p;
  const char* what = "cuda_attn_sparse_backward";
  ATTN_RETURN_IF_ERROR(cuda::sparse_plan_validate(cfg));
  ATTN_RETURN_IF_ERROR(cuda::check_head_width(what, d));
  if (heads < 0 || n < 0) return invalid_argument(std::string(what) + ": heads, n must be >= 0");
  const int D = cuda::padded_width(d);
  size_t ne, rows;
  ATTN_RETURN_IF_ERROR(cuda::element_count(what, {heads, n, D}, &ne));
  ATTN_RETURN_IF_ERROR(cuda::element_count(what, {heads, n}, &rows));
  auto ctx = cuda::host_ctx();
  if (!ctx) return ctx.status();
  CudaCtx& x = **ctx;
  // Before any allocation: the plan also checks n and heads against the launch grid.
  auto plan = cuda::sparse_plan_build(cfg, layer, heads, n, /*key_major=*/true);
  if (!plan) return plan.status();
  const std::vector<cuda::SparseLaunch>& launches = (*plan)->launches;
  cuda::AttnBuffers B;
  ATTN_RETURN_IF_ERROR(B.alloc(ne, ne, rows));
  if (heads == 0 || n == 0) return Status::ok();
  const int64_t r = int64_t{heads} * n;
  ATTN_RETURN_IF_ERROR(B.upload(x, q, k, v, dout, dq, dk, dv, r, r, d, D));
  // Forward: every pass of every head set into one online-softmax state.
  cuda::state_init_kernel<<<cuda::grid_for(r * D), cuda::kThreads, 0, x.stream>>>(
      B.out.get(), B.m.get(), B.l.get(), r, D);
  ATTN_CUDA_CHECK_LAUNCH();
  for (const cuda::SparseLaunch& L : launches) {
    cuda::attn::PassArgs<float> fa = B.fwd_args(n, n, d);
    fa.qpos = L.has_qpos ? L.qpos.get() : nullptr;
    fa.kpos = L.has_kpos ? L.kpos.get() : nullptr;
    fa.lo = L.lo.get(), fa.hi = L.hi.get();
    fa.rows = L.rows.get(), fa.tiles = L.tiles.get();
    fa.heads = L.heads.get();
    fa.first = fa.last = fa.reverse = false;
    ATTN_RETURN_IF_ERROR(cuda::run_forward(x, fa, L.row_blocks, L.n_heads, D));
  }
  ATTN_RETURN_IF_ERROR(B.finish(x, r, D));
  // Backward: pass by pass, key-major.
  for (const cuda::SparseLaunch& L : launches) {
    cuda::BwdArgs ba = B.bwd_args(n, n, d);
    ba.qpos = L.has_qpos ? L.qpos.get() : nullptr;
    ba.kpos = L.has_kpos ? L.kpos.get() : nullptr;
    ba.lo = L.lo.get(), ba.hi = L.hi.get();
    ba.groups = L.groups.get(), ba.blocks = L.blocks.get();
    ba.heads = L.heads.get();
    ATTN_RETURN_IF_ERROR(cuda::run_backward(x, ba, L.key_groups, L.n_heads, D));
  }
  ATTN_RETURN_IF_ERROR(B.download(x, dq, dk, dv, r, r, d, D));
  return x.sync();
}

}  // namespace attnscope
