// What every family's one forward composes on the tape (train/tape.h): the graph context, the
// pre-LN block and its recomputation, and the inference hooks (stop early, describe a layer to
// the views). The families' forwards (models/<family>.cpp) are written once over these; the
// trainer differentiates them, Model::forward runs them on a tape that records nothing.
#pragma once

#include <cassert>
#include <memory>
#include <string>
#include <vector>

#include "attnscope/config.h"
#include "train/attn_train.h"
#include "train/graph.h"
#include "train/ops_train.h"

namespace attnscope::train {

template <typename T>
using ParamsPtr = std::shared_ptr<const ParamSet<T>>;
using Rotations = std::shared_ptr<const std::vector<float>>;

// What every block of a graph shares.
template <typename T>
struct Ctx {
  ModelConfig cfg;  // resolved
  ParamsPtr<T> p;   // the caller's parameters (same Vars), kept alive for recomputation
  GraphOptions opt;
  // Inference: nothing is left to compute once the inspected layer ran, an attention kernel
  // failed or the caller cancelled; the families then pass activations through unchanged and
  // graph_hidden reports why.
  bool stopped() const {
    return (opt.infer && opt.infer->finished()) || (opt.cancel && opt.cancel->load());
  }
  // spec with the inference hooks and the views' description of layer view_layer.
  TrainAttnSpec described(TrainAttnSpec spec, int view_layer, AttnLayerView view) const {
    spec.infer = opt.infer;
    spec.view_layer = view_layer;
    spec.view = std::move(view);
    return spec;
  }
};

// The attention half of a pre-LN block under prefix: Attn(LN1 x) Wo, (n, D).
// kLsh uses the shared attn.wqk for queries and keys; rot keeps its rotations
// alive until the backward of the attention has run (the no-op step is older,
// so it runs after the attention's).
template <typename T>
Var<T> attn_half(Tape<T>& t, const ParamSet<T>& p, const std::string& pre, const Var<T>& x,
                 int heads, const TrainAttnSpec& spec, const Rotations& rot) {
  // h, q, k, v, o are (n, D).
  Var<T> h = layernorm(t, x, param(p, pre + "ln1.weight"), param(p, pre + "ln1.bias"));
  Var<T> v = linear(t, h, param(p, pre + "attn.wv"), Var<T>());
  Var<T> o;
  if (spec.kind == TrainAttnKind::kLsh) {
    Var<T> qk = linear(t, h, param(p, pre + "attn.wqk"), Var<T>());
    t.push([rot]() {});
    o = attention(t, qk, qk, v, heads, spec);
  } else {
    Var<T> q = linear(t, h, param(p, pre + "attn.wq"), Var<T>());
    Var<T> k = linear(t, h, param(p, pre + "attn.wk"), Var<T>());
    o = attention(t, q, k, v, heads, spec);
  }
  return linear(t, o, param(p, pre + "attn.wo"), Var<T>());
}

// One pre-LN block: x + Attn(LN1 x) Wo, then + FFN(LN2 .).
template <typename T>
Var<T> block(Tape<T>& t, const ParamSet<T>& p, const std::string& pre, const Var<T>& x, int heads,
             const TrainAttnSpec& spec, const Rotations& rot, int ff_chunks) {
  Var<T> y = add(t, x, attn_half(t, p, pre, x, heads, spec, rot));
  return add(t, y, ffn_block(t, p, pre, y, ff_chunks));
}

// A block, re-run in the backward when the graph recomputes blocks; passed through untouched
// once an inference forward has stopped.
template <typename T>
Var<T> run_block(Tape<T>& t, const Ctx<T>& c, const std::string& pre, const Var<T>& x,
                 const TrainAttnSpec& spec, const Rotations& rot = nullptr) {
  if (c.stopped()) return x;
  const int heads = c.cfg.heads, chunks = c.opt.ff_chunks;
  if (!c.opt.recompute_blocks) return block(t, *c.p, pre, x, heads, spec, rot, chunks);
  SubGraph<T> fn = [ps = c.p, pre, heads, spec, rot, chunks](Tape<T>& tt,
                                                             const std::vector<Var<T>>& in) {
    return block(tt, *ps, pre, in[0], heads, spec, rot, chunks);
  };
  return checkpoint(t, {x}, fn);
}

template <typename T>
TrainAttnSpec causal_spec(const Ctx<T>& c, int64_t q_offset) {
  TrainAttnSpec s;
  s.kind = TrainAttnKind::kCausal;
  s.q_offset = q_offset;
  s.store_probs = c.opt.store_attention;
  return s;
}

// The views' description of a self-attention layer over rows that are sequence positions.
inline AttnLayerView positions_view(int kind_layer) {
  AttnLayerView v;
  v.key_space = "positions";
  v.kind_layer = kind_layer;
  return v;
}

inline std::string block_prefix(int l) {
  return "blocks." + std::to_string(l) + ".";
}

// ---- the families' forwards: embedding (n, D) -> final hidden rows, one definition each ----
// Dense and Sparse Transformer (models/transformer.cpp).
template <typename T>
Var<T> transformer_hidden(Tape<T>& t, const Ctx<T>& c, Var<T> h);
// Reformer (models/reformer.cpp): reversible or plain residual over LSH blocks.
template <typename T>
Var<T> reformer_hidden(Tape<T>& t, const Ctx<T>& c, const Var<T>& emb);
// Perceiver AR (models/perceiver_ar.cpp): the cross layer into the latents at rows first..n-1,
// then the latent stack; (n - first, D).
template <typename T>
Var<T> perceiver_hidden(Tape<T>& t, const Ctx<T>& c, const Var<T>& emb, int64_t first);
// The latent self-attention stack alone over z (rows, D), the latents at positions first ..
// (decode recomputes it on a sliding window).
template <typename T>
Var<T> perceiver_latents(Tape<T>& t, const Ctx<T>& c, Var<T> z, int64_t first);
// Hourglass (models/hourglass.cpp): the levels with shortening and upsampling.
// cat (rows * k, D) -> (rows, D) between depth s and s + 1: the mean of each group of k rows, or
// the group's k*D concatenation times shorten.s.weight plus its bias.
template <typename T>
Var<T> hourglass_shorten(Tape<T>& t, const Ctx<T>& c, int s, const Var<T>& cat, int64_t k);
// g (rows, D) -> (rows * k, D): each row repeated k times, or g upsample.s.weight + bias reshaped.
template <typename T>
Var<T> hourglass_upsample(Tape<T>& t, const Ctx<T>& c, int s, const Var<T>& g, int64_t k);
template <typename T>
Var<T> hourglass_hidden(Tape<T>& t, const Ctx<T>& c, const Var<T>& emb);

}  // namespace attnscope::train
