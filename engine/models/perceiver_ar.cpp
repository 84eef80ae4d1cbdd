// Perceiver AR family: a causal cross-attention from the last M positions (the latents) to
// the whole context, then a causal self-attention stack over the latents only; one forward (the
// graph, with cross dropout for training) and the cached decode whose sliding-window semantics are
// written down at PerceiverModel::decode_step.
#include <algorithm>
#include <cstring>

#include "core/rng.h"
#include "models/common.h"
#include "models/families.h"
#include "models/graph_model.h"
#include "ops/ops.h"

namespace attnscope {

namespace tape {
namespace {

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
template <typename G>
VarOf<G> cross_layer(G& t, const ParamsOf<G>& p, const VarOf<G>& emb, int64_t first,
                     const Runs& runs, int heads, bool store, int chunks, AttnInfer* infer) {
  using V = VarOf<G>;
  const int64_t n = emb->rows, rows = n - first;
  V latent = first == 0 ? emb : slice_rows(t, emb, first, rows);
  // src is (kept + rows, D): the inputs the latents may read.
  V src = emb;
  int64_t kept = first;
  if (!(runs.size() == 1 && runs[0].first == 0 && runs[0].second == first)) {
    std::vector<V> parts;
    kept = 0;
    for (const auto& [b, e] : runs) {
      parts.push_back(slice_rows(t, emb, b, e - b));
      kept += e - b;
    }
    parts.push_back(latent);
    src = concat_rows(t, parts);
  }
  V hk = layernorm(t, src, param(p, "cross.ln_kv.weight"), param(p, "cross.ln_kv.bias"));
  V k = linear(t, hk, param(p, "cross.attn.wk"), V());
  V v = linear(t, hk, param(p, "cross.attn.wv"), V());
  V hq = layernorm(t, latent, param(p, "cross.ln_q.weight"), param(p, "cross.ln_q.bias"));
  V q = linear(t, hq, param(p, "cross.attn.wq"), V());
  TrainAttnSpec spec;
  spec.kind = TrainAttnKind::kCausal;
  spec.q_offset = kept;
  spec.store_probs = store;
  // The views' layer 0: latent row r (position first + r) reads inputs j <= first + r.
  spec.infer = infer;
  spec.view_layer = 0;
  spec.view.causal_offset = spec.view.query_offset = first;
  spec.view.key_space = "inputs";
  V o = attention(t, q, k, v, heads, spec);
  if (infer && infer->finished()) return latent;
  V z = add(t, latent, linear(t, o, param(p, "cross.attn.wo"), V()));
  return add(t, z, ffn_block(t, p, "cross.", z, chunks));
}

}  // namespace

int64_t perceiver_train_length(const ModelConfig& cfg, int64_t n, uint64_t draw) {
  const int64_t m = cfg.perceiver.latents;
  if (n <= m) return n;
  const int64_t windows = (n + m - 1) / m;
  return std::min(n, m * (1 + static_cast<int64_t>(draw % static_cast<uint64_t>(windows))));
}

template <typename G>
VarOf<G> perceiver_latents(G& t, const Ctx<G>& c, VarOf<G> z, int64_t first) {
  for (int l = 0; l < c.cfg.layers; ++l) {
    // The views' layer l + 1: latent rows at positions first .. attend to each other.
    AttnLayerView view;
    view.query_offset = view.key_offset = first;
    view.key_space = "latents";
    view.kind_layer = l;
    z = run_block(t, c, block_prefix(l), z, c.described(causal_spec(c, 0), l + 1, view));
  }
  return z;
}

template <typename G>
VarOf<G> perceiver_hidden(G& t, const Ctx<G>& c, const VarOf<G>& emb, int64_t first) {
  using V = VarOf<G>;
  const double rate =
      c.opt.cross_dropout >= 0 ? c.opt.cross_dropout : c.cfg.perceiver.cross_dropout;
  const Runs runs = kept_context(first, rate, c.opt.dropout_seed);
  const int heads = c.cfg.heads, chunks = c.opt.ff_chunks;
  const bool store = c.opt.store_attention;
  AttnInfer* infer = c.opt.infer;
  V z;
  if (c.opt.recompute_blocks) {
    SubGraphOf<G> fn = [ps = c.p, first, runs, heads, store, chunks](G& tt,
                                                                     const std::vector<V>& in) {
      return cross_layer(tt, *ps, in[0], first, runs, heads, store, chunks, nullptr);
    };
    z = checkpoint(t, {emb}, fn);
  } else {
    z = cross_layer(t, *c.p, emb, first, runs, heads, store, chunks, infer);
  }
  return perceiver_latents(t, c, z, first);
}

#define ATTNSCOPE_INSTANTIATE(G)                                                      \
  template VarOf<G> perceiver_hidden<G>(G&, const Ctx<G>&, const VarOf<G>&, int64_t); \
  template VarOf<G> perceiver_latents<G>(G&, const Ctx<G>&, VarOf<G>, int64_t);
ATTNSCOPE_FOR_EACH_EXECUTOR(ATTNSCOPE_INSTANTIATE)
#undef ATTNSCOPE_INSTANTIATE

}  // namespace tape

namespace {

class PerceiverState : public DecodeState {
 public:
  KvCache cross;                // (H, N, d): K/V of LN_kv(embedding) of every input so far
  Tensor z;                     // (M, D): cross-attention outputs, row = position mod M
  std::vector<KvCache> caches;  // (H, M, d) per latent layer: row r = position first + r
  int64_t first = 0;            // the position of the latent caches' row 0
  std::vector<float> x;         // (D) the residual stream of the current position
};

class PerceiverModel : public GraphModel {
 public:
  PerceiverModel(ModelConfig cfg, WeightMap w) : GraphModel(std::move(cfg), std::move(w)) {
    cp_ = common_params(w_, cfg_);
    cross_ = {weight_ptr(w_, "cross.ln_q.weight"), weight_ptr(w_, "cross.ln_q.bias"),
              weight_ptr(w_, "cross.attn.wq"),     weight_ptr(w_, "cross.attn.wk"),
              weight_ptr(w_, "cross.attn.wv"),     weight_ptr(w_, "cross.attn.wo"),
              weight_ptr(w_, "cross.ln2.weight"),  weight_ptr(w_, "cross.ln2.bias"),
              weight_ptr(w_, "cross.ff.w1"),       weight_ptr(w_, "cross.ff.b1"),
              weight_ptr(w_, "cross.ff.w2"),       weight_ptr(w_, "cross.ff.b2")};
    ln_kv_g_ = weight_ptr(w_, "cross.ln_kv.weight");
    ln_kv_b_ = weight_ptr(w_, "cross.ln_kv.bias");
    for (int l = 0; l < cfg_.layers; ++l)
      blocks_.push_back(block_params(w_, "blocks." + std::to_string(l) + "."));
  }

  std::unique_ptr<DecodeState> decode_begin() const override {
    const int64_t M = cfg_.perceiver.latents;
    auto st = std::make_unique<PerceiverState>();
    st->cross = kv_cache_make(cfg_.heads, cfg_.seq_len(), cfg_.head_dim());
    st->z = Tensor::zeros({M, cfg_.dim}, MemCategory::kCaches);
    for (int l = 0; l < cfg_.layers; ++l)
      st->caches.push_back(kv_cache_make(cfg_.heads, M, cfg_.head_dim()));
    st->x.resize(static_cast<size_t>(cfg_.dim));
    return st;
  }

  // The window of latents that position p sees ends at p. While p < M it is [0, p] and only
  // grows: one new latent runs through the latent stack against its per-layer KV caches. The
  // inputs' K/V and each position's cross-attention output z_p depend only on x[< p], so both
  // are cached once and never recomputed. From p = M on, the schemes differ (config.h):
  // - exact: the window [p-M+1, p] slides by one each step, which changes every latent's
  //   context, so the latent stack is recomputed over the M cached z's (perceiver_latents over
  //   M rows); the logits equal the last row of forward(x[0..p]).
  // - cached: when the caches hold M rows, they are rebuilt from the cached z's of the last
  //   M/2 positions ending at p (first = p - M/2 + 1), then p's latent steps in; the next M/2
  //   positions append a row each. So p sees the window [first, p], of M/2 to M latents, and
  //   its logits equal the last row of a forward over x[0..p] with p - first + 1 latents.
  Status decode_step(DecodeState& base, int prev_token, float* logits) const override {
    auto& st = static_cast<PerceiverState&>(base);
    const int64_t p = st.pos, M = cfg_.perceiver.latents, D = cfg_.dim;
    ATTN_RETURN_IF_ERROR(check_decode_step(cfg_, p, prev_token));
    float* zp = st.z.data() + (p % M) * D;
    cross_decode(st, p, prev_token, zp);
    if (cfg_.perceiver.decode == PerceiverDecode::kExact && p >= M) {
      // win is (M, D): the cached z's of positions p-M+1 .. p in order.
      tape::Var<float> win = tape::make_var<float>(M, D, false);
      for (int64_t r = 0; r < M; ++r) {
        const float* src = st.z.data() + ((p - M + 1 + r) % M) * D;
        std::copy(src, src + D, win->data.data() + r * D);
      }
      ATTN_RETURN_IF_ERROR(latents_window(win, p - M + 1));
      head_forward(cp_, cfg_, win->data.data() + (M - 1) * D, 1, logits);
    } else {
      if (p - st.first == M) {
        st.first = p - std::max<int64_t>(1, M / 2) + 1;
        for (int64_t q = st.first; q < p; ++q) latent_step(st, q);
      }
      latent_step(st, p);
      head_forward(cp_, cfg_, st.x.data(), 1, logits);
    }
    ++st.pos;
    return Status::ok();
  }

 private:
  // st.x (D) = position q's latent after the latent stack; appends q's K/V to every layer's
  // cache at row q - st.first (the rows before it hold positions st.first .. q - 1).
  void latent_step(PerceiverState& st, int64_t q) const {
    const int64_t M = cfg_.perceiver.latents, D = cfg_.dim;
    const int H = cfg_.heads, d = cfg_.head_dim();
    const float* zq = st.z.data() + (q % M) * D;
    std::copy(zq, zq + D, st.x.data());
    for (int l = 0; l < cfg_.layers; ++l) {
      AttnDecodeFn attn = [&](const float* qv, const KvCache& c, int64_t i, float* o) {
        attn_dense_decode_cpu(qv, c.k.data(), c.v.data(), o, H, c.cap, i + 1, d, &stats_);
      };
      block_decode(blocks_[static_cast<size_t>(l)], cfg_, st.x.data(), q - st.first,
                   st.caches[static_cast<size_t>(l)], attn);
    }
  }

  // win (M, D) in place through the latent stack (the family's one definition), the latents at
  // positions first .. first + M - 1.
  Status latents_window(tape::Var<float>& win, int64_t first) const {
    tape::Tape<float> tape(false);
    tape::AttnInfer infer;
    infer.stats = &stats_;
    win = tape::perceiver_latents(tape, infer_ctx(&infer), win, first);
    return infer.status;
  }

  // z (rows, D) in place: z += FFN(LN2 z), the cross layer's feed-forward half.
  void cross_ffn(float* z, int64_t rows) const {
    const int D = cfg_.dim;
    // h, f are (rows, D).
    Tensor h = Tensor::zeros({rows, D}, MemCategory::kActivations);
    Tensor f = Tensor::zeros({rows, D}, MemCategory::kActivations);
    op_layernorm(z, cross_.ln2_g, cross_.ln2_b, h.data(), rows, D);
    ffn_forward(cross_, h.data(), f.data(), rows, D, cfg_.ff_dim);
    op_add(z, f.data(), rows * D);
  }

  // The cross layer for position p alone: appends p's K/V to st.cross and writes z_p (D).
  void cross_decode(PerceiverState& st, int64_t p, int prev_token, float* zp) const {
    const int D = cfg_.dim, H = cfg_.heads, d = cfg_.head_dim();
    KvCache& c = st.cross;
    // e, h, q, t, o are (D) = (H, d) per head.
    ActivationVector<float> e(D), h(D), q(D), t(D), o(D);
    embed_one(cp_, cfg_, p, prev_token, e.data());
    op_layernorm(e.data(), ln_kv_g_, ln_kv_b_, h.data(), 1, D);
    op_matmul(h.data(), cross_.wk, t.data(), 1, D, D);
    for (int hh = 0; hh < H; ++hh)
      std::memcpy(c.k.data() + (hh * c.cap + p) * d, t.data() + hh * d, sizeof(float) * d);
    op_matmul(h.data(), cross_.wv, t.data(), 1, D, D);
    for (int hh = 0; hh < H; ++hh)
      std::memcpy(c.v.data() + (hh * c.cap + p) * d, t.data() + hh * d, sizeof(float) * d);
    c.len = p + 1;
    op_layernorm(e.data(), cross_.ln1_g, cross_.ln1_b, h.data(), 1, D);
    op_matmul(h.data(), cross_.wq, q.data(), 1, D, D);
    attn_dense_decode_cpu(q.data(), c.k.data(), c.v.data(), o.data(), H, c.cap, p + 1, d, &stats_);
    std::copy(e.begin(), e.end(), zp);
    op_matmul(o.data(), cross_.wo, zp, 1, D, D, /*accumulate=*/true);
    cross_ffn(zp, 1);
  }

  CommonParams cp_;
  BlockParams cross_;  // ln1 holds ln_q
  const float* ln_kv_g_ = nullptr;
  const float* ln_kv_b_ = nullptr;
  std::vector<BlockParams> blocks_;
};

}  // namespace

std::unique_ptr<Model> make_perceiver_model(ModelConfig cfg, WeightMap w) {
  return std::make_unique<PerceiverModel>(std::move(cfg), std::move(w));
}

}  // namespace attnscope
