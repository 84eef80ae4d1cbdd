// Perceiver AR family: a causal cross-attention from the last M positions (the latents) to
// the whole context, then a causal self-attention stack over the latents only; forward and the
// cached decode whose sliding-window semantics are written down at PerceiverModel::decode_step.
#include <algorithm>
#include <cstring>

#include "models/common.h"
#include "models/families.h"
#include "ops/ops.h"

namespace attnscope {

void perceiver_param_specs(const ModelConfig& cfg, std::vector<ParamSpec>* out) {
  // The cross-attention layer is a pre-LN block whose first layer norm is split in two:
  // ln_q for the latent queries and ln_kv for the inputs; every other tensor as in a block.
  std::vector<ParamSpec> cross;
  block_param_specs("cross.", cfg.dim, cfg.ff_dim, &cross);
  for (const ParamSpec& s : cross) {
    if (s.name.rfind("cross.ln1.", 0) == 0) {
      const std::string leaf = s.name.substr(std::strlen("cross.ln1."));
      out->push_back({"cross.ln_q." + leaf, s.shape, s.init});
      out->push_back({"cross.ln_kv." + leaf, s.shape, s.init});
    } else {
      out->push_back(s);
    }
  }
  for (int l = 0; l < cfg.layers; ++l)
    block_param_specs("blocks." + std::to_string(l) + ".", cfg.dim, cfg.ff_dim, out);
}

namespace {

class PerceiverState : public DecodeState {
 public:
  KvCache cross;                // (H, N, d): K/V of LN_kv(embedding) of every input so far
  Tensor z;                     // (M, D): cross-attention outputs, row = position mod M
  std::vector<KvCache> caches;  // (H, M, d) per latent layer; valid while pos < M
  std::vector<float> x;         // (D) the residual stream of the current position
};

class PerceiverModel : public Model {
 public:
  PerceiverModel(ModelConfig cfg, WeightMap w) : Model(std::move(cfg), std::move(w)) {
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

  Status forward(const uint8_t* x, int64_t n, Tensor* logits, int64_t* first_row,
                 const CancelFlag* cancel) const override {
    if (n < 1 || n > cfg_.seq_len())
      return invalid_argument("sequence of " + std::to_string(n) + " tokens; the model takes 1.." +
                              std::to_string(cfg_.seq_len()));
    const int64_t rows = std::min<int64_t>(cfg_.perceiver.latents, n), first = n - rows;
    // emb is (n, D): every input; z is (rows, D): the latents at positions first .. n-1.
    Tensor emb = Tensor::zeros({n, cfg_.dim}, MemCategory::kActivations);
    Tensor z = Tensor::zeros({rows, cfg_.dim}, MemCategory::kActivations);
    embed_inputs(cp_, cfg_, x, 0, n, emb.data());
    ATTN_RETURN_IF_ERROR(cross_forward(emb.data(), n, first, z.data(), nullptr));
    ATTN_RETURN_IF_ERROR(latents_forward(z.data(), rows, cancel, first, nullptr));
    *logits = Tensor::zeros({rows, kVocab}, MemCategory::kActivations);
    head_forward(cp_, cfg_, z.data(), rows, logits->data());
    *first_row = first;
    return Status::ok();
  }

  Status attention_layer(const uint8_t* x, int64_t n, int layer,
                         const AttnLayerFn& fn) const override {
    ATTN_RETURN_IF_ERROR(check_attention_layer(cfg_, n, layer, cfg_.layers + 1));
    const int64_t rows = std::min<int64_t>(cfg_.perceiver.latents, n), first = n - rows;
    Tensor emb = Tensor::zeros({n, cfg_.dim}, MemCategory::kActivations);
    Tensor z = Tensor::zeros({rows, cfg_.dim}, MemCategory::kActivations);
    embed_inputs(cp_, cfg_, x, 0, n, emb.data());
    AttnTap tap{layer, &fn};
    ATTN_RETURN_IF_ERROR(cross_forward(emb.data(), n, first, z.data(), &tap));
    if (tap.done) return Status::ok();
    return latents_forward(z.data(), rows, nullptr, first, &tap);
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

  // Exact semantics: the logits written at position p equal the last row of
  // forward(x[0..p]), i.e. the latent window is the last min(M, p+1) positions ending at p.
  // The inputs' K/V and each position's cross-attention output z_p depend only on x[< p], so
  // both are cached once and never recomputed. While p < M the window only grows: one new
  // latent runs through the latent stack against its per-layer KV caches. From p = M on the
  // window [p-M+1, p] slides by one each step, which changes every latent's context, so the
  // latent stack is recomputed over the M cached z's (block_forward over M rows).
  Status decode_step(DecodeState& base, int prev_token, float* logits) const override {
    auto& st = static_cast<PerceiverState&>(base);
    const int64_t p = st.pos, M = cfg_.perceiver.latents, D = cfg_.dim;
    if (p >= cfg_.seq_len())
      return invalid_argument("decode past the model's length " + std::to_string(cfg_.seq_len()));
    if (p > 0 && (prev_token < 0 || prev_token >= kVocab))
      return invalid_argument("token out of range 0..255");
    float* zp = st.z.data() + (p % M) * D;
    cross_decode(st, p, prev_token, zp);
    if (p < M) {
      const int H = cfg_.heads, d = cfg_.head_dim();
      std::copy(zp, zp + D, st.x.data());
      for (int l = 0; l < cfg_.layers; ++l) {
        AttnDecodeFn attn = [&](const float* q, const KvCache& c, int64_t i, float* o) {
          attn_dense_decode_cpu(q, c.k.data(), c.v.data(), o, H, c.cap, i + 1, d, &stats_);
        };
        block_decode(blocks_[static_cast<size_t>(l)], cfg_, st.x.data(), p,
                     st.caches[static_cast<size_t>(l)], attn);
      }
      head_forward(cp_, cfg_, st.x.data(), 1, logits);
    } else {
      // win is (M, D): the cached z's of positions p-M+1 .. p in order.
      Tensor win = Tensor::zeros({M, D}, MemCategory::kActivations);
      for (int64_t r = 0; r < M; ++r) {
        const float* src = st.z.data() + ((p - M + 1 + r) % M) * D;
        std::copy(src, src + D, win.data() + r * D);
      }
      ATTN_RETURN_IF_ERROR(latents_forward(win.data(), M, nullptr, p - M + 1, nullptr));
      head_forward(cp_, cfg_, win.data() + (M - 1) * D, 1, logits);
    }
    ++st.pos;
    return Status::ok();
  }

 private:
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

  // emb (n, D) -> z (n - first, D): latent at position p = first + m attends to inputs j <= p.
  // A tap on layer 0 gets the cross-attention's q, k, v and output, and the layer stops there.
  Status cross_forward(const float* emb, int64_t n, int64_t first, float* z, AttnTap* tap) const {
    const int D = cfg_.dim, H = cfg_.heads, d = cfg_.head_dim();
    const int64_t rows = n - first;
    // hk, t are (n, D); hq is (rows, D); kh, vh are (H, n, d); qh, oh are (H, rows, d).
    Tensor hk = Tensor::zeros({n, D}, MemCategory::kActivations);
    Tensor t = Tensor::zeros({n, D}, MemCategory::kActivations);
    Tensor hq = Tensor::zeros({rows, D}, MemCategory::kActivations);
    Tensor kh = Tensor::zeros({H, n, d}, MemCategory::kActivations);
    Tensor vh = Tensor::zeros({H, n, d}, MemCategory::kActivations);
    Tensor qh = Tensor::zeros({H, rows, d}, MemCategory::kActivations);
    Tensor oh = Tensor::zeros({H, rows, d}, MemCategory::kActivations);
    op_layernorm(emb, ln_kv_g_, ln_kv_b_, hk.data(), n, D);
    op_matmul(hk.data(), cross_.wk, t.data(), n, D, D);
    op_split_heads(t.data(), kh.data(), n, H, d);
    op_matmul(hk.data(), cross_.wv, t.data(), n, D, D);
    op_split_heads(t.data(), vh.data(), n, H, d);
    const float* latent_emb = emb + first * D;
    op_layernorm(latent_emb, cross_.ln1_g, cross_.ln1_b, hq.data(), rows, D);
    op_matmul(hq.data(), cross_.wq, t.data(), rows, D, D);
    op_split_heads(t.data(), qh.data(), rows, H, d);
    ATTN_RETURN_IF_ERROR(attn_dense_forward_cpu(qh.data(), kh.data(), vh.data(), oh.data(), H, rows,
                                                n, d, first, &stats_));
    if (tap && tap->layer == 0) {
      AttnLayerView view;
      view.q = qh.data();
      view.k = kh.data();
      view.v = vh.data();
      view.o = oh.data();
      view.heads = H;
      view.d = d;
      view.nq = rows;
      view.nk = n;
      view.causal_offset = first;
      view.query_offset = first;
      view.key_space = "inputs";
      tap->done = true;
      return (*tap->fn)(view);
    }
    op_merge_heads(oh.data(), t.data(), rows, H, d);
    std::copy(latent_emb, latent_emb + rows * D, z);
    op_matmul(t.data(), cross_.wo, z, rows, D, D, /*accumulate=*/true);
    cross_ffn(z, rows);
    return Status::ok();
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

  // z (rows, D) in place through the latent self-attention stack (dense causal); the latents
  // sit at positions first .. first + rows - 1. With a tap on layer l >= 1, up to block l - 1.
  Status latents_forward(float* z, int64_t rows, const CancelFlag* cancel, int64_t first,
                         AttnTap* tap) const {
    const int H = cfg_.heads, d = cfg_.head_dim();
    AttnFullFn attn = [&](const float* q, const float* k, const float* v, float* o, int64_t len) {
      return attn_dense_forward_cpu(q, k, v, o, H, len, len, d, 0, &stats_);
    };
    AttnLayerView view;
    view.heads = H;
    view.d = d;
    view.query_offset = view.key_offset = first;
    view.key_space = "latents";
    for (size_t l = 0; l < blocks_.size() && !(tap && tap->done); ++l) {
      if (cancel && cancel->load()) return cancelled("forward cancelled");
      view.kind_layer = static_cast<int>(l);
      ATTN_RETURN_IF_ERROR(block_forward(blocks_[l], cfg_, z, rows,
                                         attn_tapped(attn, tap, static_cast<int>(l) + 1, view)));
    }
    return Status::ok();
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
