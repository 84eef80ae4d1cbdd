// The CUDA context and the dense device ops: matrix products (cuBLAS, cuBLASLt for bf16),
// bias, layer norm, GELU, residual add, head split/merge, cache rows, the embedding gather
// and the Hourglass shift-pool / repeat-upsample. Semantics are those of engine/ops/ops.cpp,
// engine/models/common.cpp and engine/models/hourglass.cpp.
#include <climits>

#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.cuh"

namespace attnscope::cuda {

// ---- context -----------------------------------------------------------------------------

Expected<std::unique_ptr<CudaCtx>> CudaCtx::create(CudaPrecision p) {
  std::unique_ptr<CudaCtx> c(new CudaCtx());
  c->precision = p;
  ATTN_CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
  ATTN_CUDA_CHECK(cublasCreate(&c->cublas));
  ATTN_CUDA_CHECK(cublasSetStream(c->cublas, c->stream));
  ATTN_CUDA_CHECK(cublasLtCreate(&c->lt));
  c->lt_workspace_bytes = size_t{32} << 20;
  ATTN_CUDA_CHECK(cudaMalloc(&c->lt_workspace, c->lt_workspace_bytes));
  // cuBLAS itself gets the same workspace budget (its default pool is per stream).
  return std::move(c);
}

CudaCtx::~CudaCtx() {
  // Errors at teardown (a process exiting after the runtime unloaded) are ignored.
  for (void*& s : scratch_)
    if (s) cudaFree(s), s = nullptr;
  if (lt_workspace) cudaFree(lt_workspace);
  if (lt) cublasLtDestroy(lt);
  if (cublas) cublasDestroy(cublas);
  if (stream) cudaStreamDestroy(stream);
}

Expected<void*> CudaCtx::scratch(size_t bytes, int slot) {
  if (slot < 0 || slot >= 4) return invalid_argument("CudaCtx::scratch: slot must be 0..3");
  if (bytes > scratch_bytes_[slot]) {
    if (scratch_[slot]) {
      // The old buffer may still be in use by queued work on the stream.
      ATTN_CUDA_CHECK(cudaStreamSynchronize(stream));
      ATTN_CUDA_CHECK(cudaFree(scratch_[slot]));
      scratch_[slot] = nullptr;
      scratch_bytes_[slot] = 0;
    }
    ATTN_CUDA_CHECK(cudaMalloc(&scratch_[slot], bytes));
    scratch_bytes_[slot] = bytes;
  }
  return scratch_[slot];
}

Status CudaCtx::sync() const {
  ATTN_CUDA_CHECK(cudaStreamSynchronize(stream));
  return Status::ok();
}

// ---- matrix products ---------------------------------------------------------------------

namespace {

// Destroys cuBLASLt descriptors on every return path.
struct LtDescs {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~LtDescs() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

// The largest power of two up to 256 that divides the address.
uint32_t alignment_of(const void* p) {
  const uintptr_t v = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && v % a != 0) a /= 2;
  return a;
}

Status check_gemm_dims(const char* what, int64_t m, int64_t k, int64_t n) {
  if (m < 0 || k < 0 || n < 0 || m > INT_MAX || k > INT_MAX || n > INT_MAX)
    return invalid_argument(std::string(what) + ": sizes m=" + std::to_string(m) +
                            " k=" + std::to_string(k) + " n=" + std::to_string(n) +
                            " must be in 0.." + std::to_string(INT_MAX));
  return Status::ok();
}

__global__ void to_bf16_kernel(const float* __restrict__ src, __nv_bfloat16* __restrict__ dst,
                               int64_t count) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x)
    dst[i] = __float2bfloat16_rn(src[i]);
}

}  // namespace

// Row-major c (m, n) = a (m, k) · b (k, n) is the column-major product c^T = b^T · a^T: the
// column-major "A" is b as (n, k) with ld n, "B" is a as (k, m) with ld k, C is (n, m) ld n.
Status lt_matmul_bf16(CudaCtx& ctx, const __nv_bfloat16* a, const __nv_bfloat16* b, void* c,
                      cudaDataType_t c_type, int64_t m, int64_t k, int64_t n, float beta) {
  ATTN_RETURN_IF_ERROR(check_gemm_dims("matmul (bf16)", m, k, n));
  if (m == 0 || n == 0) return Status::ok();
  if (k == 0) {
    // An empty inner dimension (cuBLASLt may refuse it): the product is zero.
    const size_t elem = c_type == CUDA_R_32F ? 4 : 2;
    if (beta == 0.0f)
      ATTN_CUDA_CHECK(cudaMemsetAsync(c, 0, static_cast<size_t>(m * n) * elem, ctx.stream));
    return Status::ok();
  }
  LtDescs ds;
  ATTN_CUDA_CHECK(cublasLtMatmulDescCreate(&ds.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t no = CUBLAS_OP_N;
  ATTN_CUDA_CHECK(
      cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_TRANSA, &no, sizeof(no)));
  ATTN_CUDA_CHECK(
      cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_TRANSB, &no, sizeof(no)));
  ATTN_CUDA_CHECK(cublasLtMatrixLayoutCreate(&ds.a, CUDA_R_16BF, n, k, n));
  ATTN_CUDA_CHECK(cublasLtMatrixLayoutCreate(&ds.b, CUDA_R_16BF, k, m, k));
  ATTN_CUDA_CHECK(cublasLtMatrixLayoutCreate(&ds.c, c_type, n, m, n));
  ATTN_CUDA_CHECK(cublasLtMatmulPreferenceCreate(&ds.pref));
  ATTN_CUDA_CHECK(cublasLtMatmulPreferenceSetAttribute(
      ds.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ctx.lt_workspace_bytes,
      sizeof(ctx.lt_workspace_bytes)));
  // The heuristics assume 256-byte aligned matrices unless told otherwise: state the real
  // alignment of each pointer (column-major "A" is b, "B" is a) so no algorithm needs more.
  const uint32_t align_a = alignment_of(b), align_b = alignment_of(a), align_c = alignment_of(c);
  ATTN_CUDA_CHECK(cublasLtMatmulPreferenceSetAttribute(
      ds.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof(align_a)));
  ATTN_CUDA_CHECK(cublasLtMatmulPreferenceSetAttribute(
      ds.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof(align_b)));
  ATTN_CUDA_CHECK(cublasLtMatmulPreferenceSetAttribute(
      ds.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c, sizeof(align_c)));
  ATTN_CUDA_CHECK(cublasLtMatmulPreferenceSetAttribute(
      ds.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c, sizeof(align_c)));
  cublasLtMatmulHeuristicResult_t heur{};
  int found = 0;
  const cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(ctx.lt, ds.op, ds.a, ds.b, ds.c, ds.c,
                                                           ds.pref, 1, &heur, &found);
  const float alpha = 1.0f;
  if (hs != CUBLAS_STATUS_SUCCESS || found == 0) {
    // No cuBLASLt algorithm for these sizes or alignments (odd leading dimensions): cuBLAS's
    // GemmEx takes any shape with the same types and float32 accumulation.
    ATTN_CUDA_CHECK(cublasGemmEx(ctx.cublas, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(n),
                                 static_cast<int>(m), static_cast<int>(k), &alpha, b, CUDA_R_16BF,
                                 static_cast<int>(n), a, CUDA_R_16BF, static_cast<int>(k), &beta, c,
                                 c_type, static_cast<int>(n), CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT));
    return Status::ok();
  }
  ATTN_CUDA_CHECK(cublasLtMatmul(ctx.lt, ds.op, &alpha, b, ds.a, a, ds.b, &beta, c, ds.c, c, ds.c,
                                 &heur.algo, ctx.lt_workspace, ctx.lt_workspace_bytes, ctx.stream));
  return Status::ok();
}

Status to_bf16(CudaCtx& ctx, const float* src, __nv_bfloat16* dst, int64_t count) {
  if (count <= 0) return Status::ok();
  to_bf16_kernel<<<grid_for(count), kThreads, 0, ctx.stream>>>(src, dst, count);
  ATTN_CUDA_CHECK_LAUNCH();
  return Status::ok();
}

Status matmul_bf16(CudaCtx& ctx, const __nv_bfloat16* a, const __nv_bfloat16* b, float* c,
                   int64_t m, int64_t k, int64_t n, bool accumulate) {
  return lt_matmul_bf16(ctx, a, b, c, CUDA_R_32F, m, k, n, accumulate ? 1.0f : 0.0f);
}

Status matmul(CudaCtx& ctx, const float* a, const float* b, float* c, int64_t m, int64_t k,
              int64_t n, CudaPrecision p, bool accumulate) {
  ATTN_RETURN_IF_ERROR(check_gemm_dims("matmul", m, k, n));
  if (m == 0 || n == 0) return Status::ok();
  if (p == CudaPrecision::kBF16) {
    // a, b converted into scratch slot 3: a16 (m, k) then b16 (k, n) at the next 256 bytes.
    const int64_t a_elems = (m * k + 127) / 128 * 128;
    const size_t elems = static_cast<size_t>(a_elems + k * n);
    auto s = ctx.scratch(elems * sizeof(__nv_bfloat16) + 256, 3);
    if (!s) return s.status();
    auto* a16 = static_cast<__nv_bfloat16*>(*s);
    __nv_bfloat16* b16 = a16 + a_elems;
    ATTN_RETURN_IF_ERROR(to_bf16(ctx, a, a16, m * k));
    ATTN_RETURN_IF_ERROR(to_bf16(ctx, b, b16, k * n));
    return matmul_bf16(ctx, a16, b16, c, m, k, n, accumulate);
  }
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  const cublasComputeType_t compute =
      p == CudaPrecision::kTF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  ATTN_CUDA_CHECK(cublasGemmEx(ctx.cublas, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(n),
                               static_cast<int>(m), static_cast<int>(k), &alpha, b, CUDA_R_32F,
                               static_cast<int>(n), a, CUDA_R_32F, static_cast<int>(k), &beta, c,
                               CUDA_R_32F, static_cast<int>(n), compute, CUBLAS_GEMM_DEFAULT));
  return Status::ok();
}

// ---- elementwise -------------------------------------------------------------------------

namespace {

__global__ void add_bias_kernel(float* y, const float* bias, int64_t rows, int64_t n) {
  const int64_t total = rows * n;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x)
    y[i] += bias[i % n];
}

__global__ void gelu_kernel(float* x, int64_t count) {
  const float kc = 0.7978845608028654f;  // sqrt(2/pi)
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + tanhf(kc * (v + 0.044715f * v * v * v)));
  }
}

__global__ void add_kernel(float* y, const float* x, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x)
    y[i] += x[i];
}

// One block per row; mean and variance in double as op_layernorm.
__global__ void layernorm_kernel(const float* x, const float* g, const float* b, float* y,
                                 int64_t D) {
  __shared__ double red[kThreads / 32];
  const int64_t row = blockIdx.x;
  const float* xr = x + row * D;
  float* yr = y + row * D;
  double mean, inv_std;
  row_mean_inv_std(xr, D, red, &mean, &inv_std);
  const float inv = static_cast<float>(inv_std);
  const float mu = static_cast<float>(mean);
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) yr[i] = (xr[i] - mu) * inv * g[i] + b[i];
}

// out (H, n, d) from x (n, H*d), or back when merge.
__global__ void heads_kernel(const float* x, float* out, int64_t n, int heads, int d, bool merge) {
  const int64_t total = n * heads * d;
  const int64_t D = static_cast<int64_t>(heads) * d;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    // i indexes the (H, n, d) tensor.
    const int64_t c = i % d, t = (i / d) % n, h = i / (d * n);
    const int64_t j = t * D + h * d + c;
    if (merge)
      out[j] = x[i];
    else
      out[i] = x[j];
  }
}

__global__ void cache_row_kernel(const float* x, float* cache, int heads, int64_t cap, int d,
                                 int64_t row, const int64_t* row_dev) {
  const int64_t r = row_dev ? *row_dev : row;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < int64_t{heads} * d;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t h = i / d, c = i % d;
    cache[(h * cap + r) * d + c] = x[i];
  }
}

__device__ void embed_row(const EmbedTables& t, int64_t p, int prev, int64_t i, float* out) {
  const float* tok = p == 0 ? t.bos : t.token + static_cast<int64_t>(prev) * t.D;
  int64_t row, col;
  const float* chan = nullptr;
  if (t.image) {
    chan = t.pos_channel + (p % t.channels) * t.D;
    col = (p / t.channels) % t.width;
    row = p / (t.channels * t.width);
  } else {
    row = p / t.pos_width;
    col = p % t.pos_width;
  }
  // The CPU's order: ((tok + pr) + pc) + chan.
  *out = tok[i] + t.pos_row[row * t.D + i] + t.pos_col[col * t.D + i] + (chan ? chan[i] : 0.0f);
}

__global__ void embed_kernel(EmbedTables t, const uint8_t* x, int64_t p0, int64_t count,
                             float* out) {
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < count * t.D;
       e += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = e / t.D, i = e % t.D, p = p0 + r;
    embed_row(t, p, p > 0 ? x[p - 1] : 0, i, out + e);
  }
}

__global__ void embed_one_kernel(EmbedTables t, int64_t p, int prev, float* out,
                                 const int64_t* pos_dev, const int* prev_dev) {
  const int64_t pp = pos_dev ? *pos_dev : p;
  const int pv = prev_dev ? *prev_dev : prev;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < t.D;
       i += int64_t{gridDim.x} * blockDim.x)
    embed_row(t, pp, pp > 0 ? pv : 0, i, out + i);
}

}  // namespace

Status add_bias(CudaCtx& ctx, float* y, const float* bias, int64_t rows, int64_t n) {
  if (rows <= 0 || n <= 0) return Status::ok();
  add_bias_kernel<<<grid_for(rows * n), kThreads, 0, ctx.stream>>>(y, bias, rows, n);
  ATTN_CUDA_CHECK_LAUNCH();
  return Status::ok();
}

Status layernorm(CudaCtx& ctx, const float* x, const float* g, const float* b, float* y, int64_t n,
                 int64_t D) {
  if (n <= 0 || D <= 0) return Status::ok();
  if (n > INT_MAX) return invalid_argument("layernorm: more than 2^31 rows");
  layernorm_kernel<<<static_cast<unsigned>(n), kThreads, 0, ctx.stream>>>(x, g, b, y, D);
  ATTN_CUDA_CHECK_LAUNCH();
  return Status::ok();
}

Status gelu(CudaCtx& ctx, float* x, int64_t count) {
  if (count <= 0) return Status::ok();
  gelu_kernel<<<grid_for(count), kThreads, 0, ctx.stream>>>(x, count);
  ATTN_CUDA_CHECK_LAUNCH();
  return Status::ok();
}

Status add(CudaCtx& ctx, float* y, const float* x, int64_t count) {
  if (count <= 0) return Status::ok();
  add_kernel<<<grid_for(count), kThreads, 0, ctx.stream>>>(y, x, count);
  ATTN_CUDA_CHECK_LAUNCH();
  return Status::ok();
}

Status split_heads(CudaCtx& ctx, const float* x, float* out, int64_t n, int heads, int d) {
  if (n <= 0 || heads <= 0 || d <= 0) return Status::ok();
  heads_kernel<<<grid_for(n * heads * d), kThreads, 0, ctx.stream>>>(x, out, n, heads, d, false);
  ATTN_CUDA_CHECK_LAUNCH();
  return Status::ok();
}

Status merge_heads(CudaCtx& ctx, const float* x, float* out, int64_t n, int heads, int d) {
  if (n <= 0 || heads <= 0 || d <= 0) return Status::ok();
  heads_kernel<<<grid_for(n * heads * d), kThreads, 0, ctx.stream>>>(x, out, n, heads, d, true);
  ATTN_CUDA_CHECK_LAUNCH();
  return Status::ok();
}

Status cache_write_row(CudaCtx& ctx, const float* x, float* cache, int heads, int64_t cap, int d,
                       int64_t row, const int64_t* row_dev) {
  if (heads <= 0 || d <= 0) return Status::ok();
  if (!row_dev && (row < 0 || row >= cap))
    return invalid_argument("cache_write_row: row " + std::to_string(row) + " outside 0.." +
                            std::to_string(cap - 1));
  cache_row_kernel<<<grid_for(int64_t{heads} * d), kThreads, 0, ctx.stream>>>(x, cache, heads, cap,
                                                                              d, row, row_dev);
  ATTN_CUDA_CHECK_LAUNCH();
  return Status::ok();
}

EmbedTables embed_tables(const ModelConfig& cfg, const float* token, const float* bos,
                         const float* pos_row, const float* pos_col, const float* pos_channel) {
  EmbedTables t{};
  t.token = token;
  t.bos = bos;
  t.pos_row = pos_row;
  t.pos_col = pos_col;
  t.pos_channel = pos_channel;
  t.D = cfg.dim;
  t.image = cfg.modality.kind == ModalityKind::kImage;
  t.channels = cfg.modality.channels;
  t.width = cfg.modality.width;
  t.pos_width = cfg.pos_width > 0 ? cfg.pos_width : 1;
  return t;
}

Status embed(CudaCtx& ctx, const EmbedTables& t, const uint8_t* x, int64_t p0, int64_t count,
             float* out) {
  if (count <= 0) return Status::ok();
  if (t.image && !t.pos_channel) return invalid_argument("embed: image modality needs pos_channel");
  embed_kernel<<<grid_for(count * t.D), kThreads, 0, ctx.stream>>>(t, x, p0, count, out);
  ATTN_CUDA_CHECK_LAUNCH();
  return Status::ok();
}

Status embed_one(CudaCtx& ctx, const EmbedTables& t, int64_t p, int prev, float* out,
                 const int64_t* pos_dev, const int* prev_dev) {
  if (t.image && !t.pos_channel) return invalid_argument("embed: image modality needs pos_channel");
  embed_one_kernel<<<grid_for(t.D), kThreads, 0, ctx.stream>>>(t, p, prev, out, pos_dev, prev_dev);
  ATTN_CUDA_CHECK_LAUNCH();
  return Status::ok();
}

}  // namespace attnscope::cuda
