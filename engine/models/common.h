// Pieces every family composes: the input embedding (token or BOS plus factorised learned
// positions), the pre-LN transformer block (full forward and cached decode step), the FFN,
// KV caches and the final layer norm + logit head. Families own only what differs.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "attnscope/model.h"

namespace attnscope {

// ---- weights as pointers (names checked by model_check_weights before use) ----
const float* weight_ptr(const WeightMap& w, const std::string& name);

struct CommonParams {
  const float *token, *bos, *pos_row, *pos_col, *pos_channel;  // pos_channel: images only
  const float *lnf_g, *lnf_b, *head_w, *head_b;
};
CommonParams common_params(const WeightMap& w, const ModelConfig& cfg);

struct BlockParams {
  const float *ln1_g, *ln1_b, *wq, *wk, *wv, *wo;
  const float *ln2_g, *ln2_b, *w1, *b1, *w2, *b2;
};
BlockParams block_params(const WeightMap& w, const std::string& prefix);

// ---- embedding ----
// out (count, D): the inputs at positions p0 .. p0+count-1 of token sequence x (BOS at 0,
// x[p-1] after), plus their position embeddings.
void embed_inputs(const CommonParams& cp, const ModelConfig& cfg, const uint8_t* x, int64_t p0,
                  int64_t count, float* out);
// out (D): the input at position p whose previous token is prev (ignored when p = 0).
void embed_one(const CommonParams& cp, const ModelConfig& cfg, int64_t p, int prev, float* out);

// ---- the final layer norm and logit head: x (n, D) -> logits (n, 256) ----
void head_forward(const CommonParams& cp, const ModelConfig& cfg, const float* x, int64_t n,
                  float* logits);

// ---- feed-forward: out (n, D) = gelu(h W1 + b1) W2 + b2, h already layer-normed ----
void ffn_forward(const BlockParams& bp, const float* h, float* out, int64_t n, int dim, int ff_dim);

// ---- the pre-LN block's decode step (the full forward is the graph: models/family_graph.h) ----
// Keys and values of one attention layer: (H, cap, d) each, counted under caches.
struct KvCache {
  Tensor k, v;
  int64_t cap = 0;
  int64_t len = 0;
};
KvCache kv_cache_make(int heads, int64_t cap, int d);

// The argument checks every family's attention_layer makes: n in 1..seq_len, layer in
// 0..layers-1.
Status check_attention_layer(const ModelConfig& cfg, int64_t n, int layer, int layers);
// A decode step at pos fed prev_token (ignored at pos 0): within the model's length, a byte.
Status check_decode_step(const ModelConfig& cfg, int64_t pos, int prev_token);

// One query per head at absolute position i against the cache (which holds i+1 rows).
using AttnDecodeFn =
    std::function<void(const float* q, const KvCache& cache, int64_t i, float* out)>;
// x (D) in place for position i; appends this position's k, v to cache.
void block_decode(const BlockParams& bp, const ModelConfig& cfg, float* x, int64_t i,
                  KvCache& cache, const AttnDecodeFn& attn);

}  // namespace attnscope
