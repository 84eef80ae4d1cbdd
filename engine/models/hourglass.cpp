// Hourglass family: levels of pre-LN blocks at shrinking then growing resolution, with
// shift-and-pool shortening and upsampling plus residual; full forward and an incremental
// decode that runs each inner level once per group of k tokens, each level with its own caches.
#include <algorithm>
#include <cstring>

#include "models/common.h"
#include "models/families.h"
#include "ops/ops.h"

namespace attnscope {

void hourglass_param_specs(const ModelConfig& cfg, std::vector<ParamSpec>* out) {
  auto levels = hourglass_parse(cfg.hourglass.hierarchy);
  if (!levels) return;  // config_validate reports the bad hierarchy
  int block = 0;
  for (const HourglassLevel& lv : *levels)
    for (int l = 0; l < lv.layers; ++l)
      block_param_specs("blocks." + std::to_string(block++) + ".", cfg.dim, cfg.ff_dim, out);
  const int64_t D = cfg.dim;
  const size_t middle = levels->size() / 2;
  for (size_t s = 0; s < middle; ++s) {
    const int64_t k = (*levels)[s + 1].factor / (*levels)[s].factor;
    const std::string i = std::to_string(s);
    if (cfg.hourglass.pool == HourglassPool::kLinear) {
      out->push_back({"shorten." + i + ".weight", {k * D, D}, ParamInit::kNormal});
      out->push_back({"shorten." + i + ".bias", {D}, ParamInit::kZeros});
    }
    if (cfg.hourglass.upsample == HourglassUpsample::kLinear) {
      out->push_back({"upsample." + i + ".weight", {D, k * D}, ParamInit::kNormal});
      out->push_back({"upsample." + i + ".bias", {k * D}, ParamInit::kZeros});
    }
  }
}

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

class HourglassModel : public Model {
 public:
  HourglassModel(ModelConfig cfg, WeightMap w) : Model(std::move(cfg), std::move(w)) {
    cp_ = common_params(w_, cfg_);
    const auto levels = *hourglass_parse(cfg_.hourglass.hierarchy);
    middle_ = static_cast<int>(levels.size() / 2);
    int block = 0;
    for (const HourglassLevel& lv : levels) {
      first_block_.push_back(block);
      blocks_.emplace_back();
      for (int l = 0; l < lv.layers; ++l)
        blocks_.back().push_back(block_params(w_, "blocks." + std::to_string(block++) + "."));
    }
    int64_t len = cfg_.seq_len();
    for (int s = 0; s <= middle_; ++s) {
      lens_.push_back(len);
      factors_.push_back(levels[static_cast<size_t>(s)].factor);
      if (s == middle_) break;
      const int k =
          levels[static_cast<size_t>(s + 1)].factor / levels[static_cast<size_t>(s)].factor;
      ks_.push_back(k);
      len = (len + k - 1) / k;
      const std::string i = std::to_string(s);
      const bool lin_pool = cfg_.hourglass.pool == HourglassPool::kLinear;
      const bool lin_up = cfg_.hourglass.upsample == HourglassUpsample::kLinear;
      shorten_.push_back({lin_pool ? weight_ptr(w_, "shorten." + i + ".weight") : nullptr,
                          lin_pool ? weight_ptr(w_, "shorten." + i + ".bias") : nullptr});
      upsample_.push_back({lin_up ? weight_ptr(w_, "upsample." + i + ".weight") : nullptr,
                           lin_up ? weight_ptr(w_, "upsample." + i + ".bias") : nullptr});
    }
  }

  Status forward(const uint8_t* x, int64_t n, Tensor* logits, int64_t* first_row,
                 const CancelFlag* cancel) const override {
    if (n < 1 || n > cfg_.seq_len())
      return invalid_argument("sequence of " + std::to_string(n) + " tokens; the model takes 1.." +
                              std::to_string(cfg_.seq_len()));
    // h is the full-resolution residual stream (n, D).
    Tensor h = Tensor::zeros({n, cfg_.dim}, MemCategory::kActivations);
    embed_inputs(cp_, cfg_, x, 0, n, h.data());
    ATTN_RETURN_IF_ERROR(depth_forward(0, h.data(), n, cancel, nullptr));
    *logits = Tensor::zeros({n, kVocab}, MemCategory::kActivations);
    head_forward(cp_, cfg_, h.data(), n, logits->data());
    *first_row = 0;
    return Status::ok();
  }

  Status attention_layer(const uint8_t* x, int64_t n, int layer,
                         const AttnLayerFn& fn) const override {
    ATTN_RETURN_IF_ERROR(check_attention_layer(cfg_, n, layer, cfg_.layers));
    Tensor h = Tensor::zeros({n, cfg_.dim}, MemCategory::kActivations);
    embed_inputs(cp_, cfg_, x, 0, n, h.data());
    AttnTap tap{layer, &fn};
    return depth_forward(0, h.data(), n, nullptr, &tap);
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
    if (i >= cfg_.seq_len())
      return invalid_argument("decode past the model's length " + std::to_string(cfg_.seq_len()));
    if (i > 0 && (prev_token < 0 || prev_token >= kVocab))
      return invalid_argument("token out of range 0..255");
    embed_one(cp_, cfg_, i, prev_token, st.x.data());
    depth_decode(st, 0, st.x.data(), i);
    head_forward(cp_, cfg_, st.x.data(), 1, logits);
    ++st.pos;
    return Status::ok();
  }

 private:
  struct Linear {
    const float *w, *b;  // null for average pooling / repeat upsampling
  };

  int depth_of(int level) const { return std::min(level, 2 * middle_ - level); }

  // cat (rows, k*D) -> g (rows, D): the mean of the k vectors, or cat W + b (linear pooling).
  void pool(int s, const float* cat, int64_t rows, float* g) const {
    const int64_t D = cfg_.dim, k = ks_[static_cast<size_t>(s)];
    const Linear& lin = shorten_[static_cast<size_t>(s)];
    if (lin.w) {
      op_matmul(cat, lin.w, g, rows, k * D, D);
      op_add_bias(g, lin.b, rows, D);
      return;
    }
    std::fill(g, g + rows * D, 0.0f);
    for (int64_t t = 0; t < rows; ++t)
      for (int64_t r = 0; r < k; ++r)
        for (int64_t c = 0; c < D; ++c) g[t * D + c] += cat[(t * k + r) * D + c];
    const float inv = 1.0f / static_cast<float>(k);
    for (int64_t e = 0; e < rows * D; ++e) g[e] *= inv;
  }

  // g (rows, D) -> u (rows, k*D): row t copied k times, or g W + b (linear upsampling); the
  // r-th D-wide slice of row t belongs to position t*k + r of the longer sequence.
  void upsample(int s, const float* g, int64_t rows, float* u) const {
    const int64_t D = cfg_.dim, k = ks_[static_cast<size_t>(s)];
    const Linear& lin = upsample_[static_cast<size_t>(s)];
    if (lin.w) {
      op_matmul(g, lin.w, u, rows, D, k * D);
      op_add_bias(u, lin.b, rows, k * D);
      return;
    }
    for (int64_t t = 0; t < rows; ++t)
      for (int64_t r = 0; r < k; ++r) std::copy(g + t * D, g + (t + 1) * D, u + (t * k + r) * D);
  }

  // h (len, D) in place through the blocks of one level. A tap names a block by its index in
  // hierarchy order; the level's rows are described at its depth's resolution: row t serves
  // positions t*K .. t*K+K-1 on the way up and pools positions t*K-K+1 .. t*K (K its factor).
  Status level_forward(int level, float* h, int64_t len, const CancelFlag* cancel,
                       AttnTap* tap) const {
    const int H = cfg_.heads, d = cfg_.head_dim();
    AttnFullFn attn = [&](const float* q, const float* k, const float* v, float* o, int64_t n) {
      return attn_dense_forward_cpu(q, k, v, o, H, n, n, d, 0, &stats_);
    };
    const int depth = depth_of(level);
    const int64_t factor = factors_[static_cast<size_t>(depth)];
    AttnLayerView view;
    view.heads = H;
    view.d = d;
    view.stride = factor;
    view.key_offset = 1 - factor;
    view.key_space = depth == 0 ? "positions" : "level " + std::to_string(depth);
    const auto& blocks = blocks_[static_cast<size_t>(level)];
    for (size_t b = 0; b < blocks.size() && !(tap && tap->done); ++b) {
      if (cancel && cancel->load()) return cancelled("forward cancelled");
      const int index = first_block_[static_cast<size_t>(level)] + static_cast<int>(b);
      ATTN_RETURN_IF_ERROR(
          block_forward(blocks[b], cfg_, h, len, attn_tapped(attn, tap, index, view)));
    }
    return Status::ok();
  }

  // h (len, D) in place at depth s: down level s, then (when s < S) shorten, the inner depths,
  // upsample plus residual, and up level 2S - s. Returns as soon as a tap is done.
  Status depth_forward(int s, float* h, int64_t len, const CancelFlag* cancel, AttnTap* tap) const {
    ATTN_RETURN_IF_ERROR(level_forward(s, h, len, cancel, tap));
    if (s == middle_ || (tap && tap->done)) return Status::ok();
    const int64_t D = cfg_.dim, k = ks_[static_cast<size_t>(s)], short_len = (len + k - 1) / k;
    // cat (short_len, k*D) = h shifted right by k-1: row j = t*k + r of the (short_len*k, D)
    // view holds h[j - k + 1] (zeros before 0), so shortened t pools h[t*k-k+1 .. t*k], all
    // < len. g is (short_len, D); u is (short_len, k*D) = (short_len*k, D).
    Tensor cat = Tensor::zeros({short_len, k * D}, MemCategory::kActivations);
    Tensor g = Tensor::zeros({short_len, D}, MemCategory::kActivations);
    Tensor u = Tensor::zeros({short_len, k * D}, MemCategory::kActivations);
    std::copy(h, h + (short_len * k - (k - 1)) * D, cat.data() + (k - 1) * D);
    pool(s, cat.data(), short_len, g.data());
    ATTN_RETURN_IF_ERROR(depth_forward(s + 1, g.data(), short_len, cancel, tap));
    if (tap && tap->done) return Status::ok();
    upsample(s, g.data(), short_len, u.data());
    op_add(h, u.data(), len * D);  // truncated to len: the residual from before shortening
    return level_forward(2 * middle_ - s, h, len, cancel, tap);
  }

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
      // cat (k*D): positions i-k+1 .. i (zeros before 0); g (D).
      ActivationVector<float> cat(static_cast<size_t>(k * D), 0.0f), g(static_cast<size_t>(D));
      for (int64_t r = 0; r < k; ++r) {
        const int64_t src = i - k + 1 + r;
        if (src >= 0) std::copy(recent + (src % k) * D, recent + (src % k + 1) * D, &cat[r * D]);
      }
      pool(s, cat.data(), 1, g.data());
      depth_decode(st, s + 1, g.data(), i / k);
      upsample(s, g.data(), 1, up);
    }
    op_add(x, up + (i % k) * D, D);
    level_decode(st, 2 * middle_ - s, x, i);
  }

  CommonParams cp_;
  int middle_ = 0;                                // S
  std::vector<std::vector<BlockParams>> blocks_;  // [level 0 .. 2S][block]
  std::vector<int> first_block_;                  // [level]: its first block's global index
  std::vector<int64_t> factors_;                  // [depth 0 .. S]: total shortening factor
  std::vector<int64_t> lens_;                     // [depth 0 .. S]: sequence length at seq_len
  std::vector<int> ks_;                           // [depth s < S]: shortening factor to s + 1
  std::vector<Linear> shorten_, upsample_;        // [depth s < S]
};

}  // namespace

std::unique_ptr<Model> make_hourglass_model(ModelConfig cfg, WeightMap w) {
  return std::make_unique<HourglassModel>(std::move(cfg), std::move(w));
}

}  // namespace attnscope
