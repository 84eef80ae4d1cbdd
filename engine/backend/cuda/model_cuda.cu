// The device models behind model_create_cuda (cuda.h): weights uploaded once, every family's
// forward on the GPU (Reformer through the LSH kernel), and the per-token decode step captured once
// per decode state in a CUDA graph and replayed with its position and token in device memory.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "attnscope/attention.h"
#include "attnscope/config.h"
#include "attnscope/cuda.h"
#include "attnscope/model.h"
#include "backend/cuda/kernels.cuh"

namespace attnscope {
namespace {

using bf16 = __nv_bfloat16;
using cuda::CudaCtx;
using cuda::DeviceBuffer;

constexpr int kLaneDims = 8;  // the row kernel holds d / 32 <= 8 values per lane: d <= 256
constexpr int kThreads = 256;

unsigned grid(int64_t count) {
  return static_cast<unsigned>(std::max<int64_t>(1, (count + kThreads - 1) / kThreads));
}

// ---- local kernels: the pieces kernels.cuh has no op for ---------------------------------

// Row attention for any head width d <= 256, one warp per (query row, head): the key set of query
// position i is enumerated directly (no mask tests, no empty blocks), scores are reduced across the
// warp and folded into an online softmax. mode per head: 0 causal (j <= i, j < nk); 1-3 strided A1
// / A2 / union; 4-6 fixed A1 / A2 / union (attention/sparse.cpp's sets). Row r sits at position
// q_offset + r, or *i_dev + r when i_dev is set (decode under a CUDA graph). Rows with no key get
// zeros, as on the CPU.
struct RowsArgs {
  const float *q, *k, *v;  // q (H, nq, d); k, v (H, kcap, d)
  float* o;                // (H, nq, d)
  int heads, d;
  int64_t nq, kcap, nk, q_offset;
  const int64_t* i_dev;
  const int* modes;  // (H) or null: causal
  int64_t l, c;      // sparse stride and fixed summary width
  float scale;
};

__device__ __forceinline__ int64_t imax(int64_t a, int64_t b) {
  return a > b ? a : b;
}
__device__ __forceinline__ int64_t imin(int64_t a, int64_t b) {
  return a < b ? a : b;
}

__device__ int64_t keyset_count(int mode, int64_t i, int64_t nk, int64_t l, int64_t c) {
  switch (mode) {
    case 1:
      return i - imax(int64_t{0}, i - l + 1) + 1;
    case 2:
      return i / l + 1;
    case 3:
      return i - imax(int64_t{0}, i - l + 1) + 1 + (i >= l ? (i - l) / l + 1 : 0);
    case 4:
      return i - i / l * l + 1;
    case 5:
      return (i + 1) / l * c + imax(int64_t{0}, (i + 1) % l - (l - c));
    case 6:
      return i - i / l * l + 1 + i / l * c;
    default:
      return imin(i + 1, nk);
  }
}

__device__ int64_t keyset_key(int mode, int64_t i, int64_t t, int64_t l, int64_t c) {
  switch (mode) {
    case 1:
      return imax(int64_t{0}, i - l + 1) + t;
    case 2:
      return i - t * l;
    case 3: {
      const int64_t lo = imax(int64_t{0}, i - l + 1), a1 = i - lo + 1;
      return t < a1 ? lo + t : i - l - (t - a1) * l;
    }
    case 4:
      return i / l * l + t;
    case 5:
      return t / c * l + (l - c) + t % c;
    case 6: {
      const int64_t own = i / l * l, a1 = i - own + 1;
      if (t < a1) return own + t;
      t -= a1;
      return t / c * l + (l - c) + t % c;
    }
    default:
      return t;
  }
}

__global__ void attn_rows_kernel(RowsArgs a) {
  const int lane = threadIdx.x % 32;
  const int64_t r = int64_t{blockIdx.x} * (blockDim.x / 32) + threadIdx.x / 32;
  const int h = blockIdx.y;
  if (r >= a.nq) return;
  const int64_t i = (a.i_dev ? *a.i_dev : a.q_offset) + r;
  const int mode = a.modes ? a.modes[h] : 0;
  const float* qr = a.q + (int64_t{h} * a.nq + r) * a.d;
  const float* kh = a.k + int64_t{h} * a.kcap * a.d;
  const float* vh = a.v + int64_t{h} * a.kcap * a.d;
  float qv[kLaneDims], acc[kLaneDims];
#pragma unroll
  for (int u = 0; u < kLaneDims; ++u) {
    const int c = lane + 32 * u;
    qv[u] = c < a.d ? qr[c] : 0.0f;
    acc[u] = 0.0f;
  }
  const int64_t count = keyset_count(mode, i, a.nk, a.l, a.c);
  float m = -INFINITY, sum = 0.0f;
  for (int64_t t = 0; t < count; ++t) {
    const int64_t j = keyset_key(mode, i, t, a.l, a.c);
    const float* kr = kh + j * a.d;
    float s = 0.0f;
#pragma unroll
    for (int u = 0; u < kLaneDims; ++u) {
      const int c = lane + 32 * u;
      if (c < a.d) s += qv[u] * kr[c];
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    s *= a.scale;
    const float mn = fmaxf(m, s);
    const float corr = expf(m - mn), p = expf(s - mn);
    sum = sum * corr + p;
    const float* vr = vh + j * a.d;
#pragma unroll
    for (int u = 0; u < kLaneDims; ++u) {
      const int c = lane + 32 * u;
      if (c < a.d) acc[u] = acc[u] * corr + p * vr[c];
    }
    m = mn;
  }
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  float* orow = a.o + (int64_t{h} * a.nq + r) * a.d;
#pragma unroll
  for (int u = 0; u < kLaneDims; ++u) {
    const int c = lane + 32 * u;
    if (c < a.d) orow[c] = acc[u] * inv;
  }
}

// ring (slots, D): ring[*slot_dev] = x (D).
__global__ void ring_store_kernel(const float* x, float* ring, int64_t D, const int64_t* slot_dev) {
  const int64_t c = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (c < D) ring[*slot_dev * D + c] = x[c];
}

// win (M, D): row r = ring row (*start_dev + r) mod M (Perceiver AR's sliding latent window).
__global__ void window_gather_kernel(const float* ring, float* win, int64_t M, int64_t D,
                                     const int64_t* start_dev) {
  const int64_t e = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (e >= M * D) return;
  const int64_t r = e / D, c = e % D;
  win[e] = ring[((*start_dev + r) % M) * D + c];
}

// cat (k, D): row r = the activation of position i - k + 1 + r (i = *i_dev) from a ring of k rows
// indexed by position mod k; zeros before position 0 (Hourglass's shift before pooling).
__global__ void pool_gather_kernel(const float* ring, float* cat, int64_t k, int64_t D,
                                   const int64_t* i_dev) {
  const int64_t e = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (e >= k * D) return;
  const int64_t r = e / D, c = e % D, src = *i_dev - k + 1 + r;
  cat[e] = src >= 0 ? ring[(src % k) * D + c] : 0.0f;
}

// g (D) = mean of the k rows of cat (k, D), summed in order then scaled as hourglass.cpp pool.
__global__ void avg_rows_kernel(const float* cat, float* g, int64_t k, int64_t D) {
  const int64_t c = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (c >= D) return;
  float s = 0.0f;
  for (int64_t r = 0; r < k; ++r) s += cat[r * D + c];
  g[c] = s * (1.0f / static_cast<float>(k));
}

// up (k, D): every row = g (D) (repeat upsampling of one shortened token).
__global__ void repeat_rows_kernel(const float* g, float* up, int64_t k, int64_t D) {
  const int64_t e = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (e < k * D) up[e] = g[e % D];
}

// x (D) += up row *slot_dev.
__global__ void add_slot_kernel(float* x, const float* up, int64_t D, const int64_t* slot_dev) {
  const int64_t c = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (c < D) x[c] += up[*slot_dev * D + c];
}

// x1 (count) = (x1 + x2) / 2: the Reformer's two residual streams merged before the head.
__global__ void mean2_kernel(float* x1, const float* x2, int64_t count) {
  const int64_t e = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (e < count) x1[e] = 0.5f * (x1[e] + x2[e]);
}

// ---- model pieces on the device ------------------------------------------------------------

// A weight matrix: float32, or bf16 (kBF16 precision) stored once at upload.
struct Mat {
  const float* f = nullptr;
  const bf16* h = nullptr;
};

// One pre-LN block's tensors on the device (Reformer: wq holds wqk, wk is unused).
struct DBlock {
  const float *ln1_g = nullptr, *ln1_b = nullptr;
  Mat wq, wk, wv, wo;
  const float *ln2_g = nullptr, *ln2_b = nullptr;
  Mat w1;
  const float* b1 = nullptr;
  Mat w2;
  const float* b2 = nullptr;
};

// Scratch of a pass over `rows` rows: h, t (rows, D); q, k, v, o (H, rows, d); u (rows, F); bf
// holds a bf16 copy of a product's left operand (kBF16), bf_elems values.
struct Work {
  DeviceBuffer<float> h, t, q, k, v, o, u;
  DeviceBuffer<bf16> bf;
  Status alloc(int64_t rows, int64_t D, int64_t F, int64_t bf_elems) {
    const size_t rD = static_cast<size_t>(rows * D);
    ATTN_RETURN_IF_ERROR(h.alloc(rD));
    ATTN_RETURN_IF_ERROR(t.alloc(rD));
    ATTN_RETURN_IF_ERROR(q.alloc(rD));
    ATTN_RETURN_IF_ERROR(k.alloc(rD));
    ATTN_RETURN_IF_ERROR(v.alloc(rD));
    ATTN_RETURN_IF_ERROR(o.alloc(rD));
    ATTN_RETURN_IF_ERROR(u.alloc(static_cast<size_t>(rows * F)));
    return bf.alloc(static_cast<size_t>(std::max<int64_t>(bf_elems, 1)));
  }
};

// Waits for the stream on scope exit, so buffers freed after it are no longer in use by queued work
// on an early error return.
struct SyncOnExit {
  cudaStream_t s;
  ~SyncOnExit() { cudaStreamSynchronize(s); }
};

// The state every device decode keeps: step arguments in device memory (positions, slots) and the
// previous token, pinned host mirrors, the logits, and one graph per step variant.
class CudaDecodeState : public DecodeState {
 public:
  ~CudaDecodeState() override {
    for (cudaGraphExec_t e : execs)
      if (e) cudaGraphExecDestroy(e);
    if (host_args) cudaFreeHost(host_args);
    if (host_tok) cudaFreeHost(host_tok);
    if (host_logits) cudaFreeHost(host_logits);
  }
  Status alloc_common(int n_args, int variants) {
    ATTN_RETURN_IF_ERROR(args.alloc(static_cast<size_t>(n_args)));
    ATTN_RETURN_IF_ERROR(tok.alloc(1));
    ATTN_RETURN_IF_ERROR(logits.alloc(kVocab));
    ATTN_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&host_args), sizeof(int64_t) * n_args));
    ATTN_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&host_tok), sizeof(int)));
    ATTN_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&host_logits), sizeof(float) * kVocab));
    std::fill_n(host_args, n_args, int64_t{0});
    n_args_ = n_args;
    execs.assign(static_cast<size_t>(variants), nullptr);
    return Status::ok();
  }
  int n_args() const { return n_args_; }

  Status init_status;  // a failed allocation at decode_begin, reported by the first step
  DeviceBuffer<int64_t> args;
  DeviceBuffer<int> tok;
  DeviceBuffer<float> logits;
  int64_t* host_args = nullptr;
  int* host_tok = nullptr;
  float* host_logits = nullptr;
  std::vector<cudaGraphExec_t> execs;

 private:
  int n_args_ = 0;
};

// A tap of attention_layer: the layer to hand over and the callback.
struct DevTap {
  int layer = -1;
  const AttnLayerFn* fn = nullptr;
  bool done = false;
};

using AttnFn =
    std::function<Status(const float* q, const float* k, const float* v, float* o, int64_t n)>;

// What every family shares: the context, the uploaded tensors, the common embedding and head, the
// pre-LN block (full and decode), the attention dispatch and graph capture.
class CudaModel : public Model {
 public:
  CudaModel(ModelConfig cfg, WeightMap w, CudaPrecision p)
      : Model(std::move(cfg), std::move(w)), prec_(p) {}

  // Creates the context and uploads the common tensors, then the family's (init_family).
  Status init() {
    auto ctx = CudaCtx::create(prec_);
    if (!ctx) return ctx.status();
    ctx_ = std::move(*ctx);
    // A workspace owned here keeps cuBLAS from allocating while a decode graph is captured.
    ATTN_RETURN_IF_ERROR(blas_ws_.alloc(size_t{32} << 20));
    ATTN_CUDA_CHECK(cublasSetWorkspace(ctx_->cublas, blas_ws_.get(), blas_ws_.size()));
    // The decode attention keeps its split partials in scratch slot 1, at most (H, 128 splits,
    // d + 2) floats (attn_decode.cu's kMaxSplits). Reserved once here so that it never grows:
    // a captured graph holds the buffer's address, and growth during capture would fail.
    ATTN_RETURN_IF_ERROR(ctx_->reserve(sizeof(float) * H() * 128 * (d() + 2) + 256, 1));
    const float *token, *bos, *row, *col, *chan = nullptr;
    ATTN_RETURN_IF_ERROR(vec("embed.token", &token));
    ATTN_RETURN_IF_ERROR(vec("embed.bos", &bos));
    ATTN_RETURN_IF_ERROR(vec("embed.pos_row", &row));
    ATTN_RETURN_IF_ERROR(vec("embed.pos_col", &col));
    if (cfg_.modality.kind == ModalityKind::kImage)
      ATTN_RETURN_IF_ERROR(vec("embed.pos_channel", &chan));
    emb_ = cuda::embed_tables(cfg_, token, bos, row, col, chan);
    ATTN_RETURN_IF_ERROR(vec("final_ln.weight", &lnf_g_));
    ATTN_RETURN_IF_ERROR(vec("final_ln.bias", &lnf_b_));
    ATTN_RETURN_IF_ERROR(mat("head.weight", &head_w_));
    ATTN_RETURN_IF_ERROR(vec("head.bias", &head_b_));
    ATTN_RETURN_IF_ERROR(init_family());
    // cudaMemcpy from pageable memory may return before its DMA lands; the model's stream does not
    // wait for the legacy stream, so wait for the whole device once here.
    ATTN_CUDA_CHECK(cudaDeviceSynchronize());
    return Status::ok();
  }

 protected:
  virtual Status init_family() = 0;

  int D() const { return cfg_.dim; }
  int H() const { return cfg_.heads; }
  int d() const { return cfg_.head_dim(); }
  int F() const { return cfg_.ff_dim; }
  cudaStream_t stream() const { return ctx_->stream; }

  Status check_length(int64_t n) const {
    if (n < 1 || n > cfg_.seq_len())
      return invalid_argument("sequence of " + std::to_string(n) + " tokens; the model takes 1.." +
                              std::to_string(cfg_.seq_len()));
    return Status::ok();
  }
  Status check_step(const DecodeState& st, int prev_token) const {
    if (st.pos >= cfg_.seq_len())
      return invalid_argument("decode past the model's length " + std::to_string(cfg_.seq_len()));
    if (st.pos > 0 && (prev_token < 0 || prev_token >= kVocab))
      return invalid_argument("token out of range 0..255");
    return Status::ok();
  }

  // ---- uploads ----
  Status vec(const std::string& name, const float** out) {
    auto it = w_.find(name);
    if (it == w_.end()) return invalid_argument("tensor '" + name + "' is missing");
    const Tensor& t = it->second;
    fbufs_.emplace_back();
    ATTN_RETURN_IF_ERROR(fbufs_.back().alloc(static_cast<size_t>(t.numel())));
    ATTN_CUDA_CHECK(cudaMemcpy(fbufs_.back().get(), t.data(), sizeof(float) * t.numel(),
                               cudaMemcpyHostToDevice));
    *out = fbufs_.back().get();
    return Status::ok();
  }
  Status mat(const std::string& name, Mat* out) {
    *out = Mat{};
    if (prec_ != CudaPrecision::kBF16) return vec(name, &out->f);
    auto it = w_.find(name);
    if (it == w_.end()) return invalid_argument("tensor '" + name + "' is missing");
    const Tensor& t = it->second;
    std::vector<bf16> host(static_cast<size_t>(t.numel()));
    for (size_t e = 0; e < host.size(); ++e) host[e] = __float2bfloat16_rn(t.data()[e]);
    hbufs_.emplace_back();
    ATTN_RETURN_IF_ERROR(hbufs_.back().alloc(host.size()));
    ATTN_CUDA_CHECK(cudaMemcpy(hbufs_.back().get(), host.data(), sizeof(bf16) * host.size(),
                               cudaMemcpyHostToDevice));
    out->h = hbufs_.back().get();
    return Status::ok();
  }
  Status load_block(const std::string& p, DBlock* b, bool shared_qk = false) {
    ATTN_RETURN_IF_ERROR(vec(p + "ln1.weight", &b->ln1_g));
    ATTN_RETURN_IF_ERROR(vec(p + "ln1.bias", &b->ln1_b));
    if (shared_qk) {
      ATTN_RETURN_IF_ERROR(mat(p + "attn.wqk", &b->wq));
    } else {
      ATTN_RETURN_IF_ERROR(mat(p + "attn.wq", &b->wq));
      ATTN_RETURN_IF_ERROR(mat(p + "attn.wk", &b->wk));
    }
    ATTN_RETURN_IF_ERROR(mat(p + "attn.wv", &b->wv));
    ATTN_RETURN_IF_ERROR(mat(p + "attn.wo", &b->wo));
    return load_ffn(p, b);
  }
  Status load_ffn(const std::string& p, DBlock* b) {
    ATTN_RETURN_IF_ERROR(vec(p + "ln2.weight", &b->ln2_g));
    ATTN_RETURN_IF_ERROR(vec(p + "ln2.bias", &b->ln2_b));
    ATTN_RETURN_IF_ERROR(mat(p + "ff.w1", &b->w1));
    ATTN_RETURN_IF_ERROR(vec(p + "ff.b1", &b->b1));
    ATTN_RETURN_IF_ERROR(mat(p + "ff.w2", &b->w2));
    return vec(p + "ff.b2", &b->b2);
  }

  // ---- ops ----
  // c (m, n) = a (m, k) · b (k, n), or += when acc. kBF16: a is rounded into bf (m*k values).
  Status mm(const float* a, const Mat& b, float* c, int64_t m, int64_t k, int64_t n, bool acc,
            bf16* bf) const {
    if (prec_ == CudaPrecision::kBF16) {
      ATTN_RETURN_IF_ERROR(cuda::to_bf16(*ctx_, a, bf, m * k));
      return cuda::matmul_bf16(*ctx_, bf, b.h, c, m, k, n, acc);
    }
    return cuda::matmul(*ctx_, a, b.f, c, m, k, n, prec_, acc);
  }
  Status copy(float* dst, const float* src, int64_t count) const {
    if (count > 0)
      ATTN_CUDA_CHECK(
          cudaMemcpyAsync(dst, src, sizeof(float) * count, cudaMemcpyDeviceToDevice, stream()));
    return Status::ok();
  }

  // The row kernel (any d <= 256; allocates nothing, so it may be captured in a graph).
  Status attn_rows(const float* q, const float* k, const float* v, float* o, int64_t nq,
                   int64_t kcap, int64_t nk, int64_t q_offset, const int* modes,
                   const int64_t* i_dev) const {
    if (nq <= 0) return Status::ok();
    RowsArgs a{};
    a.q = q;
    a.k = k;
    a.v = v;
    a.o = o;
    a.heads = H();
    a.d = d();
    a.nq = nq;
    a.kcap = kcap;
    a.nk = nk;
    a.q_offset = q_offset;
    a.i_dev = i_dev;
    a.modes = modes;
    a.l = std::max(1, cfg_.sparse.stride);
    a.c = std::max(1, cfg_.sparse.summary);
    a.scale = 1.0f / std::sqrt(static_cast<float>(d()));
    constexpr int kWarps = 4;
    const dim3 blocks(static_cast<unsigned>((nq + kWarps - 1) / kWarps),
                      static_cast<unsigned>(H()));
    attn_rows_kernel<<<blocks, 32 * kWarps, 0, stream()>>>(a);
    ATTN_CUDA_CHECK_LAUNCH();
    return Status::ok();
  }

  // Causal attention with a query offset: q (H, nq, d), k, v (H, nk, d). The fused tiled kernel
  // where it takes d; the row kernel otherwise and under graph capture.
  Status attn_causal(const float* q, const float* k, const float* v, float* o, int64_t nq,
                     int64_t nk, int64_t q_offset, bool graph_safe) const {
    const int hd = d();
    if (!graph_safe && (hd == 32 || hd == 64 || hd == 128))
      return cuda::attn_dense(*ctx_, q, k, v, o, H(), nq, nk, hd, q_offset, prec_);
    return attn_rows(q, k, v, o, nq, nk, nk, q_offset, nullptr, nullptr);
  }

  // ---- the pre-LN block ----
  // x_out (n, D) += FFN(LN2 x_in) (x_out == x_in for the plain residual).
  Status ffn(const DBlock& b, const float* x_in, float* x_out, int64_t n, Work& w) const {
    ATTN_RETURN_IF_ERROR(cuda::layernorm(*ctx_, x_in, b.ln2_g, b.ln2_b, w.h.get(), n, D()));
    ATTN_RETURN_IF_ERROR(mm(w.h.get(), b.w1, w.u.get(), n, D(), F(), false, w.bf.get()));
    ATTN_RETURN_IF_ERROR(cuda::add_bias(*ctx_, w.u.get(), b.b1, n, F()));
    ATTN_RETURN_IF_ERROR(cuda::gelu(*ctx_, w.u.get(), n * F()));
    ATTN_RETURN_IF_ERROR(mm(w.u.get(), b.w2, x_out, n, F(), D(), true, w.bf.get()));
    return cuda::add_bias(*ctx_, x_out, b.b2, n, D());
  }

  // Hands q, k, v, o (copied to the host) to the tap's callback, described by view.
  Status emit(DevTap* tap, AttnLayerView view, const float* q, const float* k, const float* v,
              const float* o, int64_t nq, int64_t nk) const {
    const size_t qn = static_cast<size_t>(H() * nq * d()), kn = static_cast<size_t>(H() * nk * d());
    std::vector<float> hq(qn), hk(kn), hv(kn), ho(qn);
    ATTN_CUDA_CHECK(cudaMemcpyAsync(hq.data(), q, qn * 4, cudaMemcpyDeviceToHost, stream()));
    ATTN_CUDA_CHECK(cudaMemcpyAsync(hk.data(), k, kn * 4, cudaMemcpyDeviceToHost, stream()));
    ATTN_CUDA_CHECK(cudaMemcpyAsync(hv.data(), v, kn * 4, cudaMemcpyDeviceToHost, stream()));
    ATTN_CUDA_CHECK(cudaMemcpyAsync(ho.data(), o, qn * 4, cudaMemcpyDeviceToHost, stream()));
    ATTN_RETURN_IF_ERROR(ctx_->sync());
    view.q = hq.data();
    view.k = k == q ? hq.data() : hk.data();
    view.v = hv.data();
    view.o = ho.data();
    view.heads = H();
    view.d = d();
    view.nq = nq;
    view.nk = nk;
    tap->done = true;
    return (*tap->fn)(view);
  }

  // x (n, D) in place: x += Attn(LN1 x) Wo; x += FFN(LN2 x). A tap on `index` gets the attention's
  // q, k, v, o (view filled with them) and the block stops there.
  Status block_forward(const DBlock& b, float* x, int64_t n, Work& w, const AttnFn& attn,
                       DevTap* tap, int index, const AttnLayerView& view) const {
    const int64_t Dm = D();
    ATTN_RETURN_IF_ERROR(cuda::layernorm(*ctx_, x, b.ln1_g, b.ln1_b, w.h.get(), n, Dm));
    ATTN_RETURN_IF_ERROR(mm(w.h.get(), b.wq, w.t.get(), n, Dm, Dm, false, w.bf.get()));
    ATTN_RETURN_IF_ERROR(cuda::split_heads(*ctx_, w.t.get(), w.q.get(), n, H(), d()));
    ATTN_RETURN_IF_ERROR(mm(w.h.get(), b.wk, w.t.get(), n, Dm, Dm, false, w.bf.get()));
    ATTN_RETURN_IF_ERROR(cuda::split_heads(*ctx_, w.t.get(), w.k.get(), n, H(), d()));
    ATTN_RETURN_IF_ERROR(mm(w.h.get(), b.wv, w.t.get(), n, Dm, Dm, false, w.bf.get()));
    ATTN_RETURN_IF_ERROR(cuda::split_heads(*ctx_, w.t.get(), w.v.get(), n, H(), d()));
    ATTN_RETURN_IF_ERROR(attn(w.q.get(), w.k.get(), w.v.get(), w.o.get(), n));
    if (tap && tap->layer == index)
      return emit(tap, view, w.q.get(), w.k.get(), w.v.get(), w.o.get(), n, n);
    ATTN_RETURN_IF_ERROR(cuda::merge_heads(*ctx_, w.o.get(), w.t.get(), n, H(), d()));
    ATTN_RETURN_IF_ERROR(mm(w.t.get(), b.wo, x, n, Dm, Dm, true, w.bf.get()));
    return ffn(b, x, x, n, w);
  }

  // x (D) in place for one position: its k, v go to row *row_dev of the caches (H, cap, d); the
  // query attends to the first *nkeys_dev rows (dense) or, with sparse_layer >= 0, to that layer's
  // pattern of position *row_dev. Every size is fixed: safe to capture.
  Status block_decode(const DBlock& b, float* x, Work& w, float* kc, float* vc, int64_t cap,
                      const int64_t* row_dev, const int64_t* nkeys_dev, int sparse_layer) const {
    const int64_t Dm = D();
    ATTN_RETURN_IF_ERROR(cuda::layernorm(*ctx_, x, b.ln1_g, b.ln1_b, w.h.get(), 1, Dm));
    ATTN_RETURN_IF_ERROR(mm(w.h.get(), b.wq, w.q.get(), 1, Dm, Dm, false, w.bf.get()));
    ATTN_RETURN_IF_ERROR(mm(w.h.get(), b.wk, w.t.get(), 1, Dm, Dm, false, w.bf.get()));
    ATTN_RETURN_IF_ERROR(cuda::cache_write_row(*ctx_, w.t.get(), kc, H(), cap, d(), 0, row_dev));
    ATTN_RETURN_IF_ERROR(mm(w.h.get(), b.wv, w.t.get(), 1, Dm, Dm, false, w.bf.get()));
    ATTN_RETURN_IF_ERROR(cuda::cache_write_row(*ctx_, w.t.get(), vc, H(), cap, d(), 0, row_dev));
    if (sparse_layer >= 0)
      ATTN_RETURN_IF_ERROR(cuda::attn_decode_sparse(*ctx_, w.q.get(), kc, vc, w.o.get(), H(), cap,
                                                    0, d(), cfg_.sparse, sparse_layer, row_dev));
    else
      ATTN_RETURN_IF_ERROR(cuda::attn_decode_dense(*ctx_, w.q.get(), kc, vc, w.o.get(), H(), cap, 0,
                                                   d(), nkeys_dev));
    ATTN_RETURN_IF_ERROR(mm(w.o.get(), b.wo, x, 1, Dm, Dm, true, w.bf.get()));
    return ffn(b, x, x, 1, w);
  }

  // logits (n, 256) = LN_f(x) W_head + b.
  Status head(const float* x, int64_t n, float* logits, Work& w) const {
    ATTN_RETURN_IF_ERROR(cuda::layernorm(*ctx_, x, lnf_g_, lnf_b_, w.h.get(), n, D()));
    ATTN_RETURN_IF_ERROR(mm(w.h.get(), head_w_, logits, n, D(), kVocab, false, w.bf.get()));
    return cuda::add_bias(*ctx_, logits, head_b_, n, kVocab);
  }

  // Tokens (n) to the device.
  Status upload_tokens(const uint8_t* x, int64_t n, DeviceBuffer<uint8_t>* xd) const {
    ATTN_RETURN_IF_ERROR(xd->alloc(static_cast<size_t>(n)));
    ATTN_CUDA_CHECK(
        cudaMemcpyAsync(xd->get(), x, static_cast<size_t>(n), cudaMemcpyHostToDevice, stream()));
    return Status::ok();
  }
  // logits (rows, 256) device -> *out on the host; waits for the stream.
  Status download_logits(const float* dl, int64_t rows, Tensor* out) const {
    *out = Tensor::zeros({rows, kVocab}, MemCategory::kActivations);
    ATTN_CUDA_CHECK(cudaMemcpyAsync(out->data(), dl, sizeof(float) * rows * kVocab,
                                    cudaMemcpyDeviceToHost, stream()));
    return ctx_->sync();
  }

  // One decode step: uploads the state's arguments and token, replays graph `variant` (which
  // record() captures on its first use), and copies the logits to the host.
  Status run_step(CudaDecodeState& st, size_t variant, const std::function<Status()>& record,
                  float* logits) const {
    ATTN_CUDA_CHECK(cudaMemcpyAsync(st.args.get(), st.host_args, sizeof(int64_t) * st.n_args(),
                                    cudaMemcpyHostToDevice, stream()));
    ATTN_CUDA_CHECK(
        cudaMemcpyAsync(st.tok.get(), st.host_tok, sizeof(int), cudaMemcpyHostToDevice, stream()));
    cudaGraphExec_t& exec = st.execs[variant];
    if (!exec) {
      ATTN_CUDA_CHECK(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeThreadLocal));
      const Status rec = record();
      cudaGraph_t graph = nullptr;
      const cudaError_t end = cudaStreamEndCapture(stream(), &graph);
      if (!rec.is_ok()) {
        if (graph) cudaGraphDestroy(graph);
        return rec;
      }
      ATTN_CUDA_CHECK(end);
      const cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
      cudaGraphDestroy(graph);
      if (inst != cudaSuccess) exec = nullptr;
      ATTN_CUDA_CHECK(inst);
    }
    ATTN_CUDA_CHECK(cudaGraphLaunch(exec, stream()));
    ATTN_CUDA_CHECK(cudaMemcpyAsync(st.host_logits, st.logits.get(), sizeof(float) * kVocab,
                                    cudaMemcpyDeviceToHost, stream()));
    ATTN_RETURN_IF_ERROR(ctx_->sync());
    std::memcpy(logits, st.host_logits, sizeof(float) * kVocab);
    return Status::ok();
  }

  CudaPrecision prec_;
  std::unique_ptr<CudaCtx> ctx_;
  DeviceBuffer<char> blas_ws_;
  std::vector<DeviceBuffer<float>> fbufs_;
  std::vector<DeviceBuffer<bf16>> hbufs_;
  cuda::EmbedTables emb_{};
  const float *lnf_g_ = nullptr, *lnf_b_ = nullptr, *head_b_ = nullptr;
  Mat head_w_;
  // One call at a time per model (one stream, one cuBLAS handle); recursive so that an inspector
  // callback may call back into the model.
  mutable std::recursive_mutex mu_;
};

// ---- Dense and Sparse Transformer ------------------------------------------------------------

class TransformerState : public CudaDecodeState {
 public:
  DeviceBuffer<float> k, v;  // (layers, H, N, d)
  DeviceBuffer<float> x;     // (D)
  Work w;                    // one row
};

class TransformerCuda : public CudaModel {
 public:
  using CudaModel::CudaModel;

  Status forward(const uint8_t* x, int64_t n, Tensor* logits, int64_t* first_row,
                 const CancelFlag* cancel) const override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    ATTN_RETURN_IF_ERROR(check_length(n));
    // h (n, D) the residual stream; dl (n, 256) the logits.
    Work w;
    DeviceBuffer<float> h, dl;
    DeviceBuffer<uint8_t> xd;
    ATTN_RETURN_IF_ERROR(w.alloc(n, D(), F(), n * std::max(D(), F())));
    ATTN_RETURN_IF_ERROR(h.alloc(static_cast<size_t>(n * D())));
    ATTN_RETURN_IF_ERROR(dl.alloc(static_cast<size_t>(n * kVocab)));
    SyncOnExit guard{stream()};
    ATTN_RETURN_IF_ERROR(upload_tokens(x, n, &xd));
    ATTN_RETURN_IF_ERROR(cuda::embed(*ctx_, emb_, xd.get(), 0, n, h.get()));
    ATTN_RETURN_IF_ERROR(blocks_forward(h.get(), n, w, cancel, nullptr));
    ATTN_RETURN_IF_ERROR(head(h.get(), n, dl.get(), w));
    *first_row = 0;
    return download_logits(dl.get(), n, logits);
  }

  Status attention_layer(const uint8_t* x, int64_t n, int layer,
                         const AttnLayerFn& fn) const override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    ATTN_RETURN_IF_ERROR(check_inspect(n, layer, cfg_.layers));
    Work w;
    DeviceBuffer<float> h;
    DeviceBuffer<uint8_t> xd;
    ATTN_RETURN_IF_ERROR(w.alloc(n, D(), F(), n * std::max(D(), F())));
    ATTN_RETURN_IF_ERROR(h.alloc(static_cast<size_t>(n * D())));
    SyncOnExit guard{stream()};
    ATTN_RETURN_IF_ERROR(upload_tokens(x, n, &xd));
    ATTN_RETURN_IF_ERROR(cuda::embed(*ctx_, emb_, xd.get(), 0, n, h.get()));
    DevTap tap{layer, &fn};
    return blocks_forward(h.get(), n, w, nullptr, &tap);
  }

  std::unique_ptr<DecodeState> decode_begin() const override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    auto st = std::make_unique<TransformerState>();
    (void)(st->init_status = alloc_state(*st));
    return st;
  }

  Status decode_step(DecodeState& base, int prev_token, float* logits) const override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    auto& st = static_cast<TransformerState&>(base);
    ATTN_RETURN_IF_ERROR(st.init_status);
    ATTN_RETURN_IF_ERROR(check_step(st, prev_token));
    // args: [0] the position (cache row, sparse query), [1] keys after the write.
    st.host_args[0] = st.pos;
    st.host_args[1] = st.pos + 1;
    *st.host_tok = st.pos > 0 ? prev_token : 0;
    const int64_t N = cfg_.seq_len(), layer_size = int64_t{H()} * N * d();
    auto record = [&]() -> Status {
      const int64_t* a = st.args.get();
      ATTN_RETURN_IF_ERROR(cuda::embed_one(*ctx_, emb_, 0, 0, st.x.get(), a, st.tok.get()));
      for (int l = 0; l < cfg_.layers; ++l)
        ATTN_RETURN_IF_ERROR(block_decode(blocks_[static_cast<size_t>(l)], st.x.get(), st.w,
                                          st.k.get() + l * layer_size, st.v.get() + l * layer_size,
                                          N, a, a + 1, sparse() ? l : -1));
      return head(st.x.get(), 1, st.logits.get(), st.w);
    };
    ATTN_RETURN_IF_ERROR(run_step(st, 0, record, logits));
    ++st.pos;
    return Status::ok();
  }

 protected:
  Status init_family() override {
    for (int l = 0; l < cfg_.layers; ++l) {
      blocks_.emplace_back();
      ATTN_RETURN_IF_ERROR(load_block("blocks." + std::to_string(l) + ".", &blocks_.back()));
    }
    if (!sparse()) return Status::ok();
    // Per layer and head, the row kernel's mode for the layer's sparse set.
    std::vector<int> modes;
    for (int l = 0; l < cfg_.layers; ++l)
      for (int hh = 0; hh < H(); ++hh) {
        const SparseSet s = attn_sparse_set(cfg_.sparse, l, hh, H());
        const int base = cfg_.sparse.pattern == SparsePattern::kStrided ? 1 : 4;
        modes.push_back(base + (s == SparseSet::kA1 ? 0 : s == SparseSet::kA2 ? 1 : 2));
      }
    ATTN_RETURN_IF_ERROR(modes_.alloc(modes.size()));
    ATTN_CUDA_CHECK(
        cudaMemcpy(modes_.get(), modes.data(), sizeof(int) * modes.size(), cudaMemcpyHostToDevice));
    return Status::ok();
  }

 private:
  bool sparse() const { return cfg_.family == Family::kSparse; }

  Status check_inspect(int64_t n, int layer, int layers) const {
    ATTN_RETURN_IF_ERROR(check_length(n));
    if (layer < 0 || layer >= layers)
      return invalid_argument("attention layer " + std::to_string(layer) +
                              " does not exist: this " + family_name(cfg_.family) +
                              " model has layers 0.." + std::to_string(layers - 1));
    return Status::ok();
  }

  Status alloc_state(TransformerState& st) const {
    const size_t cache = static_cast<size_t>(cfg_.layers) * H() * cfg_.seq_len() * d();
    ATTN_RETURN_IF_ERROR(st.alloc_common(2, 1));
    ATTN_RETURN_IF_ERROR(st.k.alloc(cache));
    ATTN_RETURN_IF_ERROR(st.v.alloc(cache));
    ATTN_RETURN_IF_ERROR(st.x.alloc(static_cast<size_t>(D())));
    return st.w.alloc(1, D(), F(), std::max(D(), F()));
  }

  // Block-sparse attention of layer l at length n (plans cached per (layer, n)); the row kernel
  // with the layer's modes for head widths the block-sparse kernel does not take.
  Status attn_sparse(int l, const float* q, const float* k, const float* v, float* o,
                     int64_t n) const {
    if (d() != 32 && d() != 64 && d() != 128)
      return attn_rows(q, k, v, o, n, n, n, 0, modes_.get() + int64_t{l} * H(), nullptr);
    const auto key = std::make_pair(l, n);
    auto it = plans_.find(key);
    if (it == plans_.end()) {
      if (plans_.size() >= 64) {
        ATTN_RETURN_IF_ERROR(ctx_->sync());  // plans hold device memory queued work may read
        plans_.clear();
      }
      auto plan = cuda::sparse_plan(cfg_.sparse, l, H(), n);
      if (!plan) return plan.status();
      it = plans_.emplace(key, std::move(*plan)).first;
    }
    return cuda::attn_sparse(*ctx_, *it->second, q, k, v, o, d(), prec_);
  }

  // h (n, D) in place through the blocks; with a tap, up to its layer only.
  Status blocks_forward(float* h, int64_t n, Work& w, const CancelFlag* cancel, DevTap* tap) const {
    AttnLayerView view;
    view.key_space = "positions";
    for (int l = 0; l < cfg_.layers && !(tap && tap->done); ++l) {
      if (cancel && cancel->load()) return cancelled("forward cancelled");
      const AttnFn attn = [&](const float* q, const float* k, const float* v, float* o,
                              int64_t len) {
        if (sparse()) return attn_sparse(l, q, k, v, o, len);
        return attn_causal(q, k, v, o, len, len, 0, false);
      };
      view.kind_layer = l;
      ATTN_RETURN_IF_ERROR(
          block_forward(blocks_[static_cast<size_t>(l)], h, n, w, attn, tap, l, view));
    }
    return Status::ok();
  }

  std::vector<DBlock> blocks_;
  DeviceBuffer<int> modes_;  // sparse: (layers, H) row-kernel modes
  mutable std::map<std::pair<int, int64_t>, cuda::SparsePlanPtr> plans_;
};

// ---- Perceiver AR ------------------------------------------------------------------------------

class PerceiverState : public CudaDecodeState {
 public:
  DeviceBuffer<float> ck,
      cv;  // (H, N, d): the cross-attention's K/V of every input so far
  DeviceBuffer<float> lk,
      lv;                    // (layers, H, M, d): the latent stack's caches while pos < M
  DeviceBuffer<float> ring;  // (M, D): cross-attention outputs z, row = position mod M
  DeviceBuffer<float> e, zp,
      x;                    // (D): embedding, z of this position, residual stream
  DeviceBuffer<float> win;  // (M, D): the sliding window recomputed once pos >= M
  Work w1, wm;              // one row; M rows
};

class PerceiverCuda : public CudaModel {
 public:
  using CudaModel::CudaModel;

  Status forward(const uint8_t* x, int64_t n, Tensor* logits, int64_t* first_row,
                 const CancelFlag* cancel) const override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    ATTN_RETURN_IF_ERROR(check_length(n));
    const int64_t rows = std::min<int64_t>(M(), n), first = n - rows;
    // emb (n, D) every input; z (rows, D) the latents at positions first .. n-1.
    Work w;
    DeviceBuffer<float> emb, z, dl;
    DeviceBuffer<uint8_t> xd;
    ATTN_RETURN_IF_ERROR(w.alloc(n, D(), F(), n * std::max(D(), F())));
    ATTN_RETURN_IF_ERROR(emb.alloc(static_cast<size_t>(n * D())));
    ATTN_RETURN_IF_ERROR(z.alloc(static_cast<size_t>(rows * D())));
    ATTN_RETURN_IF_ERROR(dl.alloc(static_cast<size_t>(rows * kVocab)));
    SyncOnExit guard{stream()};
    ATTN_RETURN_IF_ERROR(upload_tokens(x, n, &xd));
    ATTN_RETURN_IF_ERROR(cuda::embed(*ctx_, emb_, xd.get(), 0, n, emb.get()));
    ATTN_RETURN_IF_ERROR(cross_forward(emb.get(), n, first, z.get(), w, nullptr));
    ATTN_RETURN_IF_ERROR(latents_forward(z.get(), rows, w, cancel, first, nullptr, false));
    ATTN_RETURN_IF_ERROR(head(z.get(), rows, dl.get(), w));
    *first_row = first;
    return download_logits(dl.get(), rows, logits);
  }

  Status attention_layer(const uint8_t* x, int64_t n, int layer,
                         const AttnLayerFn& fn) const override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    ATTN_RETURN_IF_ERROR(check_length(n));
    if (layer < 0 || layer > cfg_.layers)
      return invalid_argument("attention layer " + std::to_string(layer) +
                              " does not exist: this perceiver_ar model has layers 0.." +
                              std::to_string(cfg_.layers));
    const int64_t rows = std::min<int64_t>(M(), n), first = n - rows;
    Work w;
    DeviceBuffer<float> emb, z;
    DeviceBuffer<uint8_t> xd;
    ATTN_RETURN_IF_ERROR(w.alloc(n, D(), F(), n * std::max(D(), F())));
    ATTN_RETURN_IF_ERROR(emb.alloc(static_cast<size_t>(n * D())));
    ATTN_RETURN_IF_ERROR(z.alloc(static_cast<size_t>(rows * D())));
    SyncOnExit guard{stream()};
    ATTN_RETURN_IF_ERROR(upload_tokens(x, n, &xd));
    ATTN_RETURN_IF_ERROR(cuda::embed(*ctx_, emb_, xd.get(), 0, n, emb.get()));
    DevTap tap{layer, &fn};
    ATTN_RETURN_IF_ERROR(cross_forward(emb.get(), n, first, z.get(), w, &tap));
    if (tap.done) return Status::ok();
    return latents_forward(z.get(), rows, w, nullptr, first, &tap, false);
  }

  std::unique_ptr<DecodeState> decode_begin() const override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    auto st = std::make_unique<PerceiverState>();
    (void)(st->init_status = alloc_state(*st));
    return st;
  }

  // perceiver_ar.cpp's decode: while pos < M one new latent runs through the latent stack against
  // its caches (graph 0); from pos = M on, the window of the last M cached z's is recomputed
  // through the stack (graph 1). Both read the position from device memory.
  Status decode_step(DecodeState& base, int prev_token, float* logits) const override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    auto& st = static_cast<PerceiverState&>(base);
    ATTN_RETURN_IF_ERROR(st.init_status);
    ATTN_RETURN_IF_ERROR(check_step(st, prev_token));
    const int64_t p = st.pos, m = M();
    // args: [0] position, [1] keys after the write, [2] ring slot p mod M, [3] the window's first
    // ring slot (p - M + 1) mod M.
    st.host_args[0] = p;
    st.host_args[1] = p + 1;
    st.host_args[2] = p % m;
    st.host_args[3] = p >= m ? (p - m + 1) % m : 0;
    *st.host_tok = p > 0 ? prev_token : 0;
    const bool sliding = p >= m;
    auto record = [&]() -> Status {
      const int64_t* a = st.args.get();
      ATTN_RETURN_IF_ERROR(cross_decode(st));
      ring_store_kernel<<<grid(D()), kThreads, 0, stream()>>>(st.zp.get(), st.ring.get(), D(),
                                                              a + 2);
      ATTN_CUDA_CHECK_LAUNCH();
      if (!sliding) {
        ATTN_RETURN_IF_ERROR(copy(st.x.get(), st.zp.get(), D()));
        const int64_t layer_size = int64_t{H()} * m * d();
        for (int l = 0; l < cfg_.layers; ++l)
          ATTN_RETURN_IF_ERROR(block_decode(blocks_[static_cast<size_t>(l)], st.x.get(), st.w1,
                                            st.lk.get() + l * layer_size,
                                            st.lv.get() + l * layer_size, m, a, a + 1, -1));
        return head(st.x.get(), 1, st.logits.get(), st.w1);
      }
      window_gather_kernel<<<grid(m * D()), kThreads, 0, stream()>>>(st.ring.get(), st.win.get(), m,
                                                                     D(), a + 3);
      ATTN_CUDA_CHECK_LAUNCH();
      ATTN_RETURN_IF_ERROR(latents_forward(st.win.get(), m, st.wm, nullptr, 0, nullptr, true));
      return head(st.win.get() + (m - 1) * D(), 1, st.logits.get(), st.w1);
    };
    ATTN_RETURN_IF_ERROR(run_step(st, sliding ? 1 : 0, record, logits));
    ++st.pos;
    return Status::ok();
  }

 protected:
  Status init_family() override {
    ATTN_RETURN_IF_ERROR(vec("cross.ln_q.weight", &cross_.ln1_g));
    ATTN_RETURN_IF_ERROR(vec("cross.ln_q.bias", &cross_.ln1_b));
    ATTN_RETURN_IF_ERROR(vec("cross.ln_kv.weight", &ln_kv_g_));
    ATTN_RETURN_IF_ERROR(vec("cross.ln_kv.bias", &ln_kv_b_));
    ATTN_RETURN_IF_ERROR(mat("cross.attn.wq", &cross_.wq));
    ATTN_RETURN_IF_ERROR(mat("cross.attn.wk", &cross_.wk));
    ATTN_RETURN_IF_ERROR(mat("cross.attn.wv", &cross_.wv));
    ATTN_RETURN_IF_ERROR(mat("cross.attn.wo", &cross_.wo));
    ATTN_RETURN_IF_ERROR(load_ffn("cross.", &cross_));
    for (int l = 0; l < cfg_.layers; ++l) {
      blocks_.emplace_back();
      ATTN_RETURN_IF_ERROR(load_block("blocks." + std::to_string(l) + ".", &blocks_.back()));
    }
    return Status::ok();
  }

 private:
  int64_t M() const { return cfg_.perceiver.latents; }

  Status alloc_state(PerceiverState& st) const {
    const int64_t N = cfg_.seq_len(), m = M(), Dm = D();
    ATTN_RETURN_IF_ERROR(st.alloc_common(4, 2));
    ATTN_RETURN_IF_ERROR(st.ck.alloc(static_cast<size_t>(H() * N * d())));
    ATTN_RETURN_IF_ERROR(st.cv.alloc(static_cast<size_t>(H() * N * d())));
    ATTN_RETURN_IF_ERROR(st.lk.alloc(static_cast<size_t>(cfg_.layers * H() * m * d())));
    ATTN_RETURN_IF_ERROR(st.lv.alloc(static_cast<size_t>(cfg_.layers * H() * m * d())));
    ATTN_RETURN_IF_ERROR(st.ring.alloc(static_cast<size_t>(m * Dm)));
    ATTN_RETURN_IF_ERROR(st.e.alloc(static_cast<size_t>(Dm)));
    ATTN_RETURN_IF_ERROR(st.zp.alloc(static_cast<size_t>(Dm)));
    ATTN_RETURN_IF_ERROR(st.x.alloc(static_cast<size_t>(Dm)));
    ATTN_RETURN_IF_ERROR(st.win.alloc(static_cast<size_t>(m * Dm)));
    ATTN_RETURN_IF_ERROR(st.w1.alloc(1, Dm, F(), std::max<int64_t>(Dm, F())));
    return st.wm.alloc(m, Dm, F(), m * std::max<int64_t>(Dm, F()));
  }

  // emb (n, D) -> z (n - first, D): the latent at position first + r attends to inputs j <= first +
  // r. A tap on layer 0 gets the cross-attention's q, k, v, o and the layer stops.
  Status cross_forward(const float* emb, int64_t n, int64_t first, float* z, Work& w,
                       DevTap* tap) const {
    const int64_t Dm = D(), rows = n - first;
    bf16* bf = w.bf.get();
    // h, t (n, D); k, v (H, n, d); q, o (H, rows, d).
    ATTN_RETURN_IF_ERROR(cuda::layernorm(*ctx_, emb, ln_kv_g_, ln_kv_b_, w.h.get(), n, Dm));
    ATTN_RETURN_IF_ERROR(mm(w.h.get(), cross_.wk, w.t.get(), n, Dm, Dm, false, bf));
    ATTN_RETURN_IF_ERROR(cuda::split_heads(*ctx_, w.t.get(), w.k.get(), n, H(), d()));
    ATTN_RETURN_IF_ERROR(mm(w.h.get(), cross_.wv, w.t.get(), n, Dm, Dm, false, bf));
    ATTN_RETURN_IF_ERROR(cuda::split_heads(*ctx_, w.t.get(), w.v.get(), n, H(), d()));
    const float* latent_emb = emb + first * Dm;
    ATTN_RETURN_IF_ERROR(
        cuda::layernorm(*ctx_, latent_emb, cross_.ln1_g, cross_.ln1_b, w.h.get(), rows, Dm));
    ATTN_RETURN_IF_ERROR(mm(w.h.get(), cross_.wq, w.t.get(), rows, Dm, Dm, false, bf));
    ATTN_RETURN_IF_ERROR(cuda::split_heads(*ctx_, w.t.get(), w.q.get(), rows, H(), d()));
    ATTN_RETURN_IF_ERROR(
        attn_causal(w.q.get(), w.k.get(), w.v.get(), w.o.get(), rows, n, first, false));
    if (tap && tap->layer == 0) {
      AttnLayerView view;
      view.causal_offset = first;
      view.query_offset = first;
      view.key_space = "inputs";
      return emit(tap, view, w.q.get(), w.k.get(), w.v.get(), w.o.get(), rows, n);
    }
    ATTN_RETURN_IF_ERROR(cuda::merge_heads(*ctx_, w.o.get(), w.t.get(), rows, H(), d()));
    ATTN_RETURN_IF_ERROR(copy(z, latent_emb, rows * Dm));
    ATTN_RETURN_IF_ERROR(mm(w.t.get(), cross_.wo, z, rows, Dm, Dm, true, bf));
    return ffn(cross_, z, z, rows, w);
  }

  // The cross layer for the state's position alone (read from args): appends its K/V to the cross
  // caches and writes z_p to st.zp.
  Status cross_decode(PerceiverState& st) const {
    const int64_t Dm = D(), N = cfg_.seq_len();
    const int64_t* a = st.args.get();
    Work& w = st.w1;
    bf16* bf = w.bf.get();
    ATTN_RETURN_IF_ERROR(cuda::embed_one(*ctx_, emb_, 0, 0, st.e.get(), a, st.tok.get()));
    ATTN_RETURN_IF_ERROR(cuda::layernorm(*ctx_, st.e.get(), ln_kv_g_, ln_kv_b_, w.h.get(), 1, Dm));
    ATTN_RETURN_IF_ERROR(mm(w.h.get(), cross_.wk, w.t.get(), 1, Dm, Dm, false, bf));
    ATTN_RETURN_IF_ERROR(cuda::cache_write_row(*ctx_, w.t.get(), st.ck.get(), H(), N, d(), 0, a));
    ATTN_RETURN_IF_ERROR(mm(w.h.get(), cross_.wv, w.t.get(), 1, Dm, Dm, false, bf));
    ATTN_RETURN_IF_ERROR(cuda::cache_write_row(*ctx_, w.t.get(), st.cv.get(), H(), N, d(), 0, a));
    ATTN_RETURN_IF_ERROR(
        cuda::layernorm(*ctx_, st.e.get(), cross_.ln1_g, cross_.ln1_b, w.h.get(), 1, Dm));
    ATTN_RETURN_IF_ERROR(mm(w.h.get(), cross_.wq, w.q.get(), 1, Dm, Dm, false, bf));
    ATTN_RETURN_IF_ERROR(cuda::attn_decode_dense(*ctx_, w.q.get(), st.ck.get(), st.cv.get(),
                                                 w.o.get(), H(), N, 0, d(), a + 1));
    ATTN_RETURN_IF_ERROR(copy(st.zp.get(), st.e.get(), Dm));
    ATTN_RETURN_IF_ERROR(mm(w.o.get(), cross_.wo, st.zp.get(), 1, Dm, Dm, true, bf));
    return ffn(cross_, st.zp.get(), st.zp.get(), 1, w);
  }

  // z (rows, D) in place through the latent stack (dense causal); latents at positions first ..
  // first + rows - 1. A tap on layer l >= 1 stops after block l - 1's attention. graph_safe: only
  // kernels that allocate nothing (the decode graph's window recompute).
  Status latents_forward(float* z, int64_t rows, Work& w, const CancelFlag* cancel, int64_t first,
                         DevTap* tap, bool graph_safe) const {
    const AttnFn attn = [&](const float* q, const float* k, const float* v, float* o, int64_t len) {
      return attn_causal(q, k, v, o, len, len, 0, graph_safe);
    };
    AttnLayerView view;
    view.query_offset = view.key_offset = first;
    view.key_space = "latents";
    for (size_t l = 0; l < blocks_.size() && !(tap && tap->done); ++l) {
      if (cancel && cancel->load()) return cancelled("forward cancelled");
      view.kind_layer = static_cast<int>(l);
      ATTN_RETURN_IF_ERROR(
          block_forward(blocks_[l], z, rows, w, attn, tap, static_cast<int>(l) + 1, view));
    }
    return Status::ok();
  }

  DBlock cross_;  // ln1 holds ln_q
  const float *ln_kv_g_ = nullptr, *ln_kv_b_ = nullptr;
  std::vector<DBlock> blocks_;
};

// ---- Hourglass ------------------------------------------------------------------------------

class HourglassState : public CudaDecodeState {
 public:
  std::vector<DeviceBuffer<float>> k,
      v;                                // [level]: (blocks of the level, H, len of depth, d)
  std::vector<DeviceBuffer<float>> xs;  // [depth 0..S]: (D) the residual stream there
  std::vector<DeviceBuffer<float>> recent, up, cat;  // [depth < S]: (k, D) each
  Work w;                                            // one row
};

class HourglassCuda : public CudaModel {
 public:
  using CudaModel::CudaModel;

  Status forward(const uint8_t* x, int64_t n, Tensor* logits, int64_t* first_row,
                 const CancelFlag* cancel) const override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    ATTN_RETURN_IF_ERROR(check_length(n));
    Pass pass;
    ATTN_RETURN_IF_ERROR(alloc_pass(n, &pass));
    DeviceBuffer<float> dl;
    DeviceBuffer<uint8_t> xd;
    ATTN_RETURN_IF_ERROR(dl.alloc(static_cast<size_t>(n * kVocab)));
    SyncOnExit guard{stream()};
    ATTN_RETURN_IF_ERROR(upload_tokens(x, n, &xd));
    ATTN_RETURN_IF_ERROR(cuda::embed(*ctx_, emb_, xd.get(), 0, n, pass.h.get()));
    ATTN_RETURN_IF_ERROR(depth_forward(0, pass.h.get(), n, pass, cancel, nullptr));
    ATTN_RETURN_IF_ERROR(head(pass.h.get(), n, dl.get(), pass.w));
    *first_row = 0;
    return download_logits(dl.get(), n, logits);
  }

  Status attention_layer(const uint8_t* x, int64_t n, int layer,
                         const AttnLayerFn& fn) const override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    ATTN_RETURN_IF_ERROR(check_length(n));
    if (layer < 0 || layer >= cfg_.layers)
      return invalid_argument("attention layer " + std::to_string(layer) +
                              " does not exist: this hourglass model has layers 0.." +
                              std::to_string(cfg_.layers - 1));
    Pass pass;
    ATTN_RETURN_IF_ERROR(alloc_pass(n, &pass));
    DeviceBuffer<uint8_t> xd;
    SyncOnExit guard{stream()};
    ATTN_RETURN_IF_ERROR(upload_tokens(x, n, &xd));
    ATTN_RETURN_IF_ERROR(cuda::embed(*ctx_, emb_, xd.get(), 0, n, pass.h.get()));
    DevTap tap{layer, &fn};
    return depth_forward(0, pass.h.get(), n, pass, nullptr, &tap);
  }

  std::unique_ptr<DecodeState> decode_begin() const override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    auto st = std::make_unique<HourglassState>();
    (void)(st->init_status = alloc_state(*st));
    return st;
  }

  // hourglass.cpp's decode: depth s's position is i_s = pos / (k_0 ... k_{s-1}); the inner depths
  // run only when i_s mod k_s = 0. Graph r covers the steps that reach depth r (the inner part of
  // depths < r runs), so S + 1 graphs serve every position.
  Status decode_step(DecodeState& base, int prev_token, float* logits) const override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    auto& st = static_cast<HourglassState&>(base);
    ATTN_RETURN_IF_ERROR(st.init_status);
    ATTN_RETURN_IF_ERROR(check_step(st, prev_token));
    // args per depth s: [3s] i_s, [3s+1] i_s + 1 (keys after the write), [3s+2] i_s mod k_s.
    int64_t i = st.pos;
    int reach = 0;
    bool entering = true;
    for (int s = 0; s <= middle_; ++s) {
      const int64_t k = s < middle_ ? ks_[static_cast<size_t>(s)] : 1;
      st.host_args[3 * s] = i;
      st.host_args[3 * s + 1] = i + 1;
      st.host_args[3 * s + 2] = i % k;
      if (s < middle_) {
        entering = entering && i % k == 0;
        if (entering) reach = s + 1;
        i /= k;
      }
    }
    *st.host_tok = st.pos > 0 ? prev_token : 0;
    auto record = [&]() -> Status {
      ATTN_RETURN_IF_ERROR(
          cuda::embed_one(*ctx_, emb_, 0, 0, st.xs[0].get(), st.args.get(), st.tok.get()));
      ATTN_RETURN_IF_ERROR(depth_decode(st, 0, reach));
      return head(st.xs[0].get(), 1, st.logits.get(), st.w);
    };
    ATTN_RETURN_IF_ERROR(run_step(st, static_cast<size_t>(reach), record, logits));
    ++st.pos;
    return Status::ok();
  }

 protected:
  Status init_family() override {
    auto levels = hourglass_parse(cfg_.hourglass.hierarchy);
    if (!levels) return levels.status();
    middle_ = static_cast<int>(levels->size() / 2);
    int block = 0;
    for (const HourglassLevel& lv : *levels) {
      first_block_.push_back(block);
      blocks_.emplace_back();
      for (int l = 0; l < lv.layers; ++l) {
        blocks_.back().emplace_back();
        ATTN_RETURN_IF_ERROR(
            load_block("blocks." + std::to_string(block++) + ".", &blocks_.back().back()));
      }
    }
    int64_t len = cfg_.seq_len();
    for (int s = 0; s <= middle_; ++s) {
      lens_.push_back(len);
      factors_.push_back((*levels)[static_cast<size_t>(s)].factor);
      if (s == middle_) break;
      const int k =
          (*levels)[static_cast<size_t>(s + 1)].factor / (*levels)[static_cast<size_t>(s)].factor;
      ks_.push_back(k);
      len = (len + k - 1) / k;
      const std::string i = std::to_string(s);
      Linear pool, upsample;
      if (cfg_.hourglass.pool == HourglassPool::kLinear) {
        ATTN_RETURN_IF_ERROR(mat("shorten." + i + ".weight", &pool.w));
        ATTN_RETURN_IF_ERROR(vec("shorten." + i + ".bias", &pool.b));
      }
      if (cfg_.hourglass.upsample == HourglassUpsample::kLinear) {
        ATTN_RETURN_IF_ERROR(mat("upsample." + i + ".weight", &upsample.w));
        ATTN_RETURN_IF_ERROR(vec("upsample." + i + ".bias", &upsample.b));
      }
      shorten_.push_back(pool);
      upsample_.push_back(upsample);
    }
    for (int k : ks_) kmax_ = std::max(kmax_, k);
    return Status::ok();
  }

 private:
  struct Linear {
    Mat w;
    const float* b = nullptr;  // null: average pooling / repeat upsampling
  };
  // Buffers of one full pass: h (n, D); per depth s < S: cat (short, k*D) for linear pooling, g
  // (short, D) the shortened stream, u (short, k*D) for linear upsampling.
  struct Pass {
    Work w;
    DeviceBuffer<float> h;
    std::vector<DeviceBuffer<float>> cat, g, u;
  };

  int depth_of(int level) const { return std::min(level, 2 * middle_ - level); }
  bool linear_pool() const { return cfg_.hourglass.pool == HourglassPool::kLinear; }
  bool linear_up() const { return cfg_.hourglass.upsample == HourglassUpsample::kLinear; }
  // The largest left operand of one decode row: F (FFN) or k*D (linear pooling).
  int64_t bf_row() const { return std::max<int64_t>(F(), int64_t{kmax_} * D()); }

  Status alloc_pass(int64_t n, Pass* p) const {
    const int64_t Dm = D();
    // bf: the largest left operand is n x F (FFN) or short_len x k*D <= (n + k) x D (pooling).
    ATTN_RETURN_IF_ERROR(p->w.alloc(n, Dm, F(), (n + kmax_) * std::max<int64_t>(F(), Dm)));
    ATTN_RETURN_IF_ERROR(p->h.alloc(static_cast<size_t>(n * Dm)));
    int64_t len = n;
    for (int s = 0; s < middle_; ++s) {
      const int64_t k = ks_[static_cast<size_t>(s)], short_len = (len + k - 1) / k;
      p->cat.emplace_back();
      p->g.emplace_back();
      p->u.emplace_back();
      if (linear_pool()) ATTN_RETURN_IF_ERROR(p->cat.back().alloc(short_len * k * Dm));
      ATTN_RETURN_IF_ERROR(p->g.back().alloc(static_cast<size_t>(short_len * Dm)));
      if (linear_up()) ATTN_RETURN_IF_ERROR(p->u.back().alloc(short_len * k * Dm));
      len = short_len;
    }
    return Status::ok();
  }

  Status alloc_state(HourglassState& st) const {
    const int64_t Dm = D();
    ATTN_RETURN_IF_ERROR(st.alloc_common(3 * (middle_ + 1), middle_ + 1));
    for (int lv = 0; lv <= 2 * middle_; ++lv) {
      const size_t size = blocks_[static_cast<size_t>(lv)].size() * H() *
                          lens_[static_cast<size_t>(depth_of(lv))] * d();
      st.k.emplace_back();
      st.v.emplace_back();
      ATTN_RETURN_IF_ERROR(st.k.back().alloc(size));
      ATTN_RETURN_IF_ERROR(st.v.back().alloc(size));
    }
    for (int s = 0; s <= middle_; ++s) {
      st.xs.emplace_back();
      ATTN_RETURN_IF_ERROR(st.xs.back().alloc(static_cast<size_t>(Dm)));
    }
    for (int k : ks_) {
      st.recent.emplace_back();
      st.up.emplace_back();
      st.cat.emplace_back();
      ATTN_RETURN_IF_ERROR(st.recent.back().alloc(static_cast<size_t>(k * Dm)));
      ATTN_RETURN_IF_ERROR(st.up.back().alloc(static_cast<size_t>(k * Dm)));
      ATTN_RETURN_IF_ERROR(st.cat.back().alloc(static_cast<size_t>(k * Dm)));
    }
    return st.w.alloc(1, Dm, F(), bf_row());
  }

  // h (len, D) in place through the blocks of one level; the view as hourglass.cpp gives it.
  Status level_forward(int level, float* h, int64_t len, Work& w, const CancelFlag* cancel,
                       DevTap* tap) const {
    const AttnFn attn = [&](const float* q, const float* k, const float* v, float* o, int64_t n) {
      return attn_causal(q, k, v, o, n, n, 0, false);
    };
    const int depth = depth_of(level);
    const int64_t factor = factors_[static_cast<size_t>(depth)];
    AttnLayerView view;
    view.stride = factor;
    view.key_offset = 1 - factor;
    view.key_space = depth == 0 ? "positions" : "level " + std::to_string(depth);
    const auto& blocks = blocks_[static_cast<size_t>(level)];
    for (size_t b = 0; b < blocks.size() && !(tap && tap->done); ++b) {
      if (cancel && cancel->load()) return cancelled("forward cancelled");
      const int index = first_block_[static_cast<size_t>(level)] + static_cast<int>(b);
      ATTN_RETURN_IF_ERROR(block_forward(blocks[b], h, len, w, attn, tap, index, view));
    }
    return Status::ok();
  }

  // h (len, D) at depth s: down level, shorten, inner depths, upsample + residual, up level.
  Status depth_forward(int s, float* h, int64_t len, Pass& p, const CancelFlag* cancel,
                       DevTap* tap) const {
    ATTN_RETURN_IF_ERROR(level_forward(s, h, len, p.w, cancel, tap));
    if (s == middle_ || (tap && tap->done)) return Status::ok();
    const size_t si = static_cast<size_t>(s);
    const int64_t Dm = D(), k = ks_[si], short_len = (len + k - 1) / k;
    float* g = p.g[si].get();
    if (linear_pool()) {
      // cat (short_len, k*D): h shifted right by k - 1 rows, zeros before row 0.
      float* cat = p.cat[si].get();
      ATTN_CUDA_CHECK(cudaMemsetAsync(cat, 0, sizeof(float) * short_len * k * Dm, stream()));
      ATTN_RETURN_IF_ERROR(copy(cat + (k - 1) * Dm, h, (short_len * k - (k - 1)) * Dm));
      ATTN_RETURN_IF_ERROR(mm(cat, shorten_[si].w, g, short_len, k * Dm, Dm, false, p.w.bf.get()));
      ATTN_RETURN_IF_ERROR(cuda::add_bias(*ctx_, g, shorten_[si].b, short_len, Dm));
    } else {
      ATTN_RETURN_IF_ERROR(cuda::shift_avg_pool(*ctx_, h, g, len, Dm, static_cast<int>(k)));
    }
    ATTN_RETURN_IF_ERROR(depth_forward(s + 1, g, short_len, p, cancel, tap));
    if (tap && tap->done) return Status::ok();
    if (linear_up()) {
      float* u = p.u[si].get();
      ATTN_RETURN_IF_ERROR(mm(g, upsample_[si].w, u, short_len, Dm, k * Dm, false, p.w.bf.get()));
      ATTN_RETURN_IF_ERROR(cuda::add_bias(*ctx_, u, upsample_[si].b, short_len, k * Dm));
      ATTN_RETURN_IF_ERROR(cuda::add(*ctx_, h, u, len * Dm));  // truncated to len rows
    } else {
      ATTN_RETURN_IF_ERROR(cuda::upsample_repeat_add(*ctx_, g, h, len, Dm, static_cast<int>(k)));
    }
    return level_forward(2 * middle_ - s, h, len, p.w, cancel, tap);
  }

  Status level_decode(HourglassState& st, int level, float* x, const int64_t* a) const {
    const auto& blocks = blocks_[static_cast<size_t>(level)];
    const int64_t cap = lens_[static_cast<size_t>(depth_of(level))];
    const int64_t block_size = int64_t{H()} * cap * d();
    for (size_t b = 0; b < blocks.size(); ++b)
      ATTN_RETURN_IF_ERROR(
          block_decode(blocks[b], x, st.w, st.k[static_cast<size_t>(level)].get() + b * block_size,
                       st.v[static_cast<size_t>(level)].get() + b * block_size, cap, a, a + 1, -1));
    return Status::ok();
  }

  // xs[s] (D) in place for depth s's position (args 3s..3s+2); the inner part runs when s < reach
  // (the step where i_s mod k_s = 0).
  Status depth_decode(HourglassState& st, int s, int reach) const {
    const int64_t* a = st.args.get() + 3 * s;
    float* x = st.xs[static_cast<size_t>(s)].get();
    ATTN_RETURN_IF_ERROR(level_decode(st, s, x, a));
    if (s == middle_) return Status::ok();
    const size_t si = static_cast<size_t>(s);
    const int64_t Dm = D(), k = ks_[si];
    float* recent = st.recent[si].get();
    float* up = st.up[si].get();
    ring_store_kernel<<<grid(Dm), kThreads, 0, stream()>>>(x, recent, Dm, a + 2);
    ATTN_CUDA_CHECK_LAUNCH();
    if (s < reach) {
      float* cat = st.cat[si].get();
      float* g = st.xs[si + 1].get();
      pool_gather_kernel<<<grid(k * Dm), kThreads, 0, stream()>>>(recent, cat, k, Dm, a);
      ATTN_CUDA_CHECK_LAUNCH();
      if (linear_pool()) {
        ATTN_RETURN_IF_ERROR(mm(cat, shorten_[si].w, g, 1, k * Dm, Dm, false, st.w.bf.get()));
        ATTN_RETURN_IF_ERROR(cuda::add_bias(*ctx_, g, shorten_[si].b, 1, Dm));
      } else {
        avg_rows_kernel<<<grid(Dm), kThreads, 0, stream()>>>(cat, g, k, Dm);
        ATTN_CUDA_CHECK_LAUNCH();
      }
      ATTN_RETURN_IF_ERROR(depth_decode(st, s + 1, reach));
      if (linear_up()) {
        ATTN_RETURN_IF_ERROR(mm(g, upsample_[si].w, up, 1, Dm, k * Dm, false, st.w.bf.get()));
        ATTN_RETURN_IF_ERROR(cuda::add_bias(*ctx_, up, upsample_[si].b, 1, k * Dm));
      } else {
        repeat_rows_kernel<<<grid(k * Dm), kThreads, 0, stream()>>>(g, up, k, Dm);
        ATTN_CUDA_CHECK_LAUNCH();
      }
    }
    add_slot_kernel<<<grid(Dm), kThreads, 0, stream()>>>(x, up, Dm, a + 2);
    ATTN_CUDA_CHECK_LAUNCH();
    return level_decode(st, 2 * middle_ - s, x, a);
  }

  int middle_ = 0;                           // S
  int kmax_ = 1;                             // the largest shortening factor
  std::vector<std::vector<DBlock>> blocks_;  // [level 0 .. 2S][block]
  std::vector<int> first_block_;             // [level]
  std::vector<int64_t> factors_, lens_;      // [depth 0 .. S]
  std::vector<int> ks_;                      // [depth < S]
  std::vector<Linear> shorten_, upsample_;   // [depth < S]
};

// ---- Reformer ---------------------------------------------------------------------------------

class ReformerCuda : public CudaModel {
 public:
  using CudaModel::CudaModel;

  Status forward(const uint8_t* x, int64_t n, Tensor* logits, int64_t* first_row,
                 const CancelFlag* cancel) const override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    ATTN_RETURN_IF_ERROR(check_length(n));
    const bool rev = cfg_.lsh.reversible;
    // x1, x2 (n, D): the two residual streams (one when not reversible).
    Work w;
    DeviceBuffer<float> x1, x2, dl;
    DeviceBuffer<uint8_t> xd;
    ATTN_RETURN_IF_ERROR(w.alloc(n, D(), F(), n * std::max(D(), F())));
    ATTN_RETURN_IF_ERROR(x1.alloc(static_cast<size_t>(n * D())));
    if (rev) ATTN_RETURN_IF_ERROR(x2.alloc(static_cast<size_t>(n * D())));
    ATTN_RETURN_IF_ERROR(dl.alloc(static_cast<size_t>(n * kVocab)));
    SyncOnExit guard{stream()};
    float* s2 = rev ? x2.get() : x1.get();
    ATTN_RETURN_IF_ERROR(upload_tokens(x, n, &xd));
    ATTN_RETURN_IF_ERROR(cuda::embed(*ctx_, emb_, xd.get(), 0, n, x1.get()));
    if (rev) ATTN_RETURN_IF_ERROR(copy(s2, x1.get(), n * D()));
    ATTN_RETURN_IF_ERROR(blocks_forward(x1.get(), s2, n, w, cancel, nullptr));
    if (rev) {
      mean2_kernel<<<grid(n * D()), kThreads, 0, stream()>>>(x1.get(), s2, n * D());
      ATTN_CUDA_CHECK_LAUNCH();
    }
    ATTN_RETURN_IF_ERROR(head(x1.get(), n, dl.get(), w));
    *first_row = 0;
    return download_logits(dl.get(), n, logits);
  }

  Status attention_layer(const uint8_t* x, int64_t n, int layer,
                         const AttnLayerFn& fn) const override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    ATTN_RETURN_IF_ERROR(check_length(n));
    if (layer < 0 || layer >= cfg_.layers)
      return invalid_argument("attention layer " + std::to_string(layer) +
                              " does not exist: this reformer model has layers 0.." +
                              std::to_string(cfg_.layers - 1));
    const bool rev = cfg_.lsh.reversible;
    Work w;
    DeviceBuffer<float> x1, x2;
    DeviceBuffer<uint8_t> xd;
    ATTN_RETURN_IF_ERROR(w.alloc(n, D(), F(), n * std::max(D(), F())));
    ATTN_RETURN_IF_ERROR(x1.alloc(static_cast<size_t>(n * D())));
    if (rev) ATTN_RETURN_IF_ERROR(x2.alloc(static_cast<size_t>(n * D())));
    SyncOnExit guard{stream()};
    float* s2 = rev ? x2.get() : x1.get();
    ATTN_RETURN_IF_ERROR(upload_tokens(x, n, &xd));
    ATTN_RETURN_IF_ERROR(cuda::embed(*ctx_, emb_, xd.get(), 0, n, x1.get()));
    if (rev) ATTN_RETURN_IF_ERROR(copy(s2, x1.get(), n * D()));
    DevTap tap{layer, &fn};
    return blocks_forward(x1.get(), s2, n, w, nullptr, &tap);
  }

  std::unique_ptr<DecodeState> decode_begin() const override {
    return std::make_unique<DecodeState>();
  }

  // trax's predict-mode decode (bucket-matched cached inputs, K/V recomputed per query) has no
  // device kernel: it is a data-dependent gather over a growing cache, one query at a time.
  Status decode_step(DecodeState&, int, float*) const override {
    return unsupported(
        "Reformer decoding (trax's predict scheme: keys of the "
        "query's LSH bucket recomputed "
        "from cached layer inputs) does not run on the CUDA "
        "device; decode with the CPU model "
        "(model_create) over the same weights");
  }

 protected:
  Status init_family() override {
    spec_ = {cfg_.lsh.n_hashes, cfg_.lsh.chunk, cfg_.lsh.n_buckets};
    for (int l = 0; l < cfg_.layers; ++l) {
      blocks_.emplace_back();
      ATTN_RETURN_IF_ERROR(
          load_block("blocks." + std::to_string(l) + ".", &blocks_.back(), /*shared_qk=*/true));
      const std::vector<float> rot =
          attn_lsh_rotations(cfg_.seed, l, spec_.n_hashes, d(), spec_.n_buckets);
      rotations_.emplace_back();
      ATTN_RETURN_IF_ERROR(rotations_.back().alloc(rot.size()));
      ATTN_CUDA_CHECK(cudaMemcpy(rotations_.back().get(), rot.data(), sizeof(float) * rot.size(),
                                 cudaMemcpyHostToDevice));
    }
    return Status::ok();
  }

 private:
  // Y1 = X1 + Attn(LN1 X2) Wo; Y2 = X2 + FFN(LN2 Y1) per block (x2 == x1: plain residual). A tap
  // gets the layer's shared-QK rows, values, output and LSH buckets and order.
  Status blocks_forward(float* x1, float* x2, int64_t n, Work& w, const CancelFlag* cancel,
                        DevTap* tap) const {
    const int64_t Dm = D();
    bf16* bf = w.bf.get();
    for (int l = 0; l < cfg_.layers; ++l) {
      if (cancel && cancel->load()) return cancelled("forward cancelled");
      const DBlock& b = blocks_[static_cast<size_t>(l)];
      const bool tapped = tap && tap->layer == l;
      ATTN_RETURN_IF_ERROR(cuda::layernorm(*ctx_, x2, b.ln1_g, b.ln1_b, w.h.get(), n, Dm));
      ATTN_RETURN_IF_ERROR(mm(w.h.get(), b.wq, w.t.get(), n, Dm, Dm, false, bf));
      ATTN_RETURN_IF_ERROR(cuda::split_heads(*ctx_, w.t.get(), w.q.get(), n, H(), d()));
      ATTN_RETURN_IF_ERROR(mm(w.h.get(), b.wv, w.t.get(), n, Dm, Dm, false, bf));
      ATTN_RETURN_IF_ERROR(cuda::split_heads(*ctx_, w.t.get(), w.v.get(), n, H(), d()));
      // buckets, order (H, n_hashes, n) for the tapped layer's trace.
      DeviceBuffer<int> buckets, order;
      const size_t traced = static_cast<size_t>(int64_t{H()} * spec_.n_hashes * n);
      if (tapped) {
        ATTN_RETURN_IF_ERROR(buckets.alloc(traced));
        ATTN_RETURN_IF_ERROR(order.alloc(traced));
      }
      ATTN_RETURN_IF_ERROR(cuda::attn_lsh(*ctx_, w.q.get(), w.v.get(), w.o.get(), H(), n, d(),
                                          spec_, rotations_[static_cast<size_t>(l)].get(),
                                          buckets.get(), order.get()));
      if (tapped) {
        LshTrace trace;
        trace.buckets.resize(traced);
        trace.order.resize(traced);
        ATTN_CUDA_CHECK(cudaMemcpyAsync(trace.buckets.data(), buckets.get(), traced * sizeof(int),
                                        cudaMemcpyDeviceToHost, stream()));
        ATTN_CUDA_CHECK(cudaMemcpyAsync(trace.order.data(), order.get(), traced * sizeof(int),
                                        cudaMemcpyDeviceToHost, stream()));
        AttnLayerView view;
        view.key_space = "positions";
        view.kind_layer = l;
        view.lsh = &trace;
        return emit(tap, view, w.q.get(), w.q.get(), w.v.get(), w.o.get(), n, n);
      }
      ATTN_RETURN_IF_ERROR(cuda::merge_heads(*ctx_, w.o.get(), w.t.get(), n, H(), d()));
      ATTN_RETURN_IF_ERROR(mm(w.t.get(), b.wo, x1, n, Dm, Dm, true, bf));
      ATTN_RETURN_IF_ERROR(ffn(b, x1, x2, n, w));
    }
    return Status::ok();
  }

  LshSpec spec_;
  std::vector<DBlock> blocks_;
  std::vector<DeviceBuffer<float>> rotations_;  // per layer (n_hashes, d, n_buckets/2)
};

}  // namespace

Expected<std::unique_ptr<Model>> model_create_cuda(const ModelConfig& in, const WeightMap& w,
                                                   CudaPrecision p) {
  ModelConfig cfg = in;
  ATTN_RETURN_IF_ERROR(config_resolve(cfg));
  ATTN_RETURN_IF_ERROR(config_validate(cfg));
  ATTN_RETURN_IF_ERROR(model_check_weights(cfg, w));
  ATTN_RETURN_IF_ERROR(cuda_available());
  if (cfg.head_dim() > 32 * kLaneDims)
    return unsupported("the CUDA models take head widths up to " + std::to_string(32 * kLaneDims) +
                       "; this model's is " + std::to_string(cfg.head_dim()));
  std::unique_ptr<CudaModel> m;
  switch (cfg.family) {
    case Family::kDense:
    case Family::kSparse:
      m = std::make_unique<TransformerCuda>(cfg, w, p);
      break;
    case Family::kPerceiverAR:
      m = std::make_unique<PerceiverCuda>(cfg, w, p);
      break;
    case Family::kHourglass:
      m = std::make_unique<HourglassCuda>(cfg, w, p);
      break;
    case Family::kReformer:
      m = std::make_unique<ReformerCuda>(cfg, w, p);
      break;
  }
  if (!m) return unsupported(std::string("no CUDA model for family ") + family_name(cfg.family));
  ATTN_RETURN_IF_ERROR(m->init());
  return std::unique_ptr<Model>(std::move(m));
}

}  // namespace attnscope
