// Shared model pieces: embedding, pre-LN block (full and decode), FFN, KV cache, logit head.
#include "models/common.h"

#include <cassert>
#include <cstring>
#include <vector>

#include "ops/ops.h"

namespace attnscope {

const float* weight_ptr(const WeightMap& w, const std::string& name) {
  auto it = w.find(name);
  assert(it != w.end() && "weight missing: did model_check_weights run before create?");
  return it->second.data();
}

CommonParams common_params(const WeightMap& w, const ModelConfig& cfg) {
  CommonParams c{};
  c.token = weight_ptr(w, "embed.token");
  c.bos = weight_ptr(w, "embed.bos");
  c.pos_row = weight_ptr(w, "embed.pos_row");
  c.pos_col = weight_ptr(w, "embed.pos_col");
  c.pos_channel =
      cfg.modality.kind == ModalityKind::kImage ? weight_ptr(w, "embed.pos_channel") : nullptr;
  c.lnf_g = weight_ptr(w, "final_ln.weight");
  c.lnf_b = weight_ptr(w, "final_ln.bias");
  c.head_w = weight_ptr(w, "head.weight");
  c.head_b = weight_ptr(w, "head.bias");
  return c;
}

BlockParams block_params(const WeightMap& w, const std::string& p) {
  return {
      weight_ptr(w, p + "ln1.weight"), weight_ptr(w, p + "ln1.bias"), weight_ptr(w, p + "attn.wq"),
      weight_ptr(w, p + "attn.wk"),    weight_ptr(w, p + "attn.wv"),  weight_ptr(w, p + "attn.wo"),
      weight_ptr(w, p + "ln2.weight"), weight_ptr(w, p + "ln2.bias"), weight_ptr(w, p + "ff.w1"),
      weight_ptr(w, p + "ff.b1"),      weight_ptr(w, p + "ff.w2"),    weight_ptr(w, p + "ff.b2")};
}

void embed_one(const CommonParams& cp, const ModelConfig& cfg, int64_t p, int prev, float* out) {
  const int64_t D = cfg.dim;
  const float* tok = p == 0 ? cp.bos : cp.token + static_cast<int64_t>(prev) * D;
  int64_t row, col;
  const float* chan = nullptr;
  if (cfg.modality.kind == ModalityKind::kImage) {
    const int64_t C = cfg.modality.channels, W = cfg.modality.width;
    chan = cp.pos_channel + (p % C) * D;
    col = (p / C) % W;
    row = p / (C * W);
  } else {
    row = p / cfg.pos_width;
    col = p % cfg.pos_width;
  }
  const float* pr = cp.pos_row + row * D;
  const float* pc = cp.pos_col + col * D;
  for (int64_t i = 0; i < D; ++i) out[i] = tok[i] + pr[i] + pc[i] + (chan ? chan[i] : 0.0f);
}

void embed_inputs(const CommonParams& cp, const ModelConfig& cfg, const uint8_t* x, int64_t p0,
                  int64_t count, float* out) {
  for (int64_t r = 0; r < count; ++r) {
    const int64_t p = p0 + r;
    embed_one(cp, cfg, p, p > 0 ? x[p - 1] : 0, out + r * cfg.dim);
  }
}

void head_forward(const CommonParams& cp, const ModelConfig& cfg, const float* x, int64_t n,
                  float* logits) {
  Tensor h = Tensor::zeros({n, cfg.dim}, MemCategory::kActivations);
  op_layernorm(x, cp.lnf_g, cp.lnf_b, h.data(), n, cfg.dim);
  op_matmul(h.data(), cp.head_w, logits, n, cfg.dim, kVocab);
  op_add_bias(logits, cp.head_b, n, kVocab);
}

void ffn_forward(const BlockParams& bp, const float* h, float* out, int64_t n, int dim,
                 int ff_dim) {
  // h (n, D) -> u (n, F) -> out (n, D)
  Tensor u = Tensor::zeros({n, ff_dim}, MemCategory::kActivations);
  op_matmul(h, bp.w1, u.data(), n, dim, ff_dim);
  op_add_bias(u.data(), bp.b1, n, ff_dim);
  op_gelu(u.data(), n * ff_dim);
  op_matmul(u.data(), bp.w2, out, n, ff_dim, dim);
  op_add_bias(out, bp.b2, n, dim);
}

void block_decode(const BlockParams& bp, const ModelConfig& cfg, float* x, int64_t i,
                  KvCache& cache, const AttnDecodeFn& attn) {
  const int D = cfg.dim, H = cfg.heads, d = cfg.head_dim();
  assert(i < cache.cap && "decode past the cache capacity: the caller must bound positions");
  // h, q, t, o are (D) = (H, d) per head; the new k, v go to row i of each head's cache.
  ActivationVector<float> h(D), q(D), t(D), o(D), f(D);
  op_layernorm(x, bp.ln1_g, bp.ln1_b, h.data(), 1, D);
  op_matmul(h.data(), bp.wq, q.data(), 1, D, D);
  op_matmul(h.data(), bp.wk, t.data(), 1, D, D);
  for (int hh = 0; hh < H; ++hh)
    std::memcpy(cache.k.data() + (hh * cache.cap + i) * d, t.data() + hh * d, sizeof(float) * d);
  op_matmul(h.data(), bp.wv, t.data(), 1, D, D);
  for (int hh = 0; hh < H; ++hh)
    std::memcpy(cache.v.data() + (hh * cache.cap + i) * d, t.data() + hh * d, sizeof(float) * d);
  cache.len = i + 1;
  attn(q.data(), cache, i, o.data());
  op_matmul(o.data(), bp.wo, x, 1, D, D, /*accumulate=*/true);
  op_layernorm(x, bp.ln2_g, bp.ln2_b, h.data(), 1, D);
  ffn_forward(bp, h.data(), f.data(), 1, D, cfg.ff_dim);
  op_add(x, f.data(), D);
}

Status check_attention_layer(const ModelConfig& cfg, int64_t n, int layer, int layers) {
  if (n < 1 || n > cfg.seq_len())
    return invalid_argument("sequence of " + std::to_string(n) + " tokens; the model takes 1.." +
                            std::to_string(cfg.seq_len()));
  if (layer < 0 || layer >= layers)
    return invalid_argument("attention layer " + std::to_string(layer) + " does not exist: this " +
                            family_name(cfg.family) + " model has layers 0.." +
                            std::to_string(layers - 1));
  return Status::ok();
}

Status check_decode_step(const ModelConfig& cfg, int64_t pos, int prev_token) {
  if (pos >= cfg.seq_len())
    return invalid_argument("decode past the model's length " + std::to_string(cfg.seq_len()));
  if (pos > 0 && (prev_token < 0 || prev_token >= kVocab))
    return invalid_argument("token out of range 0..255");
  return Status::ok();
}

KvCache kv_cache_make(int heads, int64_t cap, int d) {
  KvCache c;
  c.k = Tensor::zeros({heads, cap, d}, MemCategory::kCaches);
  c.v = Tensor::zeros({heads, cap, d}, MemCategory::kCaches);
  c.cap = cap;
  return c;
}

}  // namespace attnscope
