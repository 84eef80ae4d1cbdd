// Internal helpers of the CUDA backend's .cu files: launch geometry, warp and block
// reductions, and the cuBLASLt bf16 product shared by the ops and the benchmark.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "backend/cuda/kernels.cuh"

namespace attnscope::cuda {

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over count elements (capped; the loop covers the rest).
inline unsigned grid_for(int64_t count) {
  const int64_t blocks = (count + kThreads - 1) / kThreads;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, 65535 * 8));
}

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <typename T>
__device__ __forceinline__ T warp_max(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most kThreads); red has one slot per
// warp. Every thread gets the total. Contains __syncthreads: call from all threads.
template <typename T>
__device__ T block_sum(T v, T* red) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_sum(v);
  __syncthreads();  // red may still be read by a previous call
  if (lane == 0) red[warp] = v;
  __syncthreads();
  T total = 0;
  for (int w = 0; w < warps; ++w) total += red[w];
  return total;
}

// Mean and 1/sqrt(variance + 1e-5) of the row xr (D), in double as op_layernorm; the whole
// block calls it (red: one slot per warp) and every thread gets both.
__device__ inline void row_mean_inv_std(const float* xr, int64_t D, double* red, double* mean,
                                        double* inv) {
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) s += xr[i];
  const double m = block_sum(s, red) / static_cast<double>(D);
  double v = 0.0;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    const double t = xr[i] - m;
    v += t * t;
  }
  *mean = m;
  *inv = 1.0 / sqrt(block_sum(v, red) / static_cast<double>(D) + 1e-5);
}

// Row-major c (m, n) (+)= a (m, k) · b (k, n), bf16 inputs, float32 accumulation, c of type
// c_type (CUDA_R_32F or CUDA_R_16BF); beta 0 or 1. cuda_ops.cu.
Status lt_matmul_bf16(CudaCtx& ctx, const __nv_bfloat16* a, const __nv_bfloat16* b, void* c,
                      cudaDataType_t c_type, int64_t m, int64_t k, int64_t n, float beta);

// count = product of dims (host-pointer API sizes), refused when negative or beyond 2^60
// elements, so that an impossible size is a message before any allocation.
inline Status element_count(const char* what, std::initializer_list<int64_t> dims, size_t* count) {
  unsigned __int128 n = 1;
  for (int64_t x : dims) {
    if (x < 0) return invalid_argument(std::string(what) + ": negative size");
    n *= static_cast<unsigned __int128>(x);
    if (n > (static_cast<unsigned __int128>(1) << 60))
      return invalid_argument(std::string(what) + ": size overflows");
  }
  *count = static_cast<size_t>(n);
  return Status::ok();
}

// The context of the host-pointer API (cuda.h): one per thread, created on first use.
Expected<CudaCtx*> host_ctx();

}  // namespace attnscope::cuda
