// The Reformer family: blocks of shared-QK LSH attention and a position-chunked FFN on a
// reversible (or plain pre-LN) residual; chunked LSH for the full forward, trax's predict
// scheme (cached layer inputs and bucket ids, K/V recomputed on demand) for decoding.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "models/common.h"
#include "models/families.h"
#include "ops/ops.h"

namespace attnscope {

void reformer_param_specs(const ModelConfig& cfg, std::vector<ParamSpec>* out) {
  for (int l = 0; l < cfg.layers; ++l)
    block_param_specs("blocks." + std::to_string(l) + ".", cfg.dim, cfg.ff_dim, out,
                      /*shared_qk=*/true);
}

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
  std::vector<Tensor> inputs;  // per layer (cap, D): LN1 of the attention input
  std::vector<std::unique_ptr<BucketCache>> buckets;  // per layer (H, n_hashes, cap)
  std::vector<float> x1, x2;                          // (D) the two residual streams
};

// y (d) = x / |x|, |x|^2 floored at 1e-6 as in the LSH forward.
void normalise(float* y, int d) {
  double ss = 0.0;
  for (int c = 0; c < d; ++c) ss += static_cast<double>(y[c]) * y[c];
  const double inv = 1.0 / std::sqrt(std::max(ss, 1e-6));
  for (int c = 0; c < d; ++c) y[c] = static_cast<float>(y[c] * inv);
}

class ReformerModel : public Model {
 public:
  ReformerModel(ModelConfig cfg, WeightMap w) : Model(std::move(cfg), std::move(w)) {
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

  // Reversible: X1 = X2 = embedding; per block Y1 = X1 + Attn(LN1 X2), Y2 = X2 + FFN(LN2 Y1);
  // logits from (Y1 + Y2) / 2. Plain: x += Attn(LN1 x); x += FFN(LN2 x). Both streams are
  // kept whole here (no backward pass runs in this engine, so nothing is rebuilt from Y).
  Status forward(const uint8_t* x, int64_t n, Tensor* logits, int64_t* first_row,
                 const CancelFlag* cancel) const override {
    if (n < 1 || n > cfg_.seq_len())
      return invalid_argument("sequence of " + std::to_string(n) + " tokens; the model takes 1.." +
                              std::to_string(cfg_.seq_len()));
    const int D = cfg_.dim;
    const bool rev = cfg_.lsh.reversible;
    // x1, x2 are (n, D).
    Tensor x1 = Tensor::zeros({n, D}, MemCategory::kActivations);
    Tensor x2 = rev ? Tensor::zeros({n, D}, MemCategory::kActivations) : x1;
    embed_inputs(cp_, cfg_, x, 0, n, x1.data());
    if (rev) std::memcpy(x2.data(), x1.data(), sizeof(float) * n * D);
    ATTN_RETURN_IF_ERROR(blocks_forward(x1.data(), x2.data(), n, cancel, nullptr));
    if (rev)
      for (int64_t e = 0; e < n * D; ++e) x1.data()[e] = 0.5f * (x1.data()[e] + x2.data()[e]);
    *logits = Tensor::zeros({n, kVocab}, MemCategory::kActivations);
    head_forward(cp_, cfg_, x1.data(), n, logits->data());
    *first_row = 0;
    return Status::ok();
  }

  Status attention_layer(const uint8_t* x, int64_t n, int layer,
                         const AttnLayerFn& fn) const override {
    ATTN_RETURN_IF_ERROR(check_attention_layer(cfg_, n, layer, cfg_.layers));
    const int D = cfg_.dim;
    Tensor x1 = Tensor::zeros({n, D}, MemCategory::kActivations);
    Tensor x2 = cfg_.lsh.reversible ? Tensor::zeros({n, D}, MemCategory::kActivations) : x1;
    embed_inputs(cp_, cfg_, x, 0, n, x1.data());
    if (cfg_.lsh.reversible) std::memcpy(x2.data(), x1.data(), sizeof(float) * n * D);
    AttnTap tap{layer, &fn};
    return blocks_forward(x1.data(), x2.data(), n, nullptr, &tap);
  }

  std::unique_ptr<DecodeState> decode_begin() const override {
    auto st = std::make_unique<ReformerState>();
    const int64_t cap = cfg_.seq_len();
    for (int l = 0; l < cfg_.layers; ++l) {
      st->inputs.push_back(Tensor::zeros({cap, cfg_.dim}, MemCategory::kCaches));
      st->buckets.push_back(
          std::make_unique<BucketCache>(static_cast<size_t>(cfg_.heads) * spec_.n_hashes * cap));
    }
    st->x1.resize(static_cast<size_t>(cfg_.dim));
    st->x2.resize(static_cast<size_t>(cfg_.dim));
    return st;
  }

  // trax's predict mode: the new position's LN'd attention input and its bucket ids are
  // appended to the layer's cache (rotations fixed per layer); its query attends through
  // attn_lsh_decode_cpu, whose keys and values are recomputed from the cached inputs.
  Status decode_step(DecodeState& base, int prev_token, float* logits) const override {
    auto& st = static_cast<ReformerState&>(base);
    const int64_t i = st.pos;
    if (i >= cfg_.seq_len())
      return invalid_argument("decode past the model's length " + std::to_string(cfg_.seq_len()));
    if (i > 0 && (prev_token < 0 || prev_token >= kVocab))
      return invalid_argument("token out of range 0..255");
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
      float* inputs = st.inputs[static_cast<size_t>(l)].data();
      int* buckets = st.buckets[static_cast<size_t>(l)]->data();
      float* hi = inputs + i * D;
      op_layernorm(x2, b.ln1_g, b.ln1_b, hi, 1, D);
      op_matmul(hi, b.wqk, q.data(), 1, D, D);
      for (int hh = 0; hh < H; ++hh)
        for (int r = 0; r < R; ++r)
          buckets[(static_cast<int64_t>(hh) * R + r) * cap + i] =
              attn_lsh_hash(q.data() + hh * d, rot, r, d, spec_.n_buckets);
      // k (d) = normalise(h_j Wqk[:, head]); v (d) = h_j Wv[:, head].
      const LshFetch fetch = [&](int head, int64_t j, float* k, float* vv) {
        const float* hj = inputs + j * D;
        std::fill_n(k, d, 0.0f);
        std::fill_n(vv, d, 0.0f);
        for (int e = 0; e < D; ++e) {
          const float* wk = b.wqk + static_cast<int64_t>(e) * D + head * d;
          const float* wv = b.wv + static_cast<int64_t>(e) * D + head * d;
          for (int c = 0; c < d; ++c) {
            k[c] += hj[e] * wk[c];
            vv[c] += hj[e] * wv[c];
          }
        }
        normalise(k, d);
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
  // The residual streams x1, x2 (n, D) (one stream when x1 == x2) through the blocks; with a
  // tap, up to its layer only, whose LSH call also records its buckets and order.
  Status blocks_forward(float* x1, float* x2, int64_t n, const CancelFlag* cancel,
                        AttnTap* tap) const {
    const int D = cfg_.dim, H = cfg_.heads, d = cfg_.head_dim();
    // h, t are (n, D); qk, v, o are (H, n, d).
    Tensor h = Tensor::zeros({n, D}, MemCategory::kActivations);
    Tensor t = Tensor::zeros({n, D}, MemCategory::kActivations);
    Tensor qk = Tensor::zeros({H, n, d}, MemCategory::kActivations);
    Tensor v = Tensor::zeros({H, n, d}, MemCategory::kActivations);
    Tensor o = Tensor::zeros({H, n, d}, MemCategory::kActivations);
    for (int l = 0; l < cfg_.layers; ++l) {
      if (cancel && cancel->load()) return cancelled("forward cancelled");
      const ReformerBlock& b = blocks_[static_cast<size_t>(l)];
      const bool tapped = tap && tap->layer == l;
      LshTrace trace;
      op_layernorm(x2, b.ln1_g, b.ln1_b, h.data(), n, D);
      op_matmul(h.data(), b.wqk, t.data(), n, D, D);
      op_split_heads(t.data(), qk.data(), n, H, d);
      op_matmul(h.data(), b.wv, t.data(), n, D, D);
      op_split_heads(t.data(), v.data(), n, H, d);
      ATTN_RETURN_IF_ERROR(attn_lsh_forward_cpu(qk.data(), v.data(), o.data(), H, n, d, spec_,
                                                rotations_[static_cast<size_t>(l)].data(),
                                                tapped ? &trace : nullptr, &stats_));
      if (tapped) {
        AttnLayerView view;
        view.q = view.k = qk.data();
        view.v = v.data();
        view.o = o.data();
        view.heads = H;
        view.d = d;
        view.nq = view.nk = n;
        view.key_space = "positions";
        view.kind_layer = l;
        view.lsh = &trace;
        tap->done = true;
        return (*tap->fn)(view);
      }
      op_merge_heads(o.data(), t.data(), n, H, d);
      op_matmul(t.data(), b.wo, x1, n, D, D, /*accumulate=*/true);
      ffn_chunked(b, x1, x2, n);
    }
    return Status::ok();
  }

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
