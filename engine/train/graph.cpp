// Each family's forward on the training tape (train/graph.h): the same blocks,
// cross-attention, shortening and upsampling as models/*.cpp, built from the
// differentiable ops, with the memory techniques (recomputed blocks, reversible
// stack, chunks) and Perceiver AR's cross dropout.
#include "train/graph.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "train/attn_train.h"

namespace attnscope::train {

namespace {

template <typename T>
using ParamsPtr = std::shared_ptr<const ParamSet<T>>;
using Rotations = std::shared_ptr<const std::vector<float>>;

// A parameter by name; graph_hidden checked that every spec'd one is present.
template <typename T>
const Var<T>& param(const ParamSet<T>& p, const std::string& name) {
  auto it = p.find(name);
  assert(it != p.end() && "parameter missing: did check_params run first?");
  return it->second;
}

// (rows, cols) of a spec'd tensor as a tape matrix: vectors (1, n), matrices as
// stored.
std::pair<int64_t, int64_t> matrix_shape(const std::vector<int64_t>& shape) {
  if (shape.size() == 1) return {1, shape[0]};
  int64_t cols = 1;
  for (size_t i = 1; i < shape.size(); ++i) cols *= shape[i];
  return {shape.empty() ? 1 : shape[0], cols};
}

template <typename T>
Status check_params(const ModelConfig& cfg, const ParamSet<T>& p) {
  const auto specs = model_param_specs(cfg);
  for (const ParamSpec& s : specs) {
    auto it = p.find(s.name);
    if (it == p.end() || !it->second)
      return invalid_argument("training parameter '" + s.name + "' is missing");
    const auto want = matrix_shape(s.shape);
    const Value<T>& have = *it->second;
    if (have.rows != want.first || have.cols != want.second ||
        static_cast<int64_t>(have.data.size()) != have.numel())
      return invalid_argument("training parameter '" + s.name + "' is (" +
                              std::to_string(have.rows) + ", " + std::to_string(have.cols) +
                              ") but the config needs (" + std::to_string(want.first) + ", " +
                              std::to_string(want.second) + ")");
  }
  if (p.size() != specs.size())
    return invalid_argument("the parameter set has " + std::to_string(p.size()) +
                            " tensors but a " + family_name(cfg.family) +
                            " model with this config has " + std::to_string(specs.size()));
  return Status::ok();
}

// ---- small ops of this file (shortening and upsampling) ----

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

// ---- blocks ----

// What every block of a graph shares.
template <typename T>
struct Ctx {
  ModelConfig cfg;  // resolved
  ParamsPtr<T> p;   // the caller's parameters (same Vars), kept alive for recomputation
  GraphOptions opt;
};

// The attention half of a pre-LN block under prefix: Attn(LN1 x) Wo, (n, D).
// kLsh uses the shared attn.wqk for queries and keys; rot keeps its rotations
// alive until the backward of the attention has run (the no-op step is older,
// so it runs after the attention's).
template <typename T>
Var<T> attn_half(Tape<T>& t, const ParamSet<T>& p, const std::string& pre, const Var<T>& x,
                 int heads, const TrainAttnSpec& spec, const Rotations& rot) {
  // h, q, k, v, o are (n, D).
  Var<T> h = layernorm(t, x, param(p, pre + "ln1.weight"), param(p, pre + "ln1.bias"));
  Var<T> v = linear(t, h, param(p, pre + "attn.wv"), Var<T>());
  Var<T> o;
  if (spec.kind == TrainAttnKind::kLsh) {
    Var<T> qk = linear(t, h, param(p, pre + "attn.wqk"), Var<T>());
    t.push([rot]() {});
    o = attention(t, qk, qk, v, heads, spec);
  } else {
    Var<T> q = linear(t, h, param(p, pre + "attn.wq"), Var<T>());
    Var<T> k = linear(t, h, param(p, pre + "attn.wk"), Var<T>());
    o = attention(t, q, k, v, heads, spec);
  }
  return linear(t, o, param(p, pre + "attn.wo"), Var<T>());
}

// One pre-LN block: x + Attn(LN1 x) Wo, then + FFN(LN2 .).
template <typename T>
Var<T> block(Tape<T>& t, const ParamSet<T>& p, const std::string& pre, const Var<T>& x, int heads,
             const TrainAttnSpec& spec, const Rotations& rot, int ff_chunks) {
  Var<T> y = add(t, x, attn_half(t, p, pre, x, heads, spec, rot));
  return add(t, y, ffn_block(t, p, pre, y, ff_chunks));
}

// A block, re-run in the backward when the graph recomputes blocks.
template <typename T>
Var<T> run_block(Tape<T>& t, const Ctx<T>& c, const std::string& pre, const Var<T>& x,
                 const TrainAttnSpec& spec, const Rotations& rot = nullptr) {
  const int heads = c.cfg.heads, chunks = c.opt.ff_chunks;
  if (!c.opt.recompute_blocks) return block(t, *c.p, pre, x, heads, spec, rot, chunks);
  SubGraph<T> fn = [ps = c.p, pre, heads, spec, rot, chunks](Tape<T>& tt,
                                                             const std::vector<Var<T>>& in) {
    return block(tt, *ps, pre, in[0], heads, spec, rot, chunks);
  };
  return checkpoint(t, {x}, fn);
}

template <typename T>
TrainAttnSpec causal_spec(const Ctx<T>& c, int64_t q_offset) {
  TrainAttnSpec s;
  s.kind = TrainAttnKind::kCausal;
  s.q_offset = q_offset;
  s.store_probs = c.opt.store_attention;
  return s;
}

// ---- dense and sparse ----

template <typename T>
Var<T> transformer_hidden(Tape<T>& t, const Ctx<T>& c, Var<T> h) {
  for (int l = 0; l < c.cfg.layers; ++l) {
    TrainAttnSpec spec = causal_spec(c, 0);
    if (c.cfg.family == Family::kSparse) {
      spec.kind = TrainAttnKind::kSparse;
      spec.sparse = c.cfg.sparse;
      spec.layer = l;
    }
    h = run_block(t, c, "blocks." + std::to_string(l) + ".", h, spec);
  }
  return h;
}

// ---- Reformer ----

// Reversible: X1 = X2 = embedding; Y1 = X1 + Attn(LN1 X2) Wo, Y2 = X2 + FFN(LN2
// Y1); the hidden rows are (Y1 + Y2) / 2. Plain: pre-LN blocks. Rotations as
// ReformerModel draws them.
template <typename T>
Var<T> reformer_hidden(Tape<T>& t, const Ctx<T>& c, const Var<T>& emb) {
  const ModelConfig& cfg = c.cfg;
  const int heads = cfg.heads, chunks = c.opt.ff_chunks;
  const int64_t n = emb->rows;
  std::vector<TrainAttnSpec> specs;
  std::vector<Rotations> rots;
  for (int l = 0; l < cfg.layers; ++l) {
    TrainAttnSpec s;
    s.kind = TrainAttnKind::kLsh;
    s.lsh = {cfg.lsh.n_hashes, cfg.lsh.chunk, cfg.lsh.n_buckets};
    auto rot = std::make_shared<const std::vector<float>>(
        attn_lsh_rotations(cfg.seed, l, s.lsh.n_hashes, cfg.head_dim(), s.lsh.n_buckets));
    s.rotations = rot->data();
    s.store_probs = c.opt.store_attention;
    specs.push_back(s);
    rots.push_back(rot);
  }
  auto pre = [](int l) { return "blocks." + std::to_string(l) + "."; };

  if (!cfg.lsh.reversible) {
    Var<T> h = emb;
    for (int l = 0; l < cfg.layers; ++l)
      h = run_block(t, c, pre(l), h, specs[static_cast<size_t>(l)], rots[static_cast<size_t>(l)]);
    return h;
  }

  // F and G of block l as sub-graphs of one input.
  auto f_of = [&](int l) -> SubGraph<T> {
    return [ps = c.p, p = pre(l), heads, spec = specs[static_cast<size_t>(l)],
            rot = rots[static_cast<size_t>(l)]](Tape<T>& tt, const std::vector<Var<T>>& in) {
      return attn_half(tt, *ps, p, in[0], heads, spec, rot);
    };
  };
  auto g_of = [&](int l) -> SubGraph<T> {
    return [ps = c.p, p = pre(l), chunks](Tape<T>& tt, const std::vector<Var<T>>& in) {
      return ffn_block(tt, *ps, p, in[0], chunks);
    };
  };

  Var<T> y1, y2;
  if (c.opt.reversible) {
    std::vector<RevBlock<T>> blocks;
    for (int l = 0; l < cfg.layers; ++l) blocks.push_back({f_of(l), g_of(l)});
    std::tie(y1, y2) = reversible_stack(t, emb, emb, blocks);
  } else if (c.opt.recompute_blocks) {
    // The two streams stacked as one (2n, D) state, so that a block is one
    // checkpoint.
    Var<T> s = concat_rows(t, std::vector<Var<T>>{emb, emb});
    for (int l = 0; l < cfg.layers; ++l) {
      SubGraph<T> fn = [f = f_of(l), g = g_of(l), n](Tape<T>& tt, const std::vector<Var<T>>& in) {
        Var<T> x1 = slice_rows(tt, in[0], 0, n);
        Var<T> x2 = slice_rows(tt, in[0], n, n);
        Var<T> a = add(tt, x1, f(tt, {x2}));
        Var<T> b = add(tt, x2, g(tt, {a}));
        return concat_rows(tt, std::vector<Var<T>>{a, b});
      };
      s = checkpoint(t, {s}, fn);
    }
    y1 = slice_rows(t, s, 0, n);
    y2 = slice_rows(t, s, n, n);
  } else {
    y1 = emb;
    y2 = emb;
    for (int l = 0; l < cfg.layers; ++l) {
      y1 = add(t, y1, f_of(l)(t, {y2}));
      y2 = add(t, y2, g_of(l)(t, {y1}));
    }
  }
  return scale(t, add(t, y1, y2), T(0.5));
}

// ---- Perceiver AR ----

// The context rows kept by cross dropout: runs [begin, end) of positions <
// first, in order.
using Runs = std::vector<std::pair<int64_t, int64_t>>;
Runs kept_context(int64_t first, double rate, uint64_t seed) {
  const int64_t drop = std::min<int64_t>(
      first, static_cast<int64_t>(std::floor(rate * static_cast<double>(first) + 0.5)));
  if (drop <= 0) return {{0, first}};
  // The dropped positions: the first `drop` of a seeded partial Fisher-Yates
  // shuffle.
  std::vector<int64_t> idx(static_cast<size_t>(first));
  for (int64_t i = 0; i < first; ++i) idx[static_cast<size_t>(i)] = i;
  Rng rng(derive_seed(seed, 0x7065726365ull));
  for (int64_t i = 0; i < drop; ++i) {
    const int64_t j = i + static_cast<int64_t>(rng.next_u64() % static_cast<uint64_t>(first - i));
    std::swap(idx[static_cast<size_t>(i)], idx[static_cast<size_t>(j)]);
  }
  std::vector<char> dropped(static_cast<size_t>(first), 0);
  for (int64_t i = 0; i < drop; ++i) dropped[static_cast<size_t>(idx[static_cast<size_t>(i)])] = 1;
  Runs runs;
  for (int64_t p = 0; p < first;) {
    if (dropped[static_cast<size_t>(p)]) {
      ++p;
      continue;
    }
    int64_t e = p;
    while (e < first && !dropped[static_cast<size_t>(e)]) ++e;
    runs.push_back({p, e});
    p = e;
  }
  return runs;
}

// The cross layer: emb (n, D) -> z (n - first, D). The latents (rows
// first..n-1) query LN_q(emb) Wq; keys and values are LN_kv of the kept context
// rows followed by every latent row, causal with the query offset = the number
// of kept context rows (first without dropout).
template <typename T>
Var<T> cross_layer(Tape<T>& t, const ParamSet<T>& p, const Var<T>& emb, int64_t first,
                   const Runs& runs, int heads, bool store, int chunks) {
  const int64_t n = emb->rows, rows = n - first;
  Var<T> latent = first == 0 ? emb : slice_rows(t, emb, first, rows);
  // src is (kept + rows, D): the inputs the latents may read.
  Var<T> src = emb;
  int64_t kept = first;
  if (!(runs.size() == 1 && runs[0].first == 0 && runs[0].second == first)) {
    std::vector<Var<T>> parts;
    kept = 0;
    for (const auto& [b, e] : runs) {
      parts.push_back(slice_rows(t, emb, b, e - b));
      kept += e - b;
    }
    parts.push_back(latent);
    src = concat_rows(t, parts);
  }
  Var<T> hk = layernorm(t, src, param(p, "cross.ln_kv.weight"), param(p, "cross.ln_kv.bias"));
  Var<T> k = linear(t, hk, param(p, "cross.attn.wk"), Var<T>());
  Var<T> v = linear(t, hk, param(p, "cross.attn.wv"), Var<T>());
  Var<T> hq = layernorm(t, latent, param(p, "cross.ln_q.weight"), param(p, "cross.ln_q.bias"));
  Var<T> q = linear(t, hq, param(p, "cross.attn.wq"), Var<T>());
  TrainAttnSpec spec;
  spec.kind = TrainAttnKind::kCausal;
  spec.q_offset = kept;
  spec.store_probs = store;
  Var<T> o = attention(t, q, k, v, heads, spec);
  Var<T> z = add(t, latent, linear(t, o, param(p, "cross.attn.wo"), Var<T>()));
  return add(t, z, ffn_block(t, p, "cross.", z, chunks));
}

template <typename T>
Var<T> perceiver_hidden(Tape<T>& t, const Ctx<T>& c, const Var<T>& emb, int64_t first) {
  const double rate =
      c.opt.cross_dropout >= 0 ? c.opt.cross_dropout : c.cfg.perceiver.cross_dropout;
  const Runs runs = kept_context(first, rate, c.opt.dropout_seed);
  const int heads = c.cfg.heads, chunks = c.opt.ff_chunks;
  const bool store = c.opt.store_attention;
  Var<T> z;
  if (c.opt.recompute_blocks) {
    SubGraph<T> fn = [ps = c.p, first, runs, heads, store, chunks](Tape<T>& tt,
                                                                   const std::vector<Var<T>>& in) {
      return cross_layer(tt, *ps, in[0], first, runs, heads, store, chunks);
    };
    z = checkpoint(t, {emb}, fn);
  } else {
    z = cross_layer(t, *c.p, emb, first, runs, heads, store, chunks);
  }
  for (int l = 0; l < c.cfg.layers; ++l)
    z = run_block(t, c, "blocks." + std::to_string(l) + ".", z, causal_spec(c, 0));
  return z;
}

// ---- Hourglass ----

// Levels 0 .. 2S; down level s and up level 2S - s run at depth s; depth s -> s
// + 1 shortens by ks[s]. Blocks are numbered in hierarchy order.
struct HourglassPlan {
  int middle = 0;
  std::vector<std::vector<std::string>> level_blocks;  // [level]: block prefixes
  std::vector<int64_t> ks;                             // [depth s < S]
};

HourglassPlan hourglass_plan(const std::vector<HourglassLevel>& levels) {
  HourglassPlan plan;
  plan.middle = static_cast<int>(levels.size() / 2);
  int block = 0;
  for (const HourglassLevel& lv : levels) {
    plan.level_blocks.emplace_back();
    for (int l = 0; l < lv.layers; ++l)
      plan.level_blocks.back().push_back("blocks." + std::to_string(block++) + ".");
  }
  for (int s = 0; s < plan.middle; ++s)
    plan.ks.push_back(levels[static_cast<size_t>(s + 1)].factor /
                      levels[static_cast<size_t>(s)].factor);
  return plan;
}

template <typename T>
Var<T> hourglass_level(Tape<T>& t, const Ctx<T>& c, const HourglassPlan& plan, int level,
                       Var<T> h) {
  for (const std::string& pre : plan.level_blocks[static_cast<size_t>(level)])
    h = run_block(t, c, pre, h, causal_spec(c, 0));
  return h;
}

// h (len, D) at depth s, as HourglassModel::depth_forward: down level, shift
// right by k-1 with zeros and pool groups of k (short_len = ceil(len / k) rows,
// the last group padded by the shift only), the inner depths, upsample,
// truncate to len and add to the unshifted h, up level.
template <typename T>
Var<T> hourglass_depth(Tape<T>& t, const Ctx<T>& c, const HourglassPlan& plan, int s, Var<T> h) {
  h = hourglass_level(t, c, plan, s, h);
  if (s == plan.middle) return h;
  const int64_t len = h->rows, D = h->cols, k = plan.ks[static_cast<size_t>(s)];
  const int64_t short_len = (len + k - 1) / k;
  const std::string i = std::to_string(s);
  // cat is (short_len * k, D): row j = h[j - k + 1]; g is (short_len, D).
  Var<T> cat = shift_rows(t, h, k - 1, short_len * k);
  Var<T> g;
  if (c.cfg.hourglass.pool == HourglassPool::kLinear)
    g = linear(t, reshape(t, cat, short_len, k * D), param(*c.p, "shorten." + i + ".weight"),
               param(*c.p, "shorten." + i + ".bias"));
  else
    g = mean_groups(t, cat, k);
  g = hourglass_depth(t, c, plan, s + 1, g);
  // u is (short_len * k, D): row t*k + r serves position t*k + r.
  Var<T> u;
  if (c.cfg.hourglass.upsample == HourglassUpsample::kLinear)
    u = reshape(t,
                linear(t, g, param(*c.p, "upsample." + i + ".weight"),
                       param(*c.p, "upsample." + i + ".bias")),
                short_len * k, D);
  else
    u = repeat_rows(t, g, k);
  if (short_len * k != len) u = slice_rows(t, u, 0, len);
  h = add(t, h, u);
  return hourglass_level(t, c, plan, 2 * plan.middle - s, h);
}

}  // namespace

template <typename T>
ParamSet<T> params_from_weights(const ModelConfig& in, const WeightMap& w) {
  ModelConfig cfg = in;
  ParamSet<T> p;
  if (!config_resolve(cfg).is_ok()) return p;
  for (const ParamSpec& s : model_param_specs(cfg)) {
    auto it = w.find(s.name);
    if (it == w.end() || it->second.empty()) continue;
    const auto [rows, cols] = matrix_shape(s.shape);
    if (it->second.numel() != rows * cols) continue;
    p.emplace(s.name, make_param<T>(rows, cols, it->second.data()));
  }
  return p;
}

WeightMap params_to_weights(const ModelConfig& in, const ParamSet<float>& p) {
  ModelConfig cfg = in;
  WeightMap w;
  if (!config_resolve(cfg).is_ok()) return w;
  for (const ParamSpec& s : model_param_specs(cfg)) {
    auto it = p.find(s.name);
    if (it == p.end()) continue;
    Tensor t = Tensor::zeros(s.shape, MemCategory::kWeights);
    if (t.numel() != it->second->numel()) continue;
    std::copy(it->second->data.begin(), it->second->data.end(), t.data());
    w.emplace(s.name, std::move(t));
  }
  return w;
}

int64_t graph_window_align(const ModelConfig& cfg) {
  switch (cfg.family) {
    case Family::kDense:
      return 1;
    case Family::kSparse:
      return std::max(1, cfg.sparse.stride);
    default:
      return 0;
  }
}

template <typename T>
Expected<GraphHidden<T>> graph_hidden(Tape<T>& tape, const ModelConfig& in, const ParamSet<T>& p,
                                      const uint8_t* x, int64_t n, const GraphOptions& opt) {
  Ctx<T> c;
  c.cfg = in;
  c.opt = opt;
  ATTN_RETURN_IF_ERROR(config_resolve(c.cfg));
  const ModelConfig& cfg = c.cfg;
  if (!x || n < 1 || n > cfg.seq_len())
    return invalid_argument("training sequence of " + std::to_string(n) +
                            " tokens; the model takes 1.." + std::to_string(cfg.seq_len()));
  if (opt.pos0 != 0) {
    const int64_t align = graph_window_align(cfg);
    if (align == 0)
      return invalid_argument(
          std::string("a window that starts inside the sequence needs a dense or sparse model; ") +
          family_name(cfg.family) + " attention depends on absolute positions");
    if (opt.pos0 < 0 || opt.pos0 % align != 0 || opt.pos0 + n > cfg.seq_len())
      return invalid_argument("a window of " + std::to_string(n) + " positions at " +
                              std::to_string(opt.pos0) + " must start at a multiple of " +
                              std::to_string(align) + " and end by " +
                              std::to_string(cfg.seq_len()));
  }
  if (opt.ff_chunks < 1 || opt.logit_chunks < 1)
    return invalid_argument("ff_chunks and logit_chunks must be at least 1");
  if (opt.reversible && !(cfg.family == Family::kReformer && cfg.lsh.reversible))
    return invalid_argument(
        "the reversible backward needs a Reformer with lsh.reversible on; this "
        "is a " +
        std::string(family_name(cfg.family)) +
        (cfg.family == Family::kReformer ? " with the plain residual" : "") +
        " model: use stored or recompute instead");
  const double rate = opt.cross_dropout >= 0 ? opt.cross_dropout : cfg.perceiver.cross_dropout;
  if (cfg.family == Family::kPerceiverAR && !(rate >= 0 && rate < 1))
    return invalid_argument("cross_dropout must be in [0, 1)");
  ATTN_RETURN_IF_ERROR(check_params(cfg, p));
  c.p = std::make_shared<const ParamSet<T>>(p);

  GraphHidden<T> out;
  Var<T> emb = embed(tape, p, cfg, x, opt.pos0, n);  // (n, D)
  switch (cfg.family) {
    case Family::kDense:
    case Family::kSparse:
      out.hidden = transformer_hidden(tape, c, emb);
      break;
    case Family::kReformer:
      out.hidden = reformer_hidden(tape, c, emb);
      break;
    case Family::kPerceiverAR:
      out.first_row = n - std::min<int64_t>(cfg.perceiver.latents, n);
      out.hidden = perceiver_hidden(tape, c, emb, out.first_row);
      break;
    case Family::kHourglass: {
      auto levels = hourglass_parse(cfg.hourglass.hierarchy);
      if (!levels) return levels.status();
      out.hidden = hourglass_depth(tape, c, hourglass_plan(*levels), 0, emb);
      break;
    }
  }
  return out;
}

template <typename T>
Expected<Var<T>> graph_loss(Tape<T>& tape, const ModelConfig& cfg, const ParamSet<T>& p,
                            const uint8_t* x, int64_t n, const GraphOptions& opt,
                            int64_t* rows_out) {
  auto gh = graph_hidden(tape, cfg, p, x, n, opt);
  if (!gh) return gh.status();
  if (rows_out) *rows_out = n - gh->first_row;
  return head_loss(tape, p, gh->hidden, x + opt.pos0 + gh->first_row, opt.logit_chunks);
}

template ParamSet<float> params_from_weights<float>(const ModelConfig&, const WeightMap&);
template ParamSet<double> params_from_weights<double>(const ModelConfig&, const WeightMap&);
template Expected<GraphHidden<float>> graph_hidden<float>(Tape<float>&, const ModelConfig&,
                                                          const ParamSet<float>&, const uint8_t*,
                                                          int64_t, const GraphOptions&);
template Expected<GraphHidden<double>> graph_hidden<double>(Tape<double>&, const ModelConfig&,
                                                            const ParamSet<double>&, const uint8_t*,
                                                            int64_t, const GraphOptions&);
template Expected<Var<float>> graph_loss<float>(Tape<float>&, const ModelConfig&,
                                                const ParamSet<float>&, const uint8_t*, int64_t,
                                                const GraphOptions&, int64_t*);
template Expected<Var<double>> graph_loss<double>(Tape<double>&, const ModelConfig&,
                                                  const ParamSet<double>&, const uint8_t*, int64_t,
                                                  const GraphOptions&, int64_t*);

}  // namespace attnscope::train
