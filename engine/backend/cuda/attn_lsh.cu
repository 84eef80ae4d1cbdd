// Reformer shared-QK LSH attention on the device, the scheme of engine/attention/lsh.cpp:
// key scales, angular hashes (double projections, fused multiply-adds in ascending k, the
// first largest of [p; -p]), a CUB segmented radix sort of bucket * N + position per
// (head, round), chunked attention (each chunk to itself and the previous chunk, causal on
// original positions, self at -1e5 only when nothing else) and rounds merged by their
// logsumexps, round by round as the CPU does.
#include <cmath>
#include <cub/device/device_segmented_radix_sort.cuh>

#include "attention/lsh_rule.h"
#include "backend/cuda/common.cuh"

namespace attnscope::cuda {

namespace {

using detail::kLshSelfScore;
constexpr int kMaxLshD = 256;  // 8 values per lane

// kscale (H*N) = 1/sqrt(d) / |x| with lsh_rule.h's floor, |x|^2 in double (lsh.cpp pass 1).
__global__ void lsh_scale_kernel(const float* qk, float* kscale, int64_t rows, int d,
                                 double scale) {
  for (int64_t row = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; row < rows;
       row += int64_t{gridDim.x} * blockDim.x) {
    const float* x = qk + row * d;
    double ss = 0.0;
    for (int c = 0; c < d; ++c) ss += static_cast<double>(x[c]) * x[c];
    kscale[row] = static_cast<float>(scale / detail::lsh_key_norm(ss));
  }
}

// bucket (H, R, N) and sort keys bucket * N + j, one thread per (h, r, j). The projection
// p_c = sum_k x_k R_kc accumulates in double, k ascending, as the CPU's project(): the product
// of two floats is exact in double, so a fused multiply-add rounds exactly as the CPU's
// multiply then add, and the buckets agree bit for bit whatever either compiler contracts.
__global__ void lsh_hash_kernel(const float* qk, const float* rot, int heads, int R, int64_t n,
                                int d, int half, int* bucket, unsigned long long* keys) {
  const int64_t total = static_cast<int64_t>(heads) * R * n;
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < total;
       e += int64_t{gridDim.x} * blockDim.x) {
    const int64_t j = e % n, hr = e / n;
    const int64_t h = hr / R, r = hr % R;
    const float* x = qk + (h * n + j) * d;
    const float* rr = rot + r * static_cast<int64_t>(d) * half;
    int arg_max = 0, arg_min = 0;
    double p_max = -INFINITY, p_min = INFINITY;
    for (int c = 0; c < half; ++c) {
      double p = 0.0;
      for (int k = 0; k < d; ++k)
        p = __fma_rn(static_cast<double>(x[k]), static_cast<double>(rr[k * half + c]), p);
      if (p > p_max) p_max = p, arg_max = c;
      if (p < p_min) p_min = p, arg_min = c;
    }
    const int b = -p_min > p_max ? half + arg_min : arg_max;
    bucket[e] = b;
    keys[e] = static_cast<unsigned long long>(b) * static_cast<unsigned long long>(n) +
              static_cast<unsigned long long>(j);
  }
}

__global__ void lsh_offsets_kernel(int* offsets, int segments, int64_t n) {
  for (int s = blockIdx.x * blockDim.x + threadIdx.x; s <= segments; s += gridDim.x * blockDim.x)
    offsets[s] = static_cast<int>(s * n);
}

// order (H, R, N): the position of each sorted slot.
__global__ void lsh_order_kernel(const unsigned long long* sorted, int* order, int64_t total,
                                 int64_t n) {
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < total;
       e += int64_t{gridDim.x} * blockDim.x)
    order[e] = static_cast<int>(sorted[e] % static_cast<unsigned long long>(n));
}

// Merges round r of query row oi (d) into out and its running logsumexp *li (lsh.cpp's
// order of operations): acc (lane + 32 u) is the unnormalised output, mx and sum the row's
// max score and sum of exp(score - mx). The query is always in its own window: sum > 0.
template <int C>
__device__ void merge_round(float* oi, double* li, int r, const float (&acc)[C], float mx,
                            float sum, int d, int lane) {
  const double lr = static_cast<double>(mx) + log(static_cast<double>(sum));
  float wa = 0.0f, wb = 1.0f / sum;
  const double l_old = r == 0 ? 0.0 : *li;
  if (r != 0) {
    const double top = fmax(l_old, lr);
    const double ea = exp(l_old - top), eb = exp(lr - top), z = ea + eb;
    wa = static_cast<float>(ea / z);
    wb = static_cast<float>(eb / z / sum);
  }
#pragma unroll
  for (int u = 0; u < C; ++u) {
    const int c = lane + 32 * u;
    if (c < d) oi[c] = (r == 0 ? 0.0f : oi[c] * wa) + acc[u] * wb;
  }
  __syncwarp();
  if (lane == 0) {
    if (r == 0) {
      *li = lr;
    } else {
      const double top = fmax(l_old, lr);
      *li = top + log(exp(l_old - top) + exp(lr - top));
    }
  }
}

// Round r: one warp per (head, sorted slot s). The query i = order[s] of chunk s / m attends
// to slots [max(0, (c-1) m), min(n, c m + m)): keys j < i score x_i·x_j kscale_j, j == i
// scores -1e5, j > i nothing. Its normalised output and logsumexp are merged into out and
// lse (H, N) as lsh.cpp does (r == 0 sets them).
__global__ void lsh_attend_kernel(const float* qk, const float* v, const float* kscale,
                                  const int* order, int heads, int R, int r, int64_t n, int d,
                                  int64_t m, float* out, double* lse) {
  constexpr int C = kMaxLshD / 32;
  const int lane = threadIdx.x % 32;
  const int64_t warps_total = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t w = blockIdx.x * int64_t{blockDim.x / 32} + threadIdx.x / 32;
       w < static_cast<int64_t>(heads) * n; w += warps_total) {
    const int64_t h = w / n, s = w % n;
    const int* ord = order + (h * R + r) * n;
    const int64_t i = ord[s];
    const int64_t c0 = s / m * m;
    const int64_t lo = c0 >= m ? c0 - m : 0, hi = c0 + m < n ? c0 + m : n;
    const float* xh = qk + h * n * d;
    const float* vh = v + h * n * d;
    float xi[C], acc[C];
#pragma unroll
    for (int u = 0; u < C; ++u) {
      const int c = lane + 32 * u;
      xi[u] = c < d ? xh[i * d + c] : 0.0f;
      acc[u] = 0.0f;
    }
    float mx = -INFINITY, sum = 0.0f;
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t j = ord[t];
      if (j > i) continue;  // warp-uniform
      float sc;
      if (j == i) {
        sc = static_cast<float>(kLshSelfScore);
      } else {
        float dot = 0.0f;
#pragma unroll
        for (int u = 0; u < C; ++u) {
          const int c = lane + 32 * u;
          if (c < d) dot = fmaf(xi[u], xh[j * d + c], dot);
        }
        sc = warp_sum(dot) * kscale[h * n + j];
      }
      const float m_new = fmaxf(mx, sc);
      const float corr = expf(mx - m_new), p = expf(sc - m_new);
      sum = sum * corr + p;
#pragma unroll
      for (int u = 0; u < C; ++u) {
        const int c = lane + 32 * u;
        acc[u] = acc[u] * corr + (c < d ? p * vh[j * d + c] : 0.0f);
      }
      mx = m_new;
    }
    merge_round(out + (h * n + i) * d, lse + h * n + i, r, acc, mx, sum, d, lane);
  }
}

// Round r, the tiled form: one CTA of 4 warps per (chunk, head). The window's rows (the
// chunk and the one before, at most 2m <= kMaxWindow) are gathered once into shared memory:
// xs (W, d + 1: the padding keeps lanes on distinct banks), vs (W, d), their positions and
// key scales. Each warp then takes one query of the chunk at a time: lane u scores keys
// u, u + 32, ... from shared memory, the row's max and sum come from warp reductions (all
// scores at once, as the CPU), and the probabilities in pw weight the value rows.
constexpr int kMaxWindow = 256;
constexpr int kChunkWarps = 4;

size_t lsh_chunk_smem(int64_t window, int d) {
  return sizeof(float) * static_cast<size_t>(window) * (2 * d + 1) +
         (sizeof(int) + sizeof(float)) * static_cast<size_t>(window) +
         sizeof(float) * kChunkWarps * static_cast<size_t>(window);
}

__global__ void __launch_bounds__(kChunkWarps * 32)
    lsh_chunk_kernel(const float* qk, const float* v, const float* kscale, const int* order, int R,
                     int r, int64_t n, int d, int64_t m, float* out, double* lse) {
  constexpr int C = kMaxLshD / 32;
  constexpr int KU = kMaxWindow / 32;  // keys per lane
  extern __shared__ __align__(16) unsigned char smem[];
  const int64_t c0 = static_cast<int64_t>(blockIdx.x) * m, h = blockIdx.y;
  const int64_t lo = c0 >= m ? c0 - m : 0, hi = c0 + m < n ? c0 + m : n;
  const int nw = static_cast<int>(hi - lo);
  const int xld = d + 1;
  float* xs = reinterpret_cast<float*>(smem);
  float* vs = xs + static_cast<size_t>(nw) * xld;
  int* pos = reinterpret_cast<int*>(vs + static_cast<size_t>(nw) * d);
  float* ks = reinterpret_cast<float*>(pos + nw);
  float* pw = ks + nw;  // (warps, nw)
  const int* ord = order + (h * R + r) * n;
  const float* xh = qk + h * n * d;
  const float* vh = v + h * n * d;
  for (int t = threadIdx.x; t < nw; t += blockDim.x) {
    const int j = ord[lo + t];
    pos[t] = j;
    ks[t] = kscale[h * n + j];
  }
  __syncthreads();
  for (int e = threadIdx.x; e < nw * d; e += blockDim.x) {
    const int t = e / d, c = e % d;
    const int64_t j = pos[t];
    xs[t * xld + c] = xh[j * d + c];
    vs[t * d + c] = vh[j * d + c];
  }
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* p = pw + warp * nw;
  for (int64_t s = c0 + warp; s < hi; s += kChunkWarps) {
    const int qi = static_cast<int>(s - lo);
    const int i = pos[qi];
    const float* xq = xs + qi * xld;
    float sc[KU];
    float mx = -INFINITY;
#pragma unroll
    for (int k = 0; k < KU; ++k) {
      const int u = lane + 32 * k;
      float val = -INFINITY;
      if (u < nw) {
        const int j = pos[u];
        if (j < i) {
          const float* xk = xs + u * xld;
          float dot = 0.0f;
          for (int c = 0; c < d; ++c) dot = fmaf(xq[c], xk[c], dot);
          val = dot * ks[u];
        } else if (j == i) {
          val = static_cast<float>(kLshSelfScore);
        }
      }
      sc[k] = val;
      mx = fmaxf(mx, val);
    }
    mx = warp_max(mx);  // finite: the query itself is in the window
    float sum = 0.0f;
#pragma unroll
    for (int k = 0; k < KU; ++k) {
      const int u = lane + 32 * k;
      const float e = u < nw ? expf(sc[k] - mx) : 0.0f;
      if (u < nw) p[u] = e;
      sum += e;
    }
    sum = warp_sum(sum);
    __syncwarp();
    float acc[C];
#pragma unroll
    for (int u = 0; u < C; ++u) acc[u] = 0.0f;
    for (int t = 0; t < nw; ++t) {
      const float w = p[t];
      if (w == 0.0f) continue;  // warp-uniform: masked keys and underflow
#pragma unroll
      for (int u = 0; u < C; ++u) {
        const int c = lane + 32 * u;
        if (c < d) acc[u] = fmaf(w, vs[t * d + c], acc[u]);
      }
    }
    merge_round(out + (h * n + i) * d, lse + h * n + i, r, acc, mx, sum, d, lane);
    __syncwarp();  // p is rewritten by the warp's next query
  }
}

size_t align256(size_t b) {
  return (b + 255) / 256 * 256;
}

}  // namespace

Status attn_lsh(CudaCtx& ctx, const float* qk, const float* v, float* out, int heads, int64_t n,
                int d, const LshSpec& spec, const float* rotations, int* buckets_out,
                int* order_out) {
  if (spec.n_hashes < 1) return invalid_argument("lsh: n_hashes must be at least 1");
  if (spec.chunk < 1) return invalid_argument("lsh: chunk must be at least 1");
  if (spec.n_buckets < 2 || spec.n_buckets % 2 != 0)
    return invalid_argument("lsh: n_buckets must be even and at least 2, got " +
                            std::to_string(spec.n_buckets));
  if (d < 1 || d > kMaxLshD)
    return unsupported("CUDA LSH attention runs head widths 1.." + std::to_string(kMaxLshD) +
                       ", not " + std::to_string(d));
  if (heads < 1 || n < 1) return invalid_argument("lsh: heads and length must be positive");
  const int R = spec.n_hashes, half = spec.n_buckets / 2;
  const int64_t total = static_cast<int64_t>(heads) * R * n;
  if (total >= INT32_MAX) return invalid_argument("lsh: heads x rounds x length exceeds 2^31");
  const int segments = heads * R;
  const int end_bit = [&] {
    const unsigned long long top = static_cast<unsigned long long>(spec.n_buckets) * n;
    int bits = 1;
    while (bits < 64 && (1ull << bits) < top) ++bits;
    return bits;
  }();

  // Scratch slot 2: kscale (H N) float, lse (H N) double, bucket (H R N) int, order (H R N)
  // int, keys in / out (H R N) u64, offsets (H R + 1) int, then CUB's temporary storage.
  size_t cub_bytes = 0;
  ATTN_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeys(
      nullptr, cub_bytes, static_cast<const unsigned long long*>(nullptr),
      static_cast<unsigned long long*>(nullptr), static_cast<int>(total), segments,
      static_cast<const int*>(nullptr), static_cast<const int*>(nullptr), 0, end_bit, ctx.stream));
  const int64_t hn = static_cast<int64_t>(heads) * n;
  const size_t sz_scale = align256(sizeof(float) * hn), sz_lse = align256(sizeof(double) * hn);
  const size_t sz_int = align256(sizeof(int) * total), sz_key = align256(8 * total);
  const size_t sz_off = align256(sizeof(int) * (segments + 1));
  auto st = ctx.scratch(sz_scale + sz_lse + 2 * sz_int + 2 * sz_key + sz_off + cub_bytes + 256, 2);
  if (!st) return st.status();
  char* base = static_cast<char*>(*st);
  float* kscale = reinterpret_cast<float*>(base);
  base += sz_scale;
  double* lse = reinterpret_cast<double*>(base);
  base += sz_lse;
  int* bucket = reinterpret_cast<int*>(base);
  base += sz_int;
  int* order = reinterpret_cast<int*>(base);
  base += sz_int;
  auto* keys_in = reinterpret_cast<unsigned long long*>(base);
  base += sz_key;
  auto* keys_out = reinterpret_cast<unsigned long long*>(base);
  base += sz_key;
  int* offsets = reinterpret_cast<int*>(base);
  base += sz_off;
  void* cub_temp = base;
  if (buckets_out) bucket = buckets_out;
  if (order_out) order = order_out;

  lsh_scale_kernel<<<grid_for(hn), kThreads, 0, ctx.stream>>>(
      qk, kscale, hn, d, 1.0 / std::sqrt(static_cast<double>(d)));
  ATTN_CUDA_CHECK_LAUNCH();
  lsh_hash_kernel<<<grid_for(total), kThreads, 0, ctx.stream>>>(qk, rotations, heads, R, n, d, half,
                                                                bucket, keys_in);
  ATTN_CUDA_CHECK_LAUNCH();
  lsh_offsets_kernel<<<grid_for(segments + 1), kThreads, 0, ctx.stream>>>(offsets, segments, n);
  ATTN_CUDA_CHECK_LAUNCH();
  ATTN_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeys(
      cub_temp, cub_bytes, keys_in, keys_out, static_cast<int>(total), segments, offsets,
      offsets + 1, 0, end_bit, ctx.stream));
  lsh_order_kernel<<<grid_for(total), kThreads, 0, ctx.stream>>>(keys_out, order, total, n);
  ATTN_CUDA_CHECK_LAUNCH();
  // The tiled kernel when the window fits in shared memory, else one warp per (head, slot)
  // reading the window's rows through the cache.
  const int64_t m = spec.chunk, window = std::min<int64_t>(n, 2 * m);
  const int64_t n_chunks = (n + m - 1) / m;
  const size_t smem = lsh_chunk_smem(window, d);
  const bool tiled =
      window <= kMaxWindow && smem <= size_t{200} * 1024 && heads <= 65535 && n_chunks <= INT32_MAX;
  if (tiled)
    ATTN_CUDA_CHECK(cudaFuncSetAttribute(
        lsh_chunk_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  const int64_t blocks = std::min<int64_t>((hn + 7) / 8, 65535 * 16);
  for (int r = 0; r < R; ++r) {
    if (tiled) {
      lsh_chunk_kernel<<<dim3(static_cast<unsigned>(n_chunks), static_cast<unsigned>(heads)),
                         kChunkWarps * 32, smem, ctx.stream>>>(qk, v, kscale, order, R, r, n, d, m,
                                                               out, lse);
    } else {
      lsh_attend_kernel<<<static_cast<unsigned>(blocks), 256, 0, ctx.stream>>>(
          qk, v, kscale, order, heads, R, r, n, d, m, out, lse);
    }
    ATTN_CUDA_CHECK_LAUNCH();
  }
  return Status::ok();
}

}  // namespace attnscope::cuda
