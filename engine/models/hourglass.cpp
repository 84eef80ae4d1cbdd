// Hourglass family: levels of pre-LN blocks at shrinking then growing resolution, with
// shift-and-pool shortening and upsampling plus residual; one forward (the graph) and an
// incremental decode that runs each inner level once per group of k tokens, each level with its own
// caches.
#include <algorithm>
#include <cstring>

#include "models/common.h"
#include "models/families.h"
#include "models/graph_model.h"
#include "ops/ops.h"

namespace attnscope {

namespace tape {
namespace {

// Levels 0 .. 2S; down level s and up level 2S - s run at depth s; depth s -> s + 1 shortens
// by ks[s]. Blocks are numbered in hierarchy order (the views' layer numbers).
struct HourglassPlan {
  int middle = 0;
  std::vector<std::vector<int>> level_blocks;  // [level]: block indices
  std::vector<int64_t> ks;                     // [depth s < S]
  std::vector<int64_t> factors;                // [depth 0 .. S]: total shortening factor
};

HourglassPlan hourglass_plan(const std::vector<HourglassLevel>& levels) {
  HourglassPlan plan;
  plan.middle = static_cast<int>(levels.size() / 2);
  int block = 0;
  for (const HourglassLevel& lv : levels) {
    plan.level_blocks.emplace_back();
    for (int l = 0; l < lv.layers; ++l) plan.level_blocks.back().push_back(block++);
  }
  for (int s = 0; s <= plan.middle; ++s) {
    plan.factors.push_back(levels[static_cast<size_t>(s)].factor);
    if (s < plan.middle)
      plan.ks.push_back(levels[static_cast<size_t>(s + 1)].factor /
                        levels[static_cast<size_t>(s)].factor);
  }
  return plan;
}

// The blocks of one level. The views see its rows at its depth's resolution: row t serves
// positions t*K .. t*K+K-1 on the way up and pools positions t*K-K+1 .. t*K (K its factor).
template <typename G>
VarOf<G> hourglass_level(G& t, const Ctx<G>& c, const HourglassPlan& plan, int level, VarOf<G> h) {
  const int depth = std::min(level, 2 * plan.middle - level);
  AttnLayerView view;
  view.stride = plan.factors[static_cast<size_t>(depth)];
  view.key_offset = 1 - view.stride;
  view.key_space = depth == 0 ? "positions" : "level " + std::to_string(depth);
  for (int b : plan.level_blocks[static_cast<size_t>(level)])
    h = run_block(t, c, block_prefix(b), h, c.described(causal_spec(c, 0), b, view));
  return h;
}

// h (len, D) at depth s: down level, shift right by k-1 with zeros and pool groups of k
// (short_len = ceil(len / k) rows, the last group padded by the shift only), the inner depths,
// upsample, truncate to len and add to the unshifted h, up level.
template <typename G>
VarOf<G> hourglass_depth(G& t, const Ctx<G>& c, const HourglassPlan& plan, int s, VarOf<G> h) {
  h = hourglass_level(t, c, plan, s, h);
  if (s == plan.middle || c.stopped()) return h;
  const int64_t len = h->rows, k = plan.ks[static_cast<size_t>(s)];
  const int64_t short_len = (len + k - 1) / k;
  // cat is (short_len * k, D): row j = h[j - k + 1]; g is (short_len, D).
  VarOf<G> g = hourglass_shorten(t, c, s, shift_rows(t, h, k - 1, short_len * k), k);
  g = hourglass_depth(t, c, plan, s + 1, g);
  if (c.stopped()) return h;
  // u is (short_len * k, D): row t*k + r serves position t*k + r.
  VarOf<G> u = hourglass_upsample(t, c, s, g, k);
  if (short_len * k != len) u = slice_rows(t, u, 0, len);
  h = add(t, h, u);
  return hourglass_level(t, c, plan, 2 * plan.middle - s, h);
}

}  // namespace

template <typename G>
VarOf<G> hourglass_shorten(G& t, const Ctx<G>& c, int s, const VarOf<G>& cat, int64_t k) {
  const int64_t D = cat->cols, rows = cat->rows / k;
  if (c.cfg.hourglass.pool != HourglassPool::kLinear) return mean_groups(t, cat, k);
  const std::string i = std::to_string(s);
  return linear(t, reshape(t, cat, rows, k * D), param(*c.p, "shorten." + i + ".weight"),
                param(*c.p, "shorten." + i + ".bias"));
}

template <typename G>
VarOf<G> hourglass_upsample(G& t, const Ctx<G>& c, int s, const VarOf<G>& g, int64_t k) {
  if (c.cfg.hourglass.upsample != HourglassUpsample::kLinear) return repeat_rows(t, g, k);
  const std::string i = std::to_string(s);
  return reshape(t,
                 linear(t, g, param(*c.p, "upsample." + i + ".weight"),
                        param(*c.p, "upsample." + i + ".bias")),
                 g->rows * k, g->cols);
}

template <typename G>
VarOf<G> hourglass_hidden(G& t, const Ctx<G>& c, const VarOf<G>& emb) {
  // config_resolve validated the hierarchy before any graph is built.
  return hourglass_depth(t, c, hourglass_plan(*hourglass_parse(c.cfg.hourglass.hierarchy)), 0, emb);
}

#define ATTNSCOPE_INSTANTIATE(G)                                                             \
  template VarOf<G> hourglass_shorten<G>(G&, const Ctx<G>&, int, const VarOf<G>&, int64_t);  \
  template VarOf<G> hourglass_upsample<G>(G&, const Ctx<G>&, int, const VarOf<G>&, int64_t); \
  template VarOf<G> hourglass_hidden<G>(G&, const Ctx<G>&, const VarOf<G>&);
ATTNSCOPE_FOR_EACH_EXECUTOR(ATTNSCOPE_INSTANTIATE)
#undef ATTNSCOPE_INSTANTIATE

}  // namespace tape

namespace {

// Levels are indexed 0 .. 2S (S = the middle); down level s and up level 2S - s share the
// resolution of depth s; between depth s and s + 1 the sequence shortens by k[s].
class HourglassState : public DecodeState {
 public:
  std::vector<std::vector<KvCache>> caches;  // [level][block]: (H, len of its depth, d)
  std::vector<Tensor> recent;  // [depth s < S]: (k, D) activations before shortening, row i mod k
  std::vector<Tensor> up;      // [depth s < S]: (k, D) upsampled rows of the last shortened token
  std::vector<float> x;        // (D) the residual stream of the current full-resolution position
};

class HourglassModel : public GraphModel {
 public:
  HourglassModel(ModelConfig cfg, WeightMap w)
      : GraphModel(std::move(cfg), std::move(w)), ctx_(infer_ctx(nullptr)) {
    cp_ = common_params(w_, cfg_);
    const auto levels = *hourglass_parse(cfg_.hourglass.hierarchy);
    middle_ = static_cast<int>(levels.size() / 2);
    int block = 0;
    for (const HourglassLevel& lv : levels) {
      blocks_.emplace_back();
      for (int l = 0; l < lv.layers; ++l)
        blocks_.back().push_back(block_params(w_, "blocks." + std::to_string(block++) + "."));
    }
    int64_t len = cfg_.seq_len();
    for (int s = 0; s <= middle_; ++s) {
      lens_.push_back(len);
      if (s == middle_) break;
      const int k =
          levels[static_cast<size_t>(s + 1)].factor / levels[static_cast<size_t>(s)].factor;
      ks_.push_back(k);
      len = (len + k - 1) / k;
    }
  }

  std::unique_ptr<DecodeState> decode_begin() const override {
    auto st = std::make_unique<HourglassState>();
    for (int lv = 0; lv <= 2 * middle_; ++lv) {
      st->caches.emplace_back();
      const int64_t cap = lens_[static_cast<size_t>(depth_of(lv))];
      for (size_t b = 0; b < blocks_[static_cast<size_t>(lv)].size(); ++b)
        st->caches.back().push_back(kv_cache_make(cfg_.heads, cap, cfg_.head_dim()));
    }
    for (int k : ks_) {
      st->recent.push_back(Tensor::zeros({k, cfg_.dim}, MemCategory::kCaches));
      st->up.push_back(Tensor::zeros({k, cfg_.dim}, MemCategory::kCaches));
    }
    st->x.resize(static_cast<size_t>(cfg_.dim));
    return st;
  }

  Status decode_step(DecodeState& base, int prev_token, float* logits) const override {
    auto& st = static_cast<HourglassState&>(base);
    const int64_t i = st.pos;
    ATTN_RETURN_IF_ERROR(check_decode_step(cfg_, i, prev_token));
    embed_one(cp_, cfg_, i, prev_token, st.x.data());
    depth_decode(st, 0, st.x.data(), i);
    head_forward(cp_, cfg_, st.x.data(), 1, logits);
    ++st.pos;
    return Status::ok();
  }

 private:
  int depth_of(int level) const { return std::min(level, 2 * middle_ - level); }

  void level_decode(HourglassState& st, int level, float* x, int64_t i) const {
    const int H = cfg_.heads, d = cfg_.head_dim();
    AttnDecodeFn attn = [&](const float* q, const KvCache& c, int64_t pos, float* o) {
      attn_dense_decode_cpu(q, c.k.data(), c.v.data(), o, H, c.cap, pos + 1, d, &stats_);
    };
    const auto& blocks = blocks_[static_cast<size_t>(level)];
    for (size_t b = 0; b < blocks.size(); ++b)
      block_decode(blocks[b], cfg_, x, i, st.caches[static_cast<size_t>(level)][b], attn);
  }

  // x (D) in place: position i of depth s. Shortened position t = i/k pools positions
  // i-k+1 .. i, so it becomes computable exactly when i mod k = 0; the inner depths then run
  // for that one token and its k upsampled rows serve positions t*k .. t*k+k-1 on the way up.
  void depth_decode(HourglassState& st, int s, float* x, int64_t i) const {
    level_decode(st, s, x, i);
    if (s == middle_) return;
    const int64_t D = cfg_.dim, k = ks_[static_cast<size_t>(s)];
    float* recent = st.recent[static_cast<size_t>(s)].data();
    float* up = st.up[static_cast<size_t>(s)].data();
    std::copy(x, x + D, recent + (i % k) * D);
    if (i % k == 0) {
      // cat (k, D): positions i-k+1 .. i (zeros before 0); g (1, D); u (k, D). Shortening and
      // upsampling are the forward's own ops on a quiet tape.
      tape::Tape<float> tape(false);
      tape::Var<float> cat = tape::make_var<float>(k, D, false);
      for (int64_t r = 0; r < k; ++r) {
        const int64_t src = i - k + 1 + r;
        if (src >= 0)
          std::copy(recent + (src % k) * D, recent + (src % k + 1) * D, cat->data.data() + r * D);
      }
      tape::Var<float> g = tape::hourglass_shorten(tape, ctx_, s, cat, k);
      depth_decode(st, s + 1, g->data.data(), i / k);
      tape::Var<float> u = tape::hourglass_upsample(tape, ctx_, s, g, k);
      std::copy(u->data.begin(), u->data.end(), up);
    }
    op_add(x, up + (i % k) * D, D);
    level_decode(st, 2 * middle_ - s, x, i);
  }

  CommonParams cp_;
  int middle_ = 0;                                // S
  std::vector<std::vector<BlockParams>> blocks_;  // [level 0 .. 2S][block]
  std::vector<int64_t> lens_;                     // [depth 0 .. S]: sequence length at seq_len
  std::vector<int> ks_;                           // [depth s < S]: shortening factor to s + 1
  tape::CpuCtx ctx_;                              // for shortening and upsampling in decode
};

}  // namespace

std::unique_ptr<Model> make_hourglass_model(ModelConfig cfg, WeightMap w) {
  return std::make_unique<HourglassModel>(std::move(cfg), std::move(w));
}

}  // namespace attnscope
