// Differentiable ops on the training tape (exec/tape_ops.h): forwards that
// reproduce the inference ops exactly in float, backwards as closures adding
// into the inputs' gradients, and the row-chunked feed-forward and logit-head
// losses that recompute per chunk.
#include "exec/tape_ops.h"

#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "attention/fast_exp.h"
#include "ops/ops.h"

namespace attnscope::tape {

namespace {

constexpr int64_t kParallelMin = 1 << 15;  // elementwise loops shorter than this stay serial
constexpr double kLnEps = 1e-5;
constexpr int kVocabSize = 256;

template <typename T>
bool wants_grad(const Var<T>& v) {
  return v && v->requires_grad;
}

// ---- matrix products: float through oneDNN (op_matmul for the forward, as
// inference does), double in plain loops ----

// c (m, n) = a (m, k) · b (k, n)
template <typename T>
void mm_nn(const T* a, const T* b, T* c, int64_t m, int64_t k, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    op_matmul(a, b, c, m, k, n);
  } else {
    std::memset(c, 0, sizeof(T) * static_cast<size_t>(m * n));
#pragma omp parallel for if (m * k * n > kParallelMin)
    for (int64_t r = 0; r < m; ++r) {
      T* cr = c + r * n;
      for (int64_t i = 0; i < k; ++i) {
        const T av = a[r * k + i];
        const T* br = b + i * n;
        for (int64_t j = 0; j < n; ++j) cr[j] += av * br[j];
      }
    }
  }
}

// c (m, n) += a (m, k) · b (n, k)^T
template <typename T>
void mm_nt_acc(const T* a, const T* b, T* c, int64_t m, int64_t k, int64_t n) {
  if (m == 0 || n == 0 || k == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    dnnl_sgemm('N', 'T', m, n, k, 1.0f, a, k, b, k, 1.0f, c, n);
  } else {
#pragma omp parallel for if (m * k * n > kParallelMin)
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < n; ++j) {
        T s = 0;
        for (int64_t i = 0; i < k; ++i) s += a[r * k + i] * b[j * k + i];
        c[r * n + j] += s;
      }
  }
}

// c (m, n) += a (k, m)^T · b (k, n)
template <typename T>
void mm_tn_acc(const T* a, const T* b, T* c, int64_t m, int64_t k, int64_t n) {
  if (m == 0 || n == 0 || k == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    dnnl_sgemm('T', 'N', m, n, k, 1.0f, a, m, b, n, 1.0f, c, n);
  } else {
#pragma omp parallel for if (m * k * n > kParallelMin)
    for (int64_t r = 0; r < m; ++r) {
      T* cr = c + r * n;
      for (int64_t i = 0; i < k; ++i) {
        const T av = a[i * m + r];
        const T* br = b + i * n;
        for (int64_t j = 0; j < n; ++j) cr[j] += av * br[j];
      }
    }
  }
}

// dst[e] += src[e], count elements.
template <typename T>
void add_to(T* dst, const T* src, int64_t count) {
#pragma omp parallel for if (count > kParallelMin)
  for (int64_t e = 0; e < count; ++e) dst[e] += src[e];
}

// A fresh leaf holding rows r0 .. r0+count-1 of x (count, cols): the detached
// input of a recomputed chunk.
template <typename T>
Var<T> rows_copy(const Var<T>& x, int64_t r0, int64_t count, bool requires_grad) {
  Var<T> c = make_var_for_write<T>(count, x->cols, requires_grad);
  std::memcpy(c->data.data(), x->data.data() + r0 * x->cols,
              sizeof(T) * static_cast<size_t>(count * x->cols));
  return c;
}

// weight * sum over rows of -log softmax(logits[r])[targets[r]]: (1, 1). logits
// (m, 256).
template <typename T>
Var<T> cross_entropy_sum(Tape<T>& tape, const Var<T>& logits, const uint8_t* targets,
                         double weight) {
  const int64_t m = logits->rows, V = logits->cols;
  Var<T> out = make_var<T>(1, 1, logits->requires_grad);
  double total = 0;
  for (int64_t r = 0; r < m; ++r) {
    const T* lr = logits->data.data() + r * V;
    T mx = lr[0];
    for (int64_t j = 1; j < V; ++j) mx = lr[j] > mx ? lr[j] : mx;
    double s = 0;
    for (int64_t j = 0; j < V; ++j) s += std::exp(static_cast<double>(lr[j]) - mx);
    total += static_cast<double>(mx) + std::log(s) - static_cast<double>(lr[targets[r]]);
  }
  out->data[0] = static_cast<T>(weight * total);
  if (!tape.recording() || !out->requires_grad) return out;
  std::vector<uint8_t> tg(targets, targets + m);
  tape.push([logits, out, tg = std::move(tg), weight]() {
    if (!out->has_grad()) return;
    const int64_t m = logits->rows, V = logits->cols;
    const double d = weight * static_cast<double>(out->grad[0]);
    T* gl = logits->g();
#pragma omp parallel for if (m * V > kParallelMin)
    for (int64_t r = 0; r < m; ++r) {
      const T* lr = logits->data.data() + r * V;
      T mx = lr[0];
      for (int64_t j = 1; j < V; ++j) mx = lr[j] > mx ? lr[j] : mx;
      double s = 0;
      for (int64_t j = 0; j < V; ++j) s += std::exp(static_cast<double>(lr[j]) - mx);
      const double lse = static_cast<double>(mx) + std::log(s);
      T* gr = gl + r * V;
      for (int64_t j = 0; j < V; ++j) {
        const double pj = std::exp(static_cast<double>(lr[j]) - lse);
        gr[j] += static_cast<T>(d * (pj - (j == tg[r] ? 1.0 : 0.0)));
      }
    }
  });
  return out;
}

// FFN(LN x) of one block's parameters on any tape: (n, D).
template <typename T>
struct FfnParams {
  Var<T> ln_g, ln_b, w1, b1, w2, b2;
  bool any_grad() const {
    return wants_grad(ln_g) || wants_grad(ln_b) || wants_grad(w1) || wants_grad(b1) ||
           wants_grad(w2) || wants_grad(b2);
  }
};
template <typename T>
Var<T> ffn_core(Tape<T>& tape, const FfnParams<T>& fp, const Var<T>& x) {
  Var<T> h = layernorm(tape, x, fp.ln_g, fp.ln_b);
  Var<T> u = linear(tape, h, fp.w1, fp.b1);
  h.reset();
  Var<T> a = gelu(tape, u);
  u.reset();
  return linear(tape, a, fp.w2, fp.b2);
}

template <typename T>
struct HeadParams {
  Var<T> ln_g, ln_b, w, b;
  bool any_grad() const {
    return wants_grad(ln_g) || wants_grad(ln_b) || wants_grad(w) || wants_grad(b);
  }
};
template <typename T>
HeadParams<T> head_params(const ParamSet<T>& p) {
  return {param(p, "final_ln.weight"), param(p, "final_ln.bias"), param(p, "head.weight"),
          param(p, "head.bias")};
}
template <typename T>
Var<T> head_core(Tape<T>& tape, const HeadParams<T>& hp, const Var<T>& x) {
  Var<T> h = layernorm(tape, x, hp.ln_g, hp.ln_b);
  return linear(tape, h, hp.w, hp.b);
}

// Row ranges of n rows in `chunks` nearly equal parts: [starts[i],
// starts[i+1]).
std::vector<int64_t> chunk_starts(int64_t n, int chunks) {
  const int64_t c = std::max<int64_t>(1, std::min<int64_t>(chunks, std::max<int64_t>(n, 1)));
  const int64_t size = (n + c - 1) / c;
  std::vector<int64_t> s;
  for (int64_t r = 0; r < n; r += size) s.push_back(r);
  s.push_back(n);
  return s;
}

}  // namespace

// ---- linear ----

template <typename T>
Var<T> linear(Tape<T>& tape, const Var<T>& x, const Var<T>& w, const Var<T>& b) {
  // x (n, in), w (in, out), b (1, out) -> y (n, out)
  const int64_t n = x->rows, in = x->cols, out_dim = w->cols;
  assert(w->rows == in && (!b || b->numel() == out_dim));
  Var<T> y = make_var_for_write<T>(n, out_dim, wants_grad(x) || wants_grad(w) || wants_grad(b));
  if (n > 0) mm_nn(x->data.data(), w->data.data(), y->data.data(), n, in, out_dim);
  if (b) {
    T* yd = y->data.data();
    const T* bd = b->data.data();
#pragma omp parallel for if (n * out_dim > kParallelMin)
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < out_dim; ++j) yd[r * out_dim + j] += bd[j];
  }
  if (!tape.recording() || !y->requires_grad) return y;
  tape.push([x, w, b, y]() {
    if (!y->has_grad()) return;
    const int64_t n = x->rows, in = x->cols, out_dim = w->cols;
    const T* dy = y->grad.data();
    // dx (n, in) += dy (n, out) · w (in, out)^T
    if (x->requires_grad) mm_nt_acc(dy, w->data.data(), x->g(), n, out_dim, in);
    // dw (in, out) += x (n, in)^T · dy (n, out)
    if (w->requires_grad) mm_tn_acc(x->data.data(), dy, w->g(), in, n, out_dim);
    if (b && b->requires_grad) {
      T* db = b->g();
      for (int64_t r = 0; r < n; ++r)
        for (int64_t j = 0; j < out_dim; ++j) db[j] += dy[r * out_dim + j];
    }
  });
  return y;
}

// ---- layer norm ----

template <typename T>
Var<T> layernorm(Tape<T>& tape, const Var<T>& x, const Var<T>& g, const Var<T>& b) {
  // x (n, D); g, b (1, D)
  const int64_t n = x->rows, D = x->cols;
  Var<T> y = make_var_for_write<T>(n, D, wants_grad(x) || wants_grad(g) || wants_grad(b));
  if constexpr (std::is_same_v<T, float>) {
    op_layernorm(x->data.data(), g->data.data(), b->data.data(), y->data.data(), n, D);
  } else {
    const T* xd = x->data.data();
    const T* gd = g->data.data();
    const T* bd = b->data.data();
    T* yd = y->data.data();
#pragma omp parallel for if (n * D > kParallelMin)
    for (int64_t r = 0; r < n; ++r) {
      const T* xr = xd + r * D;
      double mean = 0, var = 0;
      for (int64_t i = 0; i < D; ++i) mean += xr[i];
      mean /= static_cast<double>(D);
      for (int64_t i = 0; i < D; ++i) var += (xr[i] - mean) * (xr[i] - mean);
      var /= static_cast<double>(D);
      const double inv = 1.0 / std::sqrt(var + kLnEps);
      for (int64_t i = 0; i < D; ++i) yd[r * D + i] = (xr[i] - mean) * inv * gd[i] + bd[i];
    }
  }
  if (!tape.recording() || !y->requires_grad) return y;
  // The backward recomputes each row's mean and 1/std from x (kept anyway by
  // the caller's graph), so nothing but handles is saved here.
  tape.push([x, g, b, y]() {
    if (!y->has_grad()) return;
    const int64_t n = x->rows, D = x->cols;
    const T* xd = x->data.data();
    const T* gd = g->data.data();
    const T* dy = y->grad.data();
    T* dx = x->requires_grad ? x->g() : nullptr;
    T* dg = g->requires_grad ? g->g() : nullptr;
    T* db = b->requires_grad ? b->g() : nullptr;
    std::vector<double> mean(static_cast<size_t>(n)), inv(static_cast<size_t>(n));
#pragma omp parallel for if (n * D > kParallelMin)
    for (int64_t r = 0; r < n; ++r) {
      const T* xr = xd + r * D;
      const T* dyr = dy + r * D;
      double mu = 0, var = 0;
      for (int64_t i = 0; i < D; ++i) mu += xr[i];
      mu /= static_cast<double>(D);
      for (int64_t i = 0; i < D; ++i) var += (xr[i] - mu) * (xr[i] - mu);
      var /= static_cast<double>(D);
      const double iv = 1.0 / std::sqrt(var + kLnEps);
      mean[r] = mu;
      inv[r] = iv;
      if (!dx) continue;
      // dxhat = dy * g; dx = inv * (dxhat - mean(dxhat) - xhat * mean(dxhat *
      // xhat))
      double s1 = 0, s2 = 0;
      for (int64_t i = 0; i < D; ++i) {
        const double dxh = static_cast<double>(dyr[i]) * gd[i];
        s1 += dxh;
        s2 += dxh * (xr[i] - mu) * iv;
      }
      s1 /= static_cast<double>(D);
      s2 /= static_cast<double>(D);
      T* dxr = dx + r * D;
      for (int64_t i = 0; i < D; ++i) {
        const double xh = (xr[i] - mu) * iv;
        const double dxh = static_cast<double>(dyr[i]) * gd[i];
        dxr[i] += static_cast<T>(iv * (dxh - s1 - xh * s2));
      }
    }
    if (dg || db) {
      for (int64_t r = 0; r < n; ++r)
        for (int64_t i = 0; i < D; ++i) {
          const T dyv = dy[r * D + i];
          if (dg) dg[i] += static_cast<T>(dyv * ((xd[r * D + i] - mean[r]) * inv[r]));
          if (db) db[i] += dyv;
        }
    }
  });
  return y;
}

// ---- GELU ----

template <typename T>
Var<T> gelu(Tape<T>& tape, const Var<T>& x) {
  const int64_t count = x->numel();
  Var<T> y = make_var_for_write<T>(x->rows, x->cols, wants_grad(x));
  const T* xd = x->data.data();
  T* yd = y->data.data();
  if constexpr (std::is_same_v<T, float>) {
    // op_gelu itself, in parallel slices, so the values are the inference op's.
    std::memcpy(yd, xd, sizeof(float) * static_cast<size_t>(count));
    const int64_t slice = 1 << 14;
#pragma omp parallel for if (count > kParallelMin)
    for (int64_t s = 0; s < count; s += slice) op_gelu(yd + s, std::min(slice, count - s));
  } else {
    const T k = T(0.7978845608028654);  // sqrt(2/pi)
#pragma omp parallel for if (count > kParallelMin)
    for (int64_t e = 0; e < count; ++e) {
      const T v = xd[e];
      yd[e] = T(0.5) * v * (T(1) + std::tanh(k * (v + T(0.044715) * v * v * v)));
    }
  }
  if (!tape.recording() || !y->requires_grad) return y;
  tape.push([x, y]() {
    if (!y->has_grad()) return;
    const int64_t count = x->numel();
    const T* xd = x->data.data();
    const T* dy = y->grad.data();
    T* dx = x->g();
    const T k = T(0.7978845608028654), c = T(0.044715);
#pragma omp parallel for simd if (count > kParallelMin)
    for (int64_t e = 0; e < count; ++e) {
      // d/dv 0.5 v (1 + tanh u), u = k (v + c v^3); float: the forward's tanh_vec
      const T v = xd[e];
      const T u = k * (v + c * v * v * v);
      T t, s2;  // tanh u, 1 - tanh^2 u
      if constexpr (std::is_same_v<T, float>) {
        tanh_sech2_vec(u, &t, &s2);
      } else {
        t = std::tanh(u);
        s2 = T(1) - t * t;
      }
      const T d = T(0.5) * (T(1) + t) + T(0.5) * v * s2 * k * (T(1) + T(3) * c * v * v);
      dx[e] += dy[e] * d;
    }
  });
  return y;
}

// ---- shape and arithmetic ----

template <typename T>
Var<T> add(Tape<T>& tape, const Var<T>& a, const Var<T>& b) {
  assert(a->numel() == b->numel());
  const int64_t count = a->numel();
  Var<T> y = make_var_for_write<T>(a->rows, a->cols, wants_grad(a) || wants_grad(b));
  const T* ad = a->data.data();
  const T* bd = b->data.data();
  T* yd = y->data.data();
#pragma omp parallel for if (count > kParallelMin)
  for (int64_t e = 0; e < count; ++e) yd[e] = ad[e] + bd[e];
  if (!tape.recording() || !y->requires_grad) return y;
  tape.push([a, b, y]() {
    if (!y->has_grad()) return;
    if (a->requires_grad) add_to(a->g(), y->grad.data(), y->numel());
    if (b->requires_grad) add_to(b->g(), y->grad.data(), y->numel());
  });
  return y;
}

template <typename T>
Var<T> scale(Tape<T>& tape, const Var<T>& a, T s) {
  const int64_t count = a->numel();
  Var<T> y = make_var_for_write<T>(a->rows, a->cols, wants_grad(a));
  const T* ad = a->data.data();
  T* yd = y->data.data();
#pragma omp parallel for if (count > kParallelMin)
  for (int64_t e = 0; e < count; ++e) yd[e] = ad[e] * s;
  if (!tape.recording() || !y->requires_grad) return y;
  tape.push([a, y, s]() {
    if (!y->has_grad()) return;
    const int64_t count = a->numel();
    T* da = a->g();
    const T* dy = y->grad.data();
#pragma omp parallel for if (count > kParallelMin)
    for (int64_t e = 0; e < count; ++e) da[e] += dy[e] * s;
  });
  return y;
}

template <typename T>
Var<T> slice_rows(Tape<T>& tape, const Var<T>& x, int64_t r0, int64_t count) {
  assert(r0 >= 0 && count >= 0 && r0 + count <= x->rows);
  Var<T> y = rows_copy(x, r0, count, wants_grad(x));
  if (!tape.recording() || !y->requires_grad) return y;
  tape.push([x, y, r0]() {
    if (!y->has_grad()) return;
    add_to(x->g() + r0 * x->cols, y->grad.data(), y->numel());
  });
  return y;
}

template <typename T>
Var<T> concat_rows(Tape<T>& tape, const std::vector<Var<T>>& parts) {
  assert(!parts.empty());
  const int64_t cols = parts[0]->cols;
  int64_t rows = 0;
  bool rg = false;
  for (const auto& q : parts) {
    assert(q->cols == cols);
    rows += q->rows;
    rg = rg || q->requires_grad;
  }
  Var<T> y = make_var_for_write<T>(rows, cols, rg);
  int64_t at = 0;
  for (const auto& q : parts) {
    std::memcpy(y->data.data() + at, q->data.data(), sizeof(T) * static_cast<size_t>(q->numel()));
    at += q->numel();
  }
  if (!tape.recording() || !y->requires_grad) return y;
  tape.push([parts, y]() {
    if (!y->has_grad()) return;
    int64_t at = 0;
    for (const auto& q : parts) {
      if (q->requires_grad) add_to(q->g(), y->grad.data() + at, q->numel());
      at += q->numel();
    }
  });
  return y;
}

template <typename T>
Var<T> reshape(Tape<T>& tape, const Var<T>& x, int64_t rows, int64_t cols) {
  assert(rows * cols == x->numel());
  Var<T> y = make_var_for_write<T>(rows, cols, wants_grad(x));
  std::memcpy(y->data.data(), x->data.data(), sizeof(T) * static_cast<size_t>(x->numel()));
  if (!tape.recording() || !y->requires_grad) return y;
  tape.push([x, y]() {
    if (!y->has_grad()) return;
    add_to(x->g(), y->grad.data(), y->numel());
  });
  return y;
}

// ---- embedding ----

template <typename T>
Var<T> embed(Tape<T>& tape, const ParamSet<T>& p, const ModelConfig& cfg, const uint8_t* x,
             int64_t p0, int64_t count) {
  const int64_t D = cfg.dim;
  const bool image = cfg.modality.kind == ModalityKind::kImage;
  const Var<T>& token = param(p, "embed.token");
  const Var<T>& bos = param(p, "embed.bos");
  const Var<T>& pos_row = param(p, "embed.pos_row");
  const Var<T>& pos_col = param(p, "embed.pos_col");
  const Var<T> pos_channel = image ? param(p, "embed.pos_channel") : Var<T>();
  // Per output row: the token table row (-1 = BOS) and the position rows, as
  // embed_one.
  struct Rows {
    int64_t tok, row, col, chan;
  };
  std::vector<Rows> idx(static_cast<size_t>(count));
  for (int64_t r = 0; r < count; ++r) {
    const int64_t pos = p0 + r;
    Rows& ix = idx[static_cast<size_t>(r)];
    ix.tok = pos == 0 ? -1 : static_cast<int64_t>(x[pos - 1]);
    if (image) {
      const int64_t C = cfg.modality.channels, W = cfg.modality.width;
      ix.chan = pos % C;
      ix.col = (pos / C) % W;
      ix.row = pos / (C * W);
    } else {
      ix.chan = -1;
      ix.row = pos / cfg.pos_width;
      ix.col = pos % cfg.pos_width;
    }
  }
  Var<T> y = make_var<T>(count, D,
                         wants_grad(token) || wants_grad(bos) || wants_grad(pos_row) ||
                             wants_grad(pos_col) || wants_grad(pos_channel));
  for (int64_t r = 0; r < count; ++r) {
    const Rows& ix = idx[static_cast<size_t>(r)];
    const T* tok = ix.tok < 0 ? bos->data.data() : token->data.data() + ix.tok * D;
    const T* pr = pos_row->data.data() + ix.row * D;
    const T* pc = pos_col->data.data() + ix.col * D;
    const T* ch = ix.chan >= 0 ? pos_channel->data.data() + ix.chan * D : nullptr;
    T* out = y->data.data() + r * D;
    for (int64_t i = 0; i < D; ++i) out[i] = tok[i] + pr[i] + pc[i] + (ch ? ch[i] : T(0));
  }
  if (!tape.recording() || !y->requires_grad) return y;
  tape.push([token, bos, pos_row, pos_col, pos_channel, idx = std::move(idx), y]() {
    if (!y->has_grad()) return;
    const int64_t D = y->cols;
    auto scatter = [&](const Var<T>& table, int64_t row, const T* g) {
      if (!table || !table->requires_grad) return;
      T* dst = table->g() + row * D;
      for (int64_t i = 0; i < D; ++i) dst[i] += g[i];
    };
    for (size_t r = 0; r < idx.size(); ++r) {
      const Rows& ix = idx[r];
      const T* g = y->grad.data() + static_cast<int64_t>(r) * D;
      if (ix.tok < 0)
        scatter(bos, 0, g);
      else
        scatter(token, ix.tok, g);
      scatter(pos_row, ix.row, g);
      scatter(pos_col, ix.col, g);
      if (ix.chan >= 0) scatter(pos_channel, ix.chan, g);
    }
  });
  return y;
}

// ---- the feed-forward half of a block ----

template <typename T>
Var<T> ffn_block(Tape<T>& tape, const ParamSet<T>& p, const std::string& prefix, const Var<T>& x,
                 int chunks) {
  const FfnParams<T> fp{param(p, prefix + "ln2.weight"), param(p, prefix + "ln2.bias"),
                        param(p, prefix + "ff.w1"),      param(p, prefix + "ff.b1"),
                        param(p, prefix + "ff.w2"),      param(p, prefix + "ff.b2")};
  if (chunks <= 1) return ffn_core(tape, fp, x);
  // x (n, D) -> y (n, D), one chunk of rows at a time; each chunk's LN output
  // and (rows, F) hidden values die before the next chunk starts.
  const int64_t n = x->rows, D = x->cols;
  const std::vector<int64_t> starts = chunk_starts(n, chunks);
  Var<T> y = make_var<T>(n, D, wants_grad(x) || fp.any_grad());
  for (size_t c = 0; c + 1 < starts.size(); ++c) {
    Tape<T> quiet(false);
    const int64_t r0 = starts[c], rows = starts[c + 1] - r0;
    Var<T> part = ffn_core(quiet, fp, rows_copy(x, r0, rows, false));
    std::memcpy(y->data.data() + r0 * D, part->data.data(),
                sizeof(T) * static_cast<size_t>(rows * D));
  }
  if (!tape.recording() || !y->requires_grad) return y;
  tape.push([fp, x, y, starts]() {
    if (!y->has_grad()) return;
    const int64_t D = x->cols;
    for (size_t c = 0; c + 1 < starts.size(); ++c) {
      const int64_t r0 = starts[c], rows = starts[c + 1] - r0;
      Tape<T> inner(true);
      Var<T> xs = rows_copy(x, r0, rows, x->requires_grad);
      Var<T> part = ffn_core(inner, fp, xs);
      std::memcpy(part->g(), y->grad.data() + r0 * D, sizeof(T) * static_cast<size_t>(rows * D));
      part.reset();
      inner.run_backward();
      if (x->requires_grad && xs->has_grad()) add_to(x->g() + r0 * D, xs->grad.data(), rows * D);
    }
  });
  return y;
}

// ---- the logit head and its loss ----

template <typename T>
Var<T> head_logits(Tape<T>& tape, const ParamSet<T>& p, const Var<T>& hidden) {
  return head_core(tape, head_params(p), hidden);
}

template <typename T>
Var<T> head_loss(Tape<T>& tape, const ParamSet<T>& p, const Var<T>& hidden, const uint8_t* targets,
                 int chunks) {
  const HeadParams<T> hp = head_params(p);
  const int64_t n = hidden->rows;
  const double weight = n > 0 ? 1.0 / static_cast<double>(n) : 0.0;
  if (chunks <= 1) {
    Var<T> logits = head_core(tape, hp, hidden);
    assert(logits->cols == kVocabSize);
    return cross_entropy_sum(tape, logits, targets, weight);
  }
  // Each chunk's (rows, 256) logits are made, reduced to its share of the loss
  // and dropped.
  const std::vector<int64_t> starts = chunk_starts(n, chunks);
  Var<T> loss = make_var<T>(1, 1, wants_grad(hidden) || hp.any_grad());
  double total = 0;
  for (size_t c = 0; c + 1 < starts.size(); ++c) {
    Tape<T> quiet(false);
    const int64_t r0 = starts[c], rows = starts[c + 1] - r0;
    Var<T> logits = head_core(quiet, hp, rows_copy(hidden, r0, rows, false));
    total += static_cast<double>(cross_entropy_sum(quiet, logits, targets + r0, 1.0)->data[0]);
  }
  loss->data[0] = static_cast<T>(weight * total);
  if (!tape.recording() || !loss->requires_grad) return loss;
  std::vector<uint8_t> tg(targets, targets + n);
  tape.push([hp, hidden, loss, starts, tg = std::move(tg), weight]() {
    if (!loss->has_grad()) return;
    const int64_t D = hidden->cols;
    for (size_t c = 0; c + 1 < starts.size(); ++c) {
      const int64_t r0 = starts[c], rows = starts[c + 1] - r0;
      Tape<T> inner(true);
      Var<T> xs = rows_copy(hidden, r0, rows, hidden->requires_grad);
      Var<T> logits = head_core(inner, hp, xs);
      Var<T> part = cross_entropy_sum(inner, logits, tg.data() + r0, weight);
      logits.reset();
      part->g()[0] = loss->grad[0];
      part.reset();
      inner.run_backward();
      if (hidden->requires_grad && xs->has_grad())
        add_to(hidden->g() + r0 * D, xs->grad.data(), rows * D);
    }
  });
  return loss;
}

// ---- hourglass row moves ----

// y (out_rows, D): row j = x[j - shift] (zeros where that row does not exist).
template <typename T>
Var<T> shift_rows(Tape<T>& tape, const Var<T>& x, int64_t shift, int64_t out_rows) {
  const int64_t D = x->cols;
  Var<T> y = make_var<T>(out_rows, D, x->requires_grad);
  const int64_t j0 = std::max<int64_t>(0, shift), j1 = std::min(out_rows, x->rows + shift);
  for (int64_t j = j0; j < j1; ++j)
    std::copy_n(x->data.data() + (j - shift) * D, D, y->data.data() + j * D);
  if (x->requires_grad)
    tape.push([x, y, shift, j0, j1, D]() {
      if (!y->has_grad()) return;
      T* gx = x->g();
      const T* gy = y->grad.data();
      for (int64_t j = j0; j < j1; ++j)
        for (int64_t c = 0; c < D; ++c) gx[(j - shift) * D + c] += gy[j * D + c];
    });
  return y;
}

// y (rows, D): the mean of each group of k consecutive rows of x (rows * k, D),
// summed in order and then scaled by 1/k as the inference's average pooling
// does.
template <typename T>
Var<T> mean_groups(Tape<T>& tape, const Var<T>& x, int64_t k) {
  const int64_t D = x->cols, rows = x->rows / k;
  Var<T> y = make_var<T>(rows, D, x->requires_grad);
  const T inv = T(1) / static_cast<T>(k);
  T* yd = y->data.data();
  const T* xd = x->data.data();
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t r = 0; r < k; ++r)
      for (int64_t c = 0; c < D; ++c) yd[t * D + c] += xd[(t * k + r) * D + c];
  for (int64_t e = 0; e < rows * D; ++e) yd[e] *= inv;
  if (x->requires_grad)
    tape.push([x, y, k, inv, rows, D]() {
      if (!y->has_grad()) return;
      T* gx = x->g();
      const T* gy = y->grad.data();
      for (int64_t t = 0; t < rows; ++t)
        for (int64_t r = 0; r < k; ++r)
          for (int64_t c = 0; c < D; ++c) gx[(t * k + r) * D + c] += gy[t * D + c] * inv;
    });
  return y;
}

// y (rows * k, D): row t*k + r = x[t] (repeat upsampling).
template <typename T>
Var<T> repeat_rows(Tape<T>& tape, const Var<T>& x, int64_t k) {
  const int64_t D = x->cols, rows = x->rows;
  Var<T> y = make_var<T>(rows * k, D, x->requires_grad);
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t r = 0; r < k; ++r)
      std::copy_n(x->data.data() + t * D, D, y->data.data() + (t * k + r) * D);
  if (x->requires_grad)
    tape.push([x, y, k, rows, D]() {
      if (!y->has_grad()) return;
      T* gx = x->g();
      const T* gy = y->grad.data();
      for (int64_t t = 0; t < rows; ++t)
        for (int64_t r = 0; r < k; ++r)
          for (int64_t c = 0; c < D; ++c) gx[t * D + c] += gy[(t * k + r) * D + c];
    });
  return y;
}

// ---- instantiations ----

#define ATTNSCOPE_OPS_TRAIN_INSTANTIATE(T)                                                        \
  template Var<T> linear<T>(Tape<T>&, const Var<T>&, const Var<T>&, const Var<T>&);               \
  template Var<T> layernorm<T>(Tape<T>&, const Var<T>&, const Var<T>&, const Var<T>&);            \
  template Var<T> gelu<T>(Tape<T>&, const Var<T>&);                                               \
  template Var<T> add<T>(Tape<T>&, const Var<T>&, const Var<T>&);                                 \
  template Var<T> scale<T>(Tape<T>&, const Var<T>&, T);                                           \
  template Var<T> slice_rows<T>(Tape<T>&, const Var<T>&, int64_t, int64_t);                       \
  template Var<T> concat_rows<T>(Tape<T>&, const std::vector<Var<T>>&);                           \
  template Var<T> reshape<T>(Tape<T>&, const Var<T>&, int64_t, int64_t);                          \
  template Var<T> embed<T>(Tape<T>&, const ParamSet<T>&, const ModelConfig&, const uint8_t*,      \
                           int64_t, int64_t);                                                     \
  template Var<T> ffn_block<T>(Tape<T>&, const ParamSet<T>&, const std::string&, const Var<T>&,   \
                               int);                                                              \
  template Var<T> head_loss<T>(Tape<T>&, const ParamSet<T>&, const Var<T>&, const uint8_t*, int); \
  template Var<T> head_logits<T>(Tape<T>&, const ParamSet<T>&, const Var<T>&);                    \
  template Var<T> shift_rows<T>(Tape<T>&, const Var<T>&, int64_t, int64_t);                       \
  template Var<T> mean_groups<T>(Tape<T>&, const Var<T>&, int64_t);                               \
  template Var<T> repeat_rows<T>(Tape<T>&, const Var<T>&, int64_t);

ATTNSCOPE_OPS_TRAIN_INSTANTIATE(float)
ATTNSCOPE_OPS_TRAIN_INSTANTIATE(double)

#undef ATTNSCOPE_OPS_TRAIN_INSTANTIATE

}  // namespace attnscope::tape
