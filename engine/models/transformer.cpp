// Dense and Sparse Transformer families: a stack of pre-LN blocks whose attention is dense
// causal or the Sparse Transformer's block-sparse pattern for that layer. One forward (the
// graph, for training and inference) and the cached decode step.
#include "models/common.h"
#include "models/families.h"
#include "models/graph_model.h"

namespace attnscope {

namespace tape {

// h (n, D) through the blocks; the views number them 0 .. L-1.
template <typename G>
VarOf<G> transformer_hidden(G& t, const Ctx<G>& c, VarOf<G> h) {
  for (int l = 0; l < c.cfg.layers; ++l) {
    TrainAttnSpec spec = causal_spec(c, 0);
    if (c.cfg.family == Family::kSparse) {
      spec.kind = TrainAttnKind::kSparse;
      spec.sparse = c.cfg.sparse;
      spec.layer = l;
    }
    h = run_block(t, c, block_prefix(l), h, c.described(spec, l, positions_view(l)));
  }
  return h;
}

#define ATTNSCOPE_INSTANTIATE(G) \
  template VarOf<G> transformer_hidden<G>(G&, const Ctx<G>&, VarOf<G>);
ATTNSCOPE_FOR_EACH_EXECUTOR(ATTNSCOPE_INSTANTIATE)
#undef ATTNSCOPE_INSTANTIATE

}  // namespace tape

namespace {

class TransformerState : public DecodeState {
 public:
  std::vector<KvCache> caches;  // one per layer
  std::vector<float> x;         // (D) the residual stream of the current position
};

class TransformerModel : public GraphModel {
 public:
  TransformerModel(ModelConfig cfg, WeightMap w) : GraphModel(std::move(cfg), std::move(w)) {
    cp_ = common_params(w_, cfg_);
    for (int l = 0; l < cfg_.layers; ++l)
      blocks_.push_back(block_params(w_, "blocks." + std::to_string(l) + "."));
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
    ATTN_RETURN_IF_ERROR(check_decode_step(cfg_, i, prev_token));
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
  CommonParams cp_;
  std::vector<BlockParams> blocks_;
};

}  // namespace

std::unique_ptr<Model> make_transformer_model(ModelConfig cfg, WeightMap w) {
  return std::make_unique<TransformerModel>(std::move(cfg), std::move(w));
}

}  // namespace attnscope
