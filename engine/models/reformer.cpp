// The Reformer family: blocks of shared-QK LSH attention and a position-chunked FFN on a
// reversible (or plain pre-LN) residual; one forward (the graph: chunked LSH, the reversible
// backward for training) and trax's predict scheme (cached layer inputs and bucket ids, K/V
// recomputed on demand) for decoding.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "attention/lsh_rule.h"
#include "models/common.h"
#include "models/families.h"
#include "models/graph_model.h"
#include "ops/ops.h"

namespace attnscope {

namespace tape {

// Reversible: X1 = X2 = embedding; Y1 = X1 + Attn(LN1 X2) Wo, Y2 = X2 + FFN(LN2
// Y1); the hidden rows are (Y1 + Y2) / 2. Plain: pre-LN blocks. Rotations as
// ReformerModel draws them. An inference graph (no reversible backward, no recomputation)
// takes the plain two-stream loop, which stops at the inspected layer.
template <typename G>
VarOf<G> reformer_hidden(G& t, const Ctx<G>& c, const VarOf<G>& emb) {
  using V = VarOf<G>;
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
    specs.push_back(c.described(s, l, positions_view(l)));
    rots.push_back(rot);
  }
  const auto pre = block_prefix;

  if (!cfg.lsh.reversible) {
    V h = emb;
    for (int l = 0; l < cfg.layers; ++l)
      h = run_block(t, c, pre(l), h, specs[static_cast<size_t>(l)], rots[static_cast<size_t>(l)]);
    return h;
  }

  // F and G of block l as sub-graphs of one input.
  auto f_of = [&](int l) -> SubGraphOf<G> {
    return [ps = c.p, p = pre(l), heads, spec = specs[static_cast<size_t>(l)],
            rot = rots[static_cast<size_t>(l)]](G& tt, const std::vector<V>& in) {
      return attn_half(tt, *ps, p, in[0], heads, spec, rot);
    };
  };
  auto g_of = [&](int l) -> SubGraphOf<G> {
    return [ps = c.p, p = pre(l), chunks](G& tt, const std::vector<V>& in) {
      return ffn_block(tt, *ps, p, in[0], chunks);
    };
  };

  using S = typename G::Scalar;
  V y1, y2;
  if constexpr (G::kRecords) {  // the reversible backward is the training tape's
    if (c.opt.reversible) {
      std::vector<RevBlock<S>> blocks;
      for (int l = 0; l < cfg.layers; ++l) blocks.push_back({f_of(l), g_of(l)});
      std::tie(y1, y2) = reversible_stack(t, emb, emb, blocks);
      return scale(t, add(t, y1, y2), S(0.5));
    }
  }
  if (c.opt.recompute_blocks) {
    // The two streams stacked as one (2n, D) state, so that a block is one
    // checkpoint.
    V s = concat_rows(t, std::vector<V>{emb, emb});
    for (int l = 0; l < cfg.layers; ++l) {
      SubGraphOf<G> fn = [f = f_of(l), g = g_of(l), n](G& tt, const std::vector<V>& in) {
        V x1 = slice_rows(tt, in[0], 0, n);
        V x2 = slice_rows(tt, in[0], n, n);
        V a = add(tt, x1, f(tt, {x2}));
        V b = add(tt, x2, g(tt, {a}));
        return concat_rows(tt, std::vector<V>{a, b});
      };
      s = checkpoint(t, {s}, fn);
    }
    y1 = slice_rows(t, s, 0, n);
    y2 = slice_rows(t, s, n, n);
  } else {
    y1 = emb;
    y2 = emb;
    for (int l = 0; l < cfg.layers && !c.stopped(); ++l) {
      y1 = add(t, y1, f_of(l)(t, {y2}));
      y2 = add(t, y2, g_of(l)(t, {y1}));
    }
  }
  return scale(t, add(t, y1, y2), S(0.5));
}

#define ATTNSCOPE_INSTANTIATE(G) \
  template VarOf<G> reformer_hidden<G>(G&, const Ctx<G>&, const VarOf<G>&);
ATTNSCOPE_FOR_EACH_EXECUTOR(ATTNSCOPE_INSTANTIATE)
#undef ATTNSCOPE_INSTANTIATE

}  // namespace tape

namespace {

// One block's tensors; the FFN half reuses the shared BlockParams layout (wq..wo unused).
struct ReformerBlock {
  const float *ln1_g, *ln1_b, *wqk, *wv, *wo;
  BlockParams ff;
};

// Bucket ids of one layer, (H, n_hashes, cap), counted under caches like the tensors.
class BucketCache {
 public:
  explicit BucketCache(size_t count) : ids_(count, 0) {
    MemTracker::instance().on_alloc(MemCategory::kCaches, bytes());
  }
  BucketCache(const BucketCache&) = delete;
  BucketCache& operator=(const BucketCache&) = delete;
  ~BucketCache() { MemTracker::instance().on_free(MemCategory::kCaches, bytes()); }
  int* data() { return ids_.data(); }

 private:
  size_t bytes() const { return ids_.size() * sizeof(int); }
  std::vector<int> ids_;
};

class ReformerState : public DecodeState {
 public:
  // Per layer (H, cap, d): each position's key (normalised) and value, computed once when the
  // position steps in: they depend on that position's input only.
  std::vector<Tensor> keys, values;
  std::vector<std::unique_ptr<BucketCache>> buckets;  // per layer (H, n_hashes, cap)
  std::vector<float> x1, x2;                          // (D) the two residual streams
};

// y (d) = x / |x|, |x|^2 floored as in the LSH forward (attention/lsh_rule.h).
void normalise(float* y, int d) {
  double ss = 0.0;
  for (int c = 0; c < d; ++c) ss += static_cast<double>(y[c]) * y[c];
  const double inv = 1.0 / detail::lsh_key_norm(ss);
  for (int c = 0; c < d; ++c) y[c] = static_cast<float>(y[c] * inv);
}

class ReformerModel : public GraphModel {
 public:
  ReformerModel(ModelConfig cfg, WeightMap w) : GraphModel(std::move(cfg), std::move(w)) {
    cp_ = common_params(w_, cfg_);
    spec_ = {cfg_.lsh.n_hashes, cfg_.lsh.chunk, cfg_.lsh.n_buckets};
    for (int l = 0; l < cfg_.layers; ++l) {
      const std::string p = "blocks." + std::to_string(l) + ".";
      ReformerBlock b{};
      b.ln1_g = param(p + "ln1.weight");
      b.ln1_b = param(p + "ln1.bias");
      b.wqk = param(p + "attn.wqk");
      b.wv = param(p + "attn.wv");
      b.wo = param(p + "attn.wo");
      b.ff.ln2_g = param(p + "ln2.weight");
      b.ff.ln2_b = param(p + "ln2.bias");
      b.ff.w1 = param(p + "ff.w1");
      b.ff.b1 = param(p + "ff.b1");
      b.ff.w2 = param(p + "ff.w2");
      b.ff.b2 = param(p + "ff.b2");
      blocks_.push_back(b);
      rotations_.push_back(
          attn_lsh_rotations(cfg_.seed, l, spec_.n_hashes, cfg_.head_dim(), spec_.n_buckets));
    }
  }

  std::unique_ptr<DecodeState> decode_begin() const override {
    auto st = std::make_unique<ReformerState>();
    const int64_t cap = cfg_.seq_len();
    for (int l = 0; l < cfg_.layers; ++l) {
      st->keys.push_back(Tensor::zeros({cfg_.heads, cap, cfg_.head_dim()}, MemCategory::kCaches));
      st->values.push_back(Tensor::zeros({cfg_.heads, cap, cfg_.head_dim()}, MemCategory::kCaches));
      st->buckets.push_back(
          std::make_unique<BucketCache>(static_cast<size_t>(cfg_.heads) * spec_.n_hashes * cap));
    }
    st->x1.resize(static_cast<size_t>(cfg_.dim));
    st->x2.resize(static_cast<size_t>(cfg_.dim));
    return st;
  }

  // trax's predict mode: the new position's bucket ids are appended to the layer's cache
  // (rotations fixed per layer) and its query attends through attn_lsh_decode_cpu. trax
  // caches the LN'd inputs and recomputes the candidates' keys and values every step; they
  // are a fixed function of each position's input, so they are computed once, when the
  // position steps in, and read from the cache (the same numbers, ~8 MMAC less per layer and
  // token at N = 3072).
  Status decode_step(DecodeState& base, int prev_token, float* logits) const override {
    auto& st = static_cast<ReformerState&>(base);
    const int64_t i = st.pos;
    ATTN_RETURN_IF_ERROR(check_decode_step(cfg_, i, prev_token));
    const int D = cfg_.dim, H = cfg_.heads, d = cfg_.head_dim(), R = spec_.n_hashes;
    const int64_t cap = cfg_.seq_len();
    const bool rev = cfg_.lsh.reversible;
    float* x1 = st.x1.data();
    float* x2 = rev ? st.x2.data() : x1;
    embed_one(cp_, cfg_, i, prev_token, x1);
    if (rev) std::memcpy(x2, x1, sizeof(float) * D);
    // q, o, t are (D) = (H, d).
    ActivationVector<float> q(D), o(D), t(D);
    for (int l = 0; l < cfg_.layers; ++l) {
      const ReformerBlock& b = blocks_[static_cast<size_t>(l)];
      const float* rot = rotations_[static_cast<size_t>(l)].data();
      float* keys = st.keys[static_cast<size_t>(l)].data();
      float* values = st.values[static_cast<size_t>(l)].data();
      int* buckets = st.buckets[static_cast<size_t>(l)]->data();
      op_layernorm(x2, b.ln1_g, b.ln1_b, t.data(), 1, D);
      op_matmul(t.data(), b.wqk, q.data(), 1, D, D);
      for (int hh = 0; hh < H; ++hh) {
        for (int r = 0; r < R; ++r)
          buckets[(static_cast<int64_t>(hh) * R + r) * cap + i] =
              attn_lsh_hash(q.data() + hh * d, rot, r, d, spec_.n_buckets);
        // k (d) = normalise(h_i Wqk[:, head]); v (d) = h_i Wv[:, head].
        float* k = keys + (hh * cap + i) * d;
        float* vv = values + (hh * cap + i) * d;
        for (int e = 0; e < D; ++e) {
          const float* wk = b.wqk + static_cast<int64_t>(e) * D + hh * d;
          const float* wv = b.wv + static_cast<int64_t>(e) * D + hh * d;
          for (int c = 0; c < d; ++c) {
            k[c] += t[e] * wk[c];
            vv[c] += t[e] * wv[c];
          }
        }
        normalise(k, d);
      }
      const LshFetch fetch = [&](int head, int64_t j, float* k, float* vv) {
        std::memcpy(k, keys + (head * cap + j) * d, sizeof(float) * d);
        std::memcpy(vv, values + (head * cap + j) * d, sizeof(float) * d);
      };
      attn_lsh_decode_cpu(q.data(), o.data(), H, d, i, spec_, buckets, cap, fetch, &stats_);
      op_matmul(o.data(), b.wo, x1, 1, D, D, /*accumulate=*/true);
      ffn_chunked(b, x1, x2, 1);
    }
    if (rev)
      for (int e = 0; e < D; ++e) t[e] = 0.5f * (x1[e] + x2[e]);
    head_forward(cp_, cfg_, rev ? t.data() : x1, 1, logits);
    ++st.pos;
    return Status::ok();
  }

 private:
  // x2 (n, D) += FFN(LN2 x1) in cfg.lsh.ff_chunks chunks of positions (x2 == x1 for the
  // plain residual); only one chunk's (rows, F) hidden activations exist at a time.
  void ffn_chunked(const ReformerBlock& b, const float* x1, float* x2, int64_t n) const {
    const int D = cfg_.dim;
    const int64_t rows = (n + cfg_.lsh.ff_chunks - 1) / cfg_.lsh.ff_chunks;
    // h, f are (rows, D) for one chunk.
    Tensor h = Tensor::zeros({rows, D}, MemCategory::kActivations);
    Tensor f = Tensor::zeros({rows, D}, MemCategory::kActivations);
    for (int64_t r0 = 0; r0 < n; r0 += rows) {
      const int64_t c = std::min(rows, n - r0);
      op_layernorm(x1 + r0 * D, b.ff.ln2_g, b.ff.ln2_b, h.data(), c, D);
      ffn_forward(b.ff, h.data(), f.data(), c, D, cfg_.ff_dim);
      op_add(x2 + r0 * D, f.data(), c * D);
    }
  }

  CommonParams cp_;
  LshSpec spec_;
  std::vector<ReformerBlock> blocks_;
  std::vector<std::vector<float>> rotations_;  // per layer (n_hashes, d, n_buckets/2)
};

}  // namespace

std::unique_ptr<Model> make_reformer_model(ModelConfig cfg, WeightMap w) {
  return std::make_unique<ReformerModel>(std::move(cfg), std::move(w));
}

}  // namespace attnscope
