// The CUDA backend's device-pointer API: a context (stream, cuBLAS/cuBLASLt handles, scratch,
// precision), the CUDA error check that turns a failed call into a Status, and every device op
// the models compose. All pointers are device pointers, all tensors row-major float32 unless
// a comment says otherwise; every call is asynchronous on ctx.stream and returns a Status
// (launch and argument errors only: kernel faults surface at the next synchronising call).
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "attnscope/attention.h"
#include "attnscope/config.h"
#include "attnscope/status.h"
#include "backend/cuda/testing.h"

namespace attnscope::cuda {

// ---- errors --------------------------------------------------------------------------------
inline std::string cuda_error_text(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}
inline std::string cuda_error_text(cublasStatus_t e) {
  return std::string(cublasGetStatusName(e)) + ": " + cublasGetStatusString(e);
}
inline bool cuda_failed(cudaError_t e) {
  return e != cudaSuccess;
}
inline bool cuda_failed(cublasStatus_t e) {
  return e != CUBLAS_STATUS_SUCCESS;
}
// A Status naming the failed expression, file:line and the library's own error text. A failed
// runtime call also leaves its code as the thread's "last error"; it is cleared here so that
// the next launch check does not report it again (sticky errors stay, as they must).
template <typename E>
Status cuda_status(E e, const char* expr, const char* file, int line) {
  if constexpr (std::is_same_v<E, cudaError_t>) cudaGetLastError();
  return internal_error(std::string("CUDA call failed at ") + file + ":" + std::to_string(line) +
                        ": " + expr + ": " + cuda_error_text(e));
}

}  // namespace attnscope::cuda

// Evaluates a cudaError_t or cublasStatus_t expression; on failure returns (from the enclosing
// function, which must return Status or Expected<T>) an internal error with file:line.
#define ATTN_CUDA_CHECK(expr)                                               \
  do {                                                                      \
    auto _e = (expr);                                                       \
    if (::attnscope::cuda::cuda_failed(_e))                                 \
      return ::attnscope::cuda::cuda_status(_e, #expr, __FILE__, __LINE__); \
  } while (0)
// After a kernel launch: the launch error (bad configuration, too much shared memory).
#define ATTN_CUDA_CHECK_LAUNCH() ATTN_CUDA_CHECK(cudaGetLastError())

namespace attnscope::cuda {

// ---- the context -----------------------------------------------------------------------------
// One per model or per host call. Owns its stream and handles; scratch grows on demand
// (synchronously: size it with reserve() before capturing a CUDA graph).
class CudaCtx {
 public:
  // Creates a stream (non-blocking), a cuBLAS handle bound to it, a cuBLASLt handle and a
  // 32 MiB cuBLASLt workspace on the current device.
  static Expected<std::unique_ptr<CudaCtx>> create(CudaPrecision p);
  ~CudaCtx();
  CudaCtx(const CudaCtx&) = delete;
  CudaCtx& operator=(const CudaCtx&) = delete;

  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  cublasLtHandle_t lt = nullptr;
  void* lt_workspace = nullptr;
  size_t lt_workspace_bytes = 0;
  CudaPrecision precision = CudaPrecision::kF32;

  // Device scratch of at least bytes (contents undefined), valid until the next scratch()
  // call with a larger size. slot 0..3 are independent buffers (an op may use several).
  Expected<void*> scratch(size_t bytes, int slot = 0);
  Status reserve(size_t bytes, int slot = 0) { return scratch(bytes, slot).status(); }
  Status sync() const;

 private:
  CudaCtx() = default;
  void* scratch_[4] = {nullptr, nullptr, nullptr, nullptr};
  size_t scratch_bytes_[4] = {0, 0, 0, 0};
};

// A device buffer owned by a unique_ptr-like handle (cudaFree on destruction).
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) reset(), p_ = o.p_, n_ = o.n_, o.p_ = nullptr, o.n_ = 0;
    return *this;
  }
  Status alloc(size_t count) {
    reset();
    if (count == 0) return Status::ok();
    ATTN_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p_), count * sizeof(T)));
    n_ = count;
    return Status::ok();
  }
  Status upload(const T* host, size_t count, cudaStream_t s) {
    if (count > n_) ATTN_RETURN_IF_ERROR(alloc(count));
    if (count)
      ATTN_CUDA_CHECK(cudaMemcpyAsync(p_, host, count * sizeof(T), cudaMemcpyHostToDevice, s));
    return Status::ok();
  }
  Status download(T* host, size_t count, cudaStream_t s) const {
    if (count)
      ATTN_CUDA_CHECK(cudaMemcpyAsync(host, p_, count * sizeof(T), cudaMemcpyDeviceToHost, s));
    return Status::ok();
  }
  void reset() {
    if (p_) cudaFree(p_);
    p_ = nullptr, n_ = 0;
  }
  T* get() const { return p_; }
  size_t size() const { return n_; }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

// ---- dense ops (cuda_ops.cu) -------------------------------------------------------------
// c (m, n) = a (m, k) · b (k, n), or c += a · b when accumulate. p: kF32 plain float32
// (cublasGemmEx, CUBLAS_COMPUTE_32F), kTF32 (CUBLAS_COMPUTE_32F_FAST_TF32), kBF16 (a and b
// converted to bf16 in ctx scratch slot 3, cuBLASLt with float32 accumulation and output;
// cublasGemmEx with the same types when cuBLASLt has no algorithm for the shape).
Status matmul(CudaCtx& ctx, const float* a, const float* b, float* c, int64_t m, int64_t k,
              int64_t n, CudaPrecision p, bool accumulate = false);
// The same with a and b already bf16 and c float32 (weights stored bf16 once).
Status matmul_bf16(CudaCtx& ctx, const __nv_bfloat16* a, const __nv_bfloat16* b, float* c,
                   int64_t m, int64_t k, int64_t n, bool accumulate = false);
// dst (count) = bf16(src (count)), round to nearest even.
Status to_bf16(CudaCtx& ctx, const float* src, __nv_bfloat16* dst, int64_t count);
// y (rows, n) += bias (n) on every row.
Status add_bias(CudaCtx& ctx, float* y, const float* bias, int64_t rows, int64_t n);
// y (n, D) = (x - mean) / sqrt(var + 1e-5) * g + b per row (statistics in double, as the CPU).
// y may equal x.
Status layernorm(CudaCtx& ctx, const float* x, const float* g, const float* b, float* y, int64_t n,
                 int64_t D);
// x (count) in place: GPT-2's tanh GELU.
Status gelu(CudaCtx& ctx, float* x, int64_t count);
// y (count) += x (count).
Status add(CudaCtx& ctx, float* y, const float* x, int64_t count);
// x (n, H*d) -> out (H, n, d).
Status split_heads(CudaCtx& ctx, const float* x, float* out, int64_t n, int heads, int d);
// x (H, n, d) -> out (n, H*d).
Status merge_heads(CudaCtx& ctx, const float* x, float* out, int64_t n, int heads, int d);
// Row i of one head of a (H, cap, d) cache: cache[h, row, :] = x[h*d .. h*d+d) for each h, x
// (H*d). row_dev, when not null, is read on the device (for CUDA graphs); else row is used.
Status cache_write_row(CudaCtx& ctx, const float* x, float* cache, int heads, int64_t cap, int d,
                       int64_t row, const int64_t* row_dev = nullptr);

// The embedding of common.cpp embed_one on the device. Pointers are device tables as in
// CommonParams; pos_channel is null unless the modality is an image.
struct EmbedTables {
  const float *token, *bos, *pos_row, *pos_col, *pos_channel;
  int64_t D;
  // Positions: image (C, W) from the modality; else pos_width (row = p / w, col = p % w).
  bool image;
  int64_t channels, width, pos_width;
};
EmbedTables embed_tables(const ModelConfig& cfg, const float* token, const float* bos,
                         const float* pos_row, const float* pos_col, const float* pos_channel);
// out (count, D): inputs at positions p0 .. p0+count-1 of tokens x (device bytes, BOS at 0,
// x[p-1] after): exactly embed_inputs.
Status embed(CudaCtx& ctx, const EmbedTables& t, const uint8_t* x, int64_t p0, int64_t count,
             float* out);
// out (D): the input at position p (read from pos_dev when not null) with previous token prev
// (read from prev_dev when not null; ignored at p = 0): exactly embed_one.
Status embed_one(CudaCtx& ctx, const EmbedTables& t, int64_t p, int prev, float* out,
                 const int64_t* pos_dev = nullptr, const int* prev_dev = nullptr);

// ---- attention (attn_dense.cu, attn_sparse.cu, attn_lsh.cu) --------------------------------
// Dense causal attention with query offset (attn_dense_forward_cpu): q (H, nq, d), k, v
// (H, nk, d), out (H, nq, d); query m sees keys j <= q_offset + m, j < nk. One fused,
// tiled kernel (64 queries x 64 keys, online softmax in shared memory); kF32 on CUDA cores,
// kTF32 and kBF16 on tensor cores (wmma, float32 accumulation and softmax). d must be 32, 64
// or 128.
Status attn_dense(CudaCtx& ctx, const float* q, const float* k, const float* v, float* out,
                  int heads, int64_t nq, int64_t nk, int d, int64_t q_offset, CudaPrecision p);
// The same with bf16 inputs (the benchmark's and a bf16 model's path); out stays float32.
Status attn_dense_bf16(CudaCtx& ctx, const __nv_bfloat16* q, const __nv_bfloat16* k,
                       const __nv_bfloat16* v, float* out, int heads, int64_t nq, int64_t nk, int d,
                       int64_t q_offset);

// A Sparse Transformer layer's block layout at length n, uploaded once: the CPU layout's
// passes (engine/attention/sparse.cpp) flattened to device arrays. Build one per (layer, n)
// and reuse it; it holds device memory.
struct SparsePlan;
struct SparsePlanDeleter {
  void operator()(SparsePlan* p) const;
};
using SparsePlanPtr = std::unique_ptr<SparsePlan, SparsePlanDeleter>;
Expected<SparsePlanPtr> sparse_plan(const SparseConfig& cfg, int layer, int heads, int64_t n);
// Score entries the plan evaluates: the CPU layout's rule with 64-row blocks (at least
// attn_sparse_layout_entries, which uses cfg.block rows).
int64_t sparse_plan_entries(const SparsePlan& plan);
// Block-sparse forward: q, k, v, out (H, n, d) with the plan's heads and n; empty blocks are
// never loaded. Uses ctx scratch slot 0 for the online-softmax state (2 H n floats).
Status attn_sparse(CudaCtx& ctx, const SparsePlan& plan, const float* q, const float* k,
                   const float* v, float* out, int d, CudaPrecision p);
Status attn_sparse_bf16(CudaCtx& ctx, const SparsePlan& plan, const __nv_bfloat16* q,
                        const __nv_bfloat16* k, const __nv_bfloat16* v, float* out, int d);

// Shared-QK LSH attention (attn_lsh_forward_cpu): qk, v, out (H, n, d); rotations device
// (n_hashes, d, n_buckets/2). Buckets (H, R, n) and order (H, R, n) are left in the device
// arrays buckets_out / order_out when not null. Hashes are computed in double in ascending k,
// as the CPU's exact projection (float x float products are exact in double, so the sums
// round identically); sorting is CUB's segmented radix sort of bucket * n + position.
Status attn_lsh(CudaCtx& ctx, const float* qk, const float* v, float* out, int heads, int64_t n,
                int d, const LshSpec& spec, const float* rotations, int* buckets_out = nullptr,
                int* order_out = nullptr);

// Decode: one query per head, q (H, d), against rows of a cache (H, cap, d); out (H, d).
// Dense: the first n_keys rows (n_keys_dev, when not null, is read on the device instead).
Status attn_decode_dense(CudaCtx& ctx, const float* q, const float* kcache, const float* vcache,
                         float* out, int heads, int64_t cap, int64_t n_keys, int d,
                         const int64_t* n_keys_dev = nullptr);
// Sparse pattern of (cfg, layer) for the query at position i (i_dev, when not null, read on
// the device): reads only the keys of A(i) (attn_sparse_decode_cpu).
Status attn_decode_sparse(CudaCtx& ctx, const float* q, const float* kcache, const float* vcache,
                          float* out, int heads, int64_t cap, int64_t i, int d,
                          const SparseConfig& cfg, int layer, const int64_t* i_dev = nullptr);

// ---- sampling (sample.cu) ----------------------------------------------------------------
// Draws one token from logits (256, device) as Sampler::sample does given its uniform u in
// [0, 1): stable sort by logit descending, temperature (0 = argmax), top-k, top-p, then the
// first kept rank whose cumulative probability exceeds u * kept mass. The token goes to
// token_out (device int). u_dev, when not null, is read on the device instead of u.
Status sample_token(CudaCtx& ctx, const float* logits, float temperature, int top_k, float top_p,
                    double u, int* token_out, const double* u_dev = nullptr);

// ---- benchmark helpers (bench.cu) ---------------------------------------------------------
// Fills x (count) with N(0, scale) values from seed (device-side hash generator).
Status fill_normal(CudaCtx& ctx, float* x, int64_t count, uint64_t seed, float scale);
Status fill_normal_bf16(CudaCtx& ctx, __nv_bfloat16* x, int64_t count, uint64_t seed, float scale);

}  // namespace attnscope::cuda
