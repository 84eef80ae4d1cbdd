// The CUDA attention benchmark (cuda_bench_attention): device-resident random inputs, warm-up
// runs, each timed run between two CUDA events, the median reported. Dense causal forward at
// every length and head width, block-sparse strided (l = sqrt N rounded up to the block,
// union of both sets) at the same lengths, and a bf16 cuBLASLt GEMM of the same run as the
// hardware anchor.
#include <algorithm>
#include <cmath>
#include <functional>

#include "backend/cuda/common.cuh"

namespace attnscope {

namespace cuda {

namespace {

__device__ uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// N(0, scale) by Box-Muller from a counter-based hash of (seed, i).
__device__ float normal_at(uint64_t seed, int64_t i, float scale) {
  const uint64_t a = mix64(seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(2 * i + 1));
  const uint64_t b = mix64(seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(2 * i + 2));
  const float u1 = fmaxf(static_cast<float>(a >> 40) * 0x1.0p-24f, 1e-7f);
  const float u2 = static_cast<float>(b >> 40) * 0x1.0p-24f;
  return scale * sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
}

__global__ void fill_kernel(float* x, int64_t count, uint64_t seed, float scale) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x)
    x[i] = normal_at(seed, i, scale);
}

__global__ void fill_bf16_kernel(__nv_bfloat16* x, int64_t count, uint64_t seed, float scale) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x)
    x[i] = __float2bfloat16_rn(normal_at(seed, i, scale));
}

struct Events {
  cudaEvent_t a = nullptr, b = nullptr;
  ~Events() {
    if (a) cudaEventDestroy(a);
    if (b) cudaEventDestroy(b);
  }
};

// Median milliseconds of `runs` timed calls of fn after `warm` untimed ones.
Expected<double> time_median(CudaCtx& ctx, const std::function<Status()>& fn, int warm, int runs) {
  Events ev;
  ATTN_CUDA_CHECK(cudaEventCreate(&ev.a));
  ATTN_CUDA_CHECK(cudaEventCreate(&ev.b));
  for (int i = 0; i < warm; ++i) ATTN_RETURN_IF_ERROR(fn());
  ATTN_RETURN_IF_ERROR(ctx.sync());
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    ATTN_CUDA_CHECK(cudaEventRecord(ev.a, ctx.stream));
    ATTN_RETURN_IF_ERROR(fn());
    ATTN_CUDA_CHECK(cudaEventRecord(ev.b, ctx.stream));
    ATTN_CUDA_CHECK(cudaEventSynchronize(ev.b));
    float t = 0.0f;
    ATTN_CUDA_CHECK(cudaEventElapsedTime(&t, ev.a, ev.b));
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

Status fill_normal(CudaCtx& ctx, float* x, int64_t count, uint64_t seed, float scale) {
  if (count <= 0) return Status::ok();
  fill_kernel<<<grid_for(count), kThreads, 0, ctx.stream>>>(x, count, seed, scale);
  ATTN_CUDA_CHECK_LAUNCH();
  return Status::ok();
}

Status fill_normal_bf16(CudaCtx& ctx, __nv_bfloat16* x, int64_t count, uint64_t seed, float scale) {
  if (count <= 0) return Status::ok();
  fill_bf16_kernel<<<grid_for(count), kThreads, 0, ctx.stream>>>(x, count, seed, scale);
  ATTN_CUDA_CHECK_LAUNCH();
  return Status::ok();
}

}  // namespace cuda

Expected<std::vector<CudaBenchRow>> cuda_bench_attention(const std::vector<int64_t>& lengths,
                                                         const std::vector<int>& ds,
                                                         int total_width, CudaPrecision p) {
  using cuda::DeviceBuffer;
  if (total_width <= 0) return invalid_argument("bench: total width must be > 0");
  for (int d : ds)
    if (d <= 0 || total_width % d != 0)
      return invalid_argument("bench: head width " + std::to_string(d) +
                              " does not divide the total width " + std::to_string(total_width));
  for (int64_t n : lengths)
    if (n < 1 || n >= INT32_MAX) return invalid_argument("bench: lengths must be in 1..2^31");
  auto ctxp = cuda::host_ctx();
  if (!ctxp) return ctxp.status();
  cuda::CudaCtx& ctx = **ctxp;
  const bool bf16 = p == CudaPrecision::kBF16;
  std::vector<CudaBenchRow> rows;
  constexpr int kWarm = 2, kRuns = 9;

  for (int d : ds) {
    const int heads = total_width / d;
    for (int64_t n : lengths) {
      const size_t count = static_cast<size_t>(heads) * n * d;
      DeviceBuffer<float> qf, kf, vf, out;
      DeviceBuffer<__nv_bfloat16> qb, kb, vb;
      ATTN_RETURN_IF_ERROR(out.alloc(count));
      if (bf16) {
        ATTN_RETURN_IF_ERROR(qb.alloc(count));
        ATTN_RETURN_IF_ERROR(kb.alloc(count));
        ATTN_RETURN_IF_ERROR(vb.alloc(count));
        ATTN_RETURN_IF_ERROR(cuda::fill_normal_bf16(ctx, qb.get(), count, 1, 1.0f));
        ATTN_RETURN_IF_ERROR(cuda::fill_normal_bf16(ctx, kb.get(), count, 2, 1.0f));
        ATTN_RETURN_IF_ERROR(cuda::fill_normal_bf16(ctx, vb.get(), count, 3, 1.0f));
      } else {
        ATTN_RETURN_IF_ERROR(qf.alloc(count));
        ATTN_RETURN_IF_ERROR(kf.alloc(count));
        ATTN_RETURN_IF_ERROR(vf.alloc(count));
        ATTN_RETURN_IF_ERROR(cuda::fill_normal(ctx, qf.get(), count, 1, 1.0f));
        ATTN_RETURN_IF_ERROR(cuda::fill_normal(ctx, kf.get(), count, 2, 1.0f));
        ATTN_RETURN_IF_ERROR(cuda::fill_normal(ctx, vf.get(), count, 3, 1.0f));
      }
      auto dense = [&]() -> Status {
        if (bf16)
          return cuda::attn_dense_bf16(ctx, qb.get(), kb.get(), vb.get(), out.get(), heads, n, n, d,
                                       0);
        return cuda::attn_dense(ctx, qf.get(), kf.get(), vf.get(), out.get(), heads, n, n, d, 0, p);
      };
      auto ms = cuda::time_median(ctx, dense, kWarm, kRuns);
      if (!ms) return ms.status();
      CudaBenchRow r;
      r.what = "dense causal";
      r.n = n, r.heads = heads, r.d = d, r.ms = *ms;
      const double causal_flops = 4.0 * static_cast<double>(n) * n * heads * d / 2.0;
      r.tflops = causal_flops / (*ms * 1e-3) / 1e12;
      rows.push_back(r);

      // Block-sparse strided, l = sqrt(n) rounded up to the block, both sets in every head.
      SparseConfig cfg;
      cfg.pattern = SparsePattern::kStrided;
      cfg.block = 32;
      cfg.combine = SparseCombine::kMerged;
      const int64_t root = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
      cfg.stride = static_cast<int>((root + cfg.block - 1) / cfg.block * cfg.block);
      auto plan = cuda::sparse_plan(cfg, 0, heads, n);
      if (!plan) return plan.status();
      auto sparse = [&]() -> Status {
        if (bf16)
          return cuda::attn_sparse_bf16(ctx, **plan, qb.get(), kb.get(), vb.get(), out.get(), d);
        return cuda::attn_sparse(ctx, **plan, qf.get(), kf.get(), vf.get(), out.get(), d, p);
      };
      auto ms_s = cuda::time_median(ctx, sparse, kWarm, kRuns);
      if (!ms_s) return ms_s.status();
      CudaBenchRow s;
      s.what = "block-sparse strided";
      s.n = n, s.heads = heads, s.d = d, s.ms = *ms_s;
      const double pairs = static_cast<double>(heads) * n * (n + 1) / 2.0;
      s.density = static_cast<double>(attn_sparse_layout_entries(cfg, 0, heads, n)) / pairs;
      // Work the device layout evaluates (its 64-row blocks keep a few more masked entries).
      s.tflops =
          4.0 * d * static_cast<double>(cuda::sparse_plan_entries(**plan)) / (*ms_s * 1e-3) / 1e12;
      rows.push_back(s);
    }
  }

  // The hardware anchor: C (M, N) bf16 = A (M, K) · B (K, N), bf16 in, float32 accumulation.
  {
    constexpr int64_t M = 8192, N = 8192, K = 8192;
    DeviceBuffer<__nv_bfloat16> a, b, c;
    ATTN_RETURN_IF_ERROR(a.alloc(M * K));
    ATTN_RETURN_IF_ERROR(b.alloc(K * N));
    ATTN_RETURN_IF_ERROR(c.alloc(M * N));
    ATTN_RETURN_IF_ERROR(cuda::fill_normal_bf16(ctx, a.get(), M * K, 4, 1.0f));
    ATTN_RETURN_IF_ERROR(cuda::fill_normal_bf16(ctx, b.get(), K * N, 5, 1.0f));
    auto gemm = [&]() -> Status {
      return cuda::lt_matmul_bf16(ctx, a.get(), b.get(), c.get(), CUDA_R_16BF, M, K, N, 0.0f);
    };
    auto ms = cuda::time_median(ctx, gemm, kWarm, kRuns);
    if (!ms) return ms.status();
    CudaBenchRow g;
    g.what = "bf16 gemm";
    g.n = M, g.heads = 0, g.d = 0, g.ms = *ms;
    g.tflops = 2.0 * M * N * K / (*ms * 1e-3) / 1e12;
    rows.push_back(g);
  }
  return rows;
}

}  // namespace attnscope
