// The CUDA executor's ops (exec/device_graph.h) over the backend's kernels (kernels.cuh): every
// op allocates its output from the stream's memory pool (cudaMallocAsync), launches on the one
// stream and returns at once; the first failure is kept in the graph and later ops do nothing.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "backend/cuda/kernels.cuh"
#include "exec/device_graph.h"

namespace attnscope::exec {

class DeviceRuntime {
 public:
  std::unique_ptr<cuda::CudaCtx> ctx;
  std::mutex mu;                                                 // the derived data below
  std::map<std::pair<int, int64_t>, cuda::SparsePlanPtr> plans;  // (layer, n)
  // Per layer: the host rotations and their device copy (re-uploaded when the values differ).
  std::map<int, std::pair<std::vector<float>, DVar>> rotations;
};

Expected<std::shared_ptr<DeviceRuntime>> device_runtime_create(CudaPrecision p) {
  ATTN_RETURN_IF_ERROR(cuda_available());
  auto ctx = cuda::CudaCtx::create(p);
  if (!ctx) return ctx.status();
  auto rt = std::make_shared<DeviceRuntime>();
  rt->ctx = std::move(*ctx);
  return rt;
}

Status device_sync(DeviceRuntime& rt) {
  return rt.ctx->sync();
}

namespace {

constexpr int kThreads = 256;
unsigned grid(int64_t count) {
  return static_cast<unsigned>(std::max<int64_t>(1, (count + kThreads - 1) / kThreads));
}

cuda::CudaCtx& ctx_of(DeviceGraph& g) {
  return *g.runtime()->ctx;
}
cudaStream_t stream_of(DeviceGraph& g) {
  return g.runtime()->ctx->stream;
}

// Records s as the graph's failure; true when s is ok.
bool ok(DeviceGraph& g, const Status& s) {
  if (!s.is_ok()) g.fail(s);
  return s.is_ok();
}
bool ok(DeviceGraph& g, cudaError_t e, const char* what) {
  if (e == cudaSuccess) return true;
  g.fail(cuda::cuda_status(e, what, __FILE__, __LINE__));
  return false;
}
// Whether an op should run: no earlier failure and every input holds data.
bool live(DeviceGraph& g, std::initializer_list<const DVar*> in) {
  if (g.failed()) return false;
  for (const DVar* v : in)
    if (!*v || (!(*v)->data && (*v)->numel() > 0)) {
      g.fail(internal_error("device graph: an op got a value without data"));
      return false;
    }
  return true;
}
const DVar& param(const DParams& p, const std::string& name) {
  static const DVar none = std::make_shared<DeviceValue>();
  auto it = p.find(name);
  return it == p.end() ? none : it->second;
}

bool check(DeviceGraph& g, bool cond, const std::string& what) {
  if (!cond) g.fail(invalid_argument("device graph: " + what));
  return cond;
}

// A new (rows, cols) value from the stream's pool; null data after a failure.
DVar make(DeviceGraph& g, int64_t rows, int64_t cols) {
  auto v = std::make_shared<DeviceValue>();
  v->rows = rows;
  v->cols = cols;
  if (g.failed() || rows * cols == 0) return v;
  void* p = nullptr;
  const cudaStream_t s = stream_of(g);
  if (!ok(g, cudaMallocAsync(&p, static_cast<size_t>(rows * cols) * sizeof(float), s),
          "cudaMallocAsync"))
    return v;
  // The deleter keeps the runtime (and so the stream) alive until the memory is returned.
  v->owner =
      std::shared_ptr<void>(p, [rt = g.runtime()](void* q) { cudaFreeAsync(q, rt->ctx->stream); });
  v->data = static_cast<float*>(p);
  return v;
}

// count floats from host in memory of its own (cudaMalloc), for data the runtime keeps: its
// deleter must not hold the runtime.
DVar upload_owned(DeviceGraph& g, const float* host, int64_t count) {
  auto v = std::make_shared<DeviceValue>();
  v->rows = 1;
  v->cols = count;
  void* p = nullptr;
  if (g.failed() ||
      !ok(g, cudaMalloc(&p, static_cast<size_t>(count) * sizeof(float)), "cudaMalloc"))
    return v;
  v->owner = std::shared_ptr<void>(p, [](void* q) { cudaFree(q); });
  v->data = static_cast<float*>(p);
  ok(g,
     cudaMemcpyAsync(p, host, static_cast<size_t>(count) * sizeof(float), cudaMemcpyHostToDevice,
                     stream_of(g)),
     "cudaMemcpyAsync");
  return v;
}

DVar view(const DVar& x, int64_t offset, int64_t rows, int64_t cols) {
  auto v = std::make_shared<DeviceValue>();
  v->rows = rows;
  v->cols = cols;
  v->owner = x->owner;
  v->data = x->data ? x->data + offset : nullptr;
  return v;
}

bool copy(DeviceGraph& g, float* dst, const float* src, int64_t count) {
  if (count == 0) return true;
  return ok(g,
            cudaMemcpyAsync(dst, src, static_cast<size_t>(count) * sizeof(float),
                            cudaMemcpyDeviceToDevice, stream_of(g)),
            "cudaMemcpyAsync");
}

__global__ void scale_kernel(float* y, const float* x, float s, int64_t count) {
  const int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (i < count) y[i] = x[i] * s;
}

// y (rows, D): the sum of each group of k rows of x in order, then times inv (as the CPU op).
__global__ void mean_groups_kernel(const float* x, float* y, int64_t rows, int64_t D, int64_t k,
                                   float inv) {
  const int64_t e = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (e >= rows * D) return;
  const int64_t t = e / D, c = e % D;
  float s = 0.0f;
  for (int64_t r = 0; r < k; ++r) s += x[(t * k + r) * D + c];
  y[e] = s * inv;
}

// y (rows * k, D): row t*k + r = x[t].
__global__ void repeat_rows_kernel(const float* x, float* y, int64_t rows, int64_t D, int64_t k) {
  const int64_t e = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (e >= rows * k * D) return;
  y[e] = x[(e / D) / k * D + e % D];
}

}  // namespace

// ---- host <-> device ----------------------------------------------------------------------

DVar upload(DeviceGraph& g, const float* host, int64_t rows, int64_t cols) {
  DVar y = make(g, rows, cols);
  if (!live(g, {&y}) || rows * cols == 0) return y;
  ok(g,
     cudaMemcpyAsync(y->data, host, static_cast<size_t>(rows * cols) * sizeof(float),
                     cudaMemcpyHostToDevice, stream_of(g)),
     "cudaMemcpyAsync");
  return y;
}

Status download(DeviceGraph& g, const DVar& x, float* host) {
  if (live(g, {&x}) && x->numel() > 0)
    ok(g,
       cudaMemcpyAsync(host, x->data, static_cast<size_t>(x->numel()) * sizeof(float),
                       cudaMemcpyDeviceToHost, stream_of(g)),
       "cudaMemcpyAsync");
  if (!g.failed()) ok(g, ctx_of(g).sync());
  return g.status();
}

DVar zeros(DeviceGraph& g, int64_t rows, int64_t cols) {
  DVar y = make(g, rows, cols);
  if (live(g, {&y}) && rows * cols > 0)
    ok(g,
       cudaMemsetAsync(y->data, 0, static_cast<size_t>(rows * cols) * sizeof(float), stream_of(g)),
       "cudaMemsetAsync");
  return y;
}

// ---- ops ----------------------------------------------------------------------------------

DVar linear(DeviceGraph& g, const DVar& x, const DVar& w, const DVar& b) {
  DVar y = make(g, x->rows, w->cols);
  if (!live(g, {&x, &w, &y}) || !check(g, x->cols == w->rows,
                                       "linear: x has " + std::to_string(x->cols) +
                                           " columns, w has " + std::to_string(w->rows) + " rows"))
    return y;
  cuda::CudaCtx& c = ctx_of(g);
  if (!ok(g, cuda::matmul(c, x->data, w->data, y->data, x->rows, x->cols, w->cols, c.precision)))
    return y;
  if (b && live(g, {&b})) ok(g, cuda::add_bias(c, y->data, b->data, x->rows, w->cols));
  return y;
}

DVar layernorm(DeviceGraph& g, const DVar& x, const DVar& gamma, const DVar& beta) {
  DVar y = make(g, x->rows, x->cols);
  if (live(g, {&x, &gamma, &beta, &y}))
    ok(g, cuda::layernorm(ctx_of(g), x->data, gamma->data, beta->data, y->data, x->rows, x->cols));
  return y;
}

DVar gelu(DeviceGraph& g, const DVar& x) {
  DVar y = make(g, x->rows, x->cols);
  if (live(g, {&x, &y}) && copy(g, y->data, x->data, x->numel()))
    ok(g, cuda::gelu(ctx_of(g), y->data, y->numel()));
  return y;
}

DVar add(DeviceGraph& g, const DVar& a, const DVar& b) {
  DVar y = make(g, a->rows, a->cols);
  if (live(g, {&a, &b, &y}) && check(g, a->numel() == b->numel(), "add: shapes differ") &&
      copy(g, y->data, a->data, a->numel()))
    ok(g, cuda::add(ctx_of(g), y->data, b->data, y->numel()));
  return y;
}

DVar scale(DeviceGraph& g, const DVar& a, float s) {
  DVar y = make(g, a->rows, a->cols);
  if (live(g, {&a, &y}) && y->numel() > 0) {
    scale_kernel<<<grid(y->numel()), kThreads, 0, stream_of(g)>>>(y->data, a->data, s, y->numel());
    ok(g, cudaGetLastError(), "scale_kernel");
  }
  return y;
}

DVar slice_rows(DeviceGraph& g, const DVar& x, int64_t r0, int64_t count) {
  check(g, r0 >= 0 && count >= 0 && r0 + count <= x->rows, "slice_rows out of range");
  return view(x, r0 * x->cols, count, x->cols);
}

DVar concat_rows(DeviceGraph& g, const std::vector<DVar>& parts) {
  int64_t rows = 0;
  const int64_t cols = parts.empty() ? 0 : parts[0]->cols;
  for (const DVar& p : parts) rows += p->rows;
  DVar y = make(g, rows, cols);
  int64_t at = 0;
  for (const DVar& p : parts) {
    if (!live(g, {&p, &y}) || !check(g, p->cols == cols, "concat_rows: column counts differ"))
      return y;
    if (!copy(g, y->data + at * cols, p->data, p->numel())) return y;
    at += p->rows;
  }
  return y;
}

DVar reshape(DeviceGraph& g, const DVar& x, int64_t rows, int64_t cols) {
  check(g, rows * cols == x->numel(), "reshape changes the number of values");
  return view(x, 0, rows, cols);
}

DVar shift_rows(DeviceGraph& g, const DVar& x, int64_t shift, int64_t out_rows) {
  const int64_t D = x->cols;
  DVar y = zeros(g, out_rows, D);
  if (!live(g, {&x, &y})) return y;
  const int64_t j0 = std::max<int64_t>(0, shift), j1 = std::min(out_rows, x->rows + shift);
  if (j1 > j0) copy(g, y->data + j0 * D, x->data + (j0 - shift) * D, (j1 - j0) * D);
  return y;
}

DVar mean_groups(DeviceGraph& g, const DVar& x, int64_t k) {
  const int64_t D = x->cols, rows = x->rows / k;
  DVar y = make(g, rows, D);
  if (live(g, {&x, &y}) && rows * D > 0) {
    mean_groups_kernel<<<grid(rows * D), kThreads, 0, stream_of(g)>>>(x->data, y->data, rows, D, k,
                                                                      1.0f / static_cast<float>(k));
    ok(g, cudaGetLastError(), "mean_groups_kernel");
  }
  return y;
}

DVar repeat_rows(DeviceGraph& g, const DVar& x, int64_t k) {
  const int64_t D = x->cols, rows = x->rows;
  DVar y = make(g, rows * k, D);
  if (live(g, {&x, &y}) && y->numel() > 0) {
    repeat_rows_kernel<<<grid(y->numel()), kThreads, 0, stream_of(g)>>>(x->data, y->data, rows, D,
                                                                        k);
    ok(g, cudaGetLastError(), "repeat_rows_kernel");
  }
  return y;
}

DVar embed(DeviceGraph& g, const DParams& p, const ModelConfig& cfg, const uint8_t* x, int64_t p0,
           int64_t count) {
  DVar y = make(g, count, cfg.dim);
  auto at = [&](const char* name) -> const float* {
    auto it = p.find(name);
    return it == p.end() || !it->second ? nullptr : it->second->data;
  };
  if (!live(g, {&y})) return y;
  const cuda::EmbedTables t =
      cuda::embed_tables(cfg, at("embed.token"), at("embed.bos"), at("embed.pos_row"),
                         at("embed.pos_col"), at("embed.pos_channel"));
  cuda::CudaCtx& c = ctx_of(g);
  if (count == 1) {  // decoding: the previous token from the host sequence
    ok(g, cuda::embed_one(c, t, p0, p0 > 0 ? x[p0 - 1] : 0, y->data));
    return y;
  }
  // The bytes x[0 .. p0 + count - 1) the positions read (x[p - 1] for p >= 1).
  const int64_t bytes = p0 + count - 1;
  void* xd = nullptr;
  if (bytes > 0) {
    if (!ok(g, cudaMallocAsync(&xd, static_cast<size_t>(bytes), c.stream), "cudaMallocAsync"))
      return y;
    if (!ok(g, cudaMemcpyAsync(xd, x, static_cast<size_t>(bytes), cudaMemcpyHostToDevice, c.stream),
            "cudaMemcpyAsync"))
      return y;
  }
  ok(g, cuda::embed(c, t, static_cast<const uint8_t*>(xd), p0, count, y->data));
  if (xd) cudaFreeAsync(xd, c.stream);
  return y;
}

DVar ffn_block(DeviceGraph& g, const DParams& p, const std::string& prefix, const DVar& x,
               int /*chunks*/) {
  DVar h = layernorm(g, x, param(p, prefix + "ln2.weight"), param(p, prefix + "ln2.bias"));
  DVar a = linear(g, h, param(p, prefix + "ff.w1"), param(p, prefix + "ff.b1"));
  h.reset();
  if (live(g, {&a})) ok(g, cuda::gelu(ctx_of(g), a->data, a->numel()));  // a is ours: in place
  return linear(g, a, param(p, prefix + "ff.w2"), param(p, prefix + "ff.b2"));
}

DVar head_logits(DeviceGraph& g, const DParams& p, const DVar& hidden) {
  DVar h = layernorm(g, hidden, param(p, "final_ln.weight"), param(p, "final_ln.bias"));
  return linear(g, h, param(p, "head.weight"), param(p, "head.bias"));
}

namespace {

// One query row at position dec.pos against the layer's cache, after appending its key and
// value rows.
DVar attention_decode(DeviceGraph& g, const DVar& q, const DVar& k, const DVar& v, int heads,
                      const tape::TrainAttnSpec& spec) {
  DeviceDecode& dec = *g.decode;
  const int64_t D = q->cols, i = dec.pos;
  const int d = static_cast<int>(D / heads);
  DVar o = make(g, 1, D);
  const int layer = spec.view_layer;
  if (!check(g, q->rows == 1 && k->rows == 1, "decode runs one row per step") ||
      !check(g, layer >= 0 && layer < static_cast<int>(dec.k.size()),
             "decode: no cache for layer") ||
      !check(g, i < dec.cap, "decode past the caches' length"))
    return o;
  const DVar& kc = dec.k[static_cast<size_t>(layer)];
  const DVar& vc = dec.v[static_cast<size_t>(layer)];
  if (!live(g, {&q, &k, &v, &o, &kc, &vc})) return o;
  cuda::CudaCtx& c = ctx_of(g);
  // A (1, H*d) row is (H, 1, d): heads need no split for one query.
  if (!ok(g, cuda::cache_write_row(c, k->data, kc->data, heads, dec.cap, d, i)) ||
      !ok(g, cuda::cache_write_row(c, v->data, vc->data, heads, dec.cap, d, i)))
    return o;
  switch (spec.kind) {
    case tape::TrainAttnKind::kCausal:
      ok(g, cuda::attn_decode_dense(c, q->data, kc->data, vc->data, o->data, heads, dec.cap, i + 1,
                                    d));
      break;
    case tape::TrainAttnKind::kSparse:
      ok(g, cuda::attn_decode_sparse(c, q->data, kc->data, vc->data, o->data, heads, dec.cap, i, d,
                                     spec.sparse, spec.layer));
      break;
    case tape::TrainAttnKind::kLsh:
      g.fail(
          unsupported("LSH attention has no device decode (trax's predict scheme runs on the "
                      "CPU)"));
      break;
  }
  return o;
}

}  // namespace

DVar attention(DeviceGraph& g, const DVar& q, const DVar& k, const DVar& v, int heads,
               const tape::TrainAttnSpec& spec) {
  if (g.decode) return attention_decode(g, q, k, v, heads, spec);
  const int64_t nq = q->rows, nk = k->rows, D = q->cols;
  const int d = static_cast<int>(D / heads);
  DVar o = make(g, nq, D);
  if (!live(g, {&q, &k, &v, &o}) || !check(g, D % heads == 0, "attention: heads do not divide D"))
    return o;
  DeviceRuntime& rt = *g.runtime();
  cuda::CudaCtx& c = *rt.ctx;
  // qh, kh, vh, oh are (H, rows, d).
  DVar qh = make(g, nq, D), vh = make(g, nk, D), oh = make(g, nq, D);
  DVar kh = spec.kind == tape::TrainAttnKind::kLsh ? qh : make(g, nk, D);
  if (!live(g, {&qh, &kh, &vh, &oh}) ||
      !ok(g, cuda::split_heads(c, q->data, qh->data, nq, heads, d)) ||
      !ok(g, cuda::split_heads(c, v->data, vh->data, nk, heads, d)))
    return o;
  if (spec.kind != tape::TrainAttnKind::kLsh &&
      !ok(g, cuda::split_heads(c, k->data, kh->data, nk, heads, d)))
    return o;
  switch (spec.kind) {
    case tape::TrainAttnKind::kCausal:
      if (!ok(g, cuda::attn_dense(c, qh->data, kh->data, vh->data, oh->data, heads, nq, nk, d,
                                  spec.q_offset, c.precision)))
        return o;
      break;
    case tape::TrainAttnKind::kSparse: {
      if (!check(g, nq == nk, "sparse attention takes as many queries as keys")) return o;
      const cuda::SparsePlan* plan = nullptr;
      {
        std::lock_guard<std::mutex> lock(rt.mu);
        auto& slot = rt.plans[{spec.layer, nq}];
        if (!slot) {
          auto made = cuda::sparse_plan(spec.sparse, spec.layer, heads, nq);
          if (!ok(g, made.status())) return o;
          slot = std::move(*made);
        }
        plan = slot.get();
      }
      if (!ok(g,
              cuda::attn_sparse(c, *plan, qh->data, kh->data, vh->data, oh->data, d, c.precision)))
        return o;
      break;
    }
    case tape::TrainAttnKind::kLsh: {
      const size_t count = static_cast<size_t>(spec.lsh.n_hashes) * static_cast<size_t>(d) *
                           static_cast<size_t>(spec.lsh.n_buckets / 2);
      if (!check(g, spec.rotations != nullptr, "LSH attention without rotations")) return o;
      DVar rot;
      {
        std::lock_guard<std::mutex> lock(rt.mu);
        auto& slot = rt.rotations[spec.view_layer];
        if (!slot.second || slot.first.size() != count ||
            std::memcmp(slot.first.data(), spec.rotations, count * sizeof(float)) != 0) {
          slot.first.assign(spec.rotations, spec.rotations + count);
          slot.second = upload_owned(g, slot.first.data(), static_cast<int64_t>(count));
        }
        rot = slot.second;
      }
      if (!live(g, {&rot}) || !ok(g, cuda::attn_lsh(c, qh->data, vh->data, oh->data, heads, nq, d,
                                                    spec.lsh, rot->data)))
        return o;
      break;
    }
  }
  ok(g, cuda::merge_heads(c, oh->data, o->data, nq, heads, d));
  return o;
}

}  // namespace attnscope::exec
