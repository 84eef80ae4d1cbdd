// Dense and Sparse Transformer families: a stack of pre-LN blocks whose attention is dense
// causal or the Sparse Transformer's block-sparse pattern for that layer.
#include <cstring>

#include "models/common.h"
#include "models/families.h"

namespace attnscope {

void transformer_param_specs(const ModelConfig& cfg, std::vector<ParamSpec>* out) {
  for (int l = 0; l < cfg.layers; ++l)
    block_param_specs("blocks." + std::to_string(l) + ".", cfg.dim, cfg.ff_dim, out);
}

namespace {

class TransformerState : public DecodeState {
 public:
  std::vector<KvCache> caches;  // one per layer
  std::vector<float> x;         // (D) the residual stream of the current position
};

class TransformerModel : public Model {
 public:
  TransformerModel(ModelConfig cfg, WeightMap w) : Model(std::move(cfg), std::move(w)) {
    cp_ = common_params(w_, cfg_);
    for (int l = 0; l < cfg_.layers; ++l)
      blocks_.push_back(block_params(w_, "blocks." + std::to_string(l) + "."));
  }

  Status forward(const uint8_t* x, int64_t n, Tensor* logits, int64_t* first_row,
                 const CancelFlag* cancel) const override {
    if (n < 1 || n > cfg_.seq_len())
      return invalid_argument("sequence of " + std::to_string(n) + " tokens; the model takes 1.." +
                              std::to_string(cfg_.seq_len()));
    // h is the residual stream (n, D).
    Tensor h = Tensor::zeros({n, cfg_.dim}, MemCategory::kActivations);
    embed_inputs(cp_, cfg_, x, 0, n, h.data());
    ATTN_RETURN_IF_ERROR(blocks_forward(h.data(), n, cancel, nullptr));
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
    return blocks_forward(h.data(), n, nullptr, &tap);
  }

  std::unique_ptr<DecodeState> decode_begin() const override {
    auto st = std::make_unique<TransformerState>();
    for (int l = 0; l < cfg_.layers; ++l)
      st->caches.push_back(kv_cache_make(cfg_.heads, cfg_.seq_len(), cfg_.head_dim()));
    st->x.resize(static_cast<size_t>(cfg_.dim));
    return st;
  }

  Status decode_step(DecodeState& base, int prev_token, float* logits) const override {
    auto& st = static_cast<TransformerState&>(base);
    const int64_t i = st.pos;
    if (i >= cfg_.seq_len())
      return invalid_argument("decode past the model's length " + std::to_string(cfg_.seq_len()));
    if (i > 0 && (prev_token < 0 || prev_token >= kVocab))
      return invalid_argument("token out of range 0..255");
    const int H = cfg_.heads, d = cfg_.head_dim();
    embed_one(cp_, cfg_, i, prev_token, st.x.data());
    for (int l = 0; l < cfg_.layers; ++l) {
      AttnDecodeFn attn = [&](const float* q, const KvCache& c, int64_t pos, float* o) {
        if (cfg_.family == Family::kSparse)
          attn_sparse_decode_cpu(q, c.k.data(), c.v.data(), o, H, c.cap, pos, d, cfg_.sparse, l,
                                 &stats_);
        else
          attn_dense_decode_cpu(q, c.k.data(), c.v.data(), o, H, c.cap, pos + 1, d, &stats_);
      };
      block_decode(blocks_[static_cast<size_t>(l)], cfg_, st.x.data(), i,
                   st.caches[static_cast<size_t>(l)], attn);
    }
    head_forward(cp_, cfg_, st.x.data(), 1, logits);
    ++st.pos;
    return Status::ok();
  }

 private:
  // h (n, D) in place through the blocks; with a tap, up to its layer only.
  Status blocks_forward(float* h, int64_t n, const CancelFlag* cancel, AttnTap* tap) const {
    const int H = cfg_.heads, d = cfg_.head_dim();
    AttnLayerView view;
    view.heads = H;
    view.d = d;
    view.key_space = "positions";
    for (int l = 0; l < cfg_.layers && !(tap && tap->done); ++l) {
      if (cancel && cancel->load()) return cancelled("forward cancelled");
      AttnFullFn attn = [&](const float* q, const float* k, const float* v, float* o, int64_t len) {
        if (cfg_.family == Family::kSparse)
          return attn_sparse_forward_cpu(q, k, v, o, H, len, d, cfg_.sparse, l, &stats_);
        return attn_dense_forward_cpu(q, k, v, o, H, len, len, d, 0, &stats_);
      };
      view.kind_layer = l;
      ATTN_RETURN_IF_ERROR(block_forward(blocks_[static_cast<size_t>(l)], cfg_, h, n,
                                         attn_tapped(attn, tap, l, view)));
    }
    return Status::ok();
  }

  CommonParams cp_;
  std::vector<BlockParams> blocks_;
};

}  // namespace

std::unique_ptr<Model> make_transformer_model(ModelConfig cfg, WeightMap w) {
  return std::make_unique<TransformerModel>(std::move(cfg), std::move(w));
}

}  // namespace attnscope
