// What every family's one forward composes on the tape (exec/tape.h): the graph context, the
// pre-LN block and its recomputation, and the inference hooks (stop early, describe a layer to
// the views). The families' forwards (models/<family>.cpp) are written once over these; the
// trainer differentiates them, Model::forward runs them on a tape that records nothing.
#pragma once

#include <algorithm>
#include <cassert>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "attnscope/config.h"
#include "exec/tape_attn.h"
#include "exec/tape_ops.h"
#include "models/graph.h"
#ifdef ATTNSCOPE_HAVE_CUDA
#include "exec/device_graph.h"
#endif

namespace attnscope::tape {

// A family's graph is written once over an executor G: the training tape (exec/tape.h,
// Tape<float> and Tape<double>, which records a backward or not) or the CUDA executor
// (exec/device_graph.h). G supplies the value handle G::V (a pointer-like with ->rows and
// ->cols), G::Scalar, G::kRecords (false: the training-only paths compile away) and push(f); the
// ops (linear, layernorm, gelu, add, scale, slice_rows, concat_rows, reshape, shift_rows,
// mean_groups, repeat_rows, embed, ffn_block, attention, head_logits, checkpoint) are free
// functions found for G by argument-dependent lookup.
template <typename G>
using VarOf = typename G::V;
template <typename G>
using ParamsOf = std::map<std::string, VarOf<G>>;
template <typename G>
using ParamsPtr = std::shared_ptr<const ParamsOf<G>>;
template <typename G>
using SubGraphOf = std::function<VarOf<G>(G&, const std::vector<VarOf<G>>&)>;
using Rotations = std::shared_ptr<const std::vector<float>>;

// What every block of a graph shares.
template <typename G>
struct Ctx {
  ModelConfig cfg;  // resolved
  ParamsPtr<G> p;   // the caller's parameters (same values), kept alive for recomputation
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
using CpuCtx = Ctx<Tape<float>>;

// The attention half of a pre-LN block under prefix: Attn(LN1 x) Wo, (n, D).
// kLsh uses the shared attn.wqk for queries and keys; rot keeps its rotations
// alive until the backward of the attention has run (the no-op step is older,
// so it runs after the attention's).
template <typename G>
VarOf<G> attn_half(G& t, const ParamsOf<G>& p, const std::string& pre, const VarOf<G>& x, int heads,
                   const TrainAttnSpec& spec, const Rotations& rot) {
  using V = VarOf<G>;
  // h, q, k, v, o are (n, D).
  V h = layernorm(t, x, param(p, pre + "ln1.weight"), param(p, pre + "ln1.bias"));
  V v = linear(t, h, param(p, pre + "attn.wv"), V());
  V o;
  if (spec.kind == TrainAttnKind::kLsh) {
    V qk = linear(t, h, param(p, pre + "attn.wqk"), V());
    t.push([rot]() {});
    o = attention(t, qk, qk, v, heads, spec);
  } else {
    V q = linear(t, h, param(p, pre + "attn.wq"), V());
    V k = linear(t, h, param(p, pre + "attn.wk"), V());
    o = attention(t, q, k, v, heads, spec);
  }
  return linear(t, o, param(p, pre + "attn.wo"), V());
}

// One pre-LN block: x + Attn(LN1 x) Wo, then + FFN(LN2 .).
template <typename G>
VarOf<G> block(G& t, const ParamsOf<G>& p, const std::string& pre, const VarOf<G>& x, int heads,
               const TrainAttnSpec& spec, const Rotations& rot, int ff_chunks) {
  VarOf<G> y = add(t, x, attn_half(t, p, pre, x, heads, spec, rot));
  return add(t, y, ffn_block(t, p, pre, y, ff_chunks));
}

// A block, re-run in the backward when the graph recomputes blocks; passed through untouched
// once an inference forward has stopped.
template <typename G>
VarOf<G> run_block(G& t, const Ctx<G>& c, const std::string& pre, const VarOf<G>& x,
                   const TrainAttnSpec& spec, const Rotations& rot = nullptr) {
  if (c.stopped()) return x;
  const int heads = c.cfg.heads, chunks = c.opt.ff_chunks;
  if (!c.opt.recompute_blocks) return block(t, *c.p, pre, x, heads, spec, rot, chunks);
  SubGraphOf<G> fn = [ps = c.p, pre, heads, spec, rot, chunks](G& tt,
                                                               const std::vector<VarOf<G>>& in) {
    return block(tt, *ps, pre, in[0], heads, spec, rot, chunks);
  };
  return checkpoint(t, {x}, fn);
}

template <typename G>
TrainAttnSpec causal_spec(const Ctx<G>& c, int64_t q_offset) {
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
// Each is instantiated in its file for Tape<float>, Tape<double> and (CUDA builds) the device
// executor.
// Dense and Sparse Transformer (models/transformer.cpp).
template <typename G>
VarOf<G> transformer_hidden(G& t, const Ctx<G>& c, VarOf<G> h);
// Reformer (models/reformer.cpp): reversible or plain residual over LSH blocks.
template <typename G>
VarOf<G> reformer_hidden(G& t, const Ctx<G>& c, const VarOf<G>& emb);
// Perceiver AR (models/perceiver_ar.cpp): the cross layer into the latents at rows first..n-1,
// then the latent stack; (n - first, D).
template <typename G>
VarOf<G> perceiver_hidden(G& t, const Ctx<G>& c, const VarOf<G>& emb, int64_t first);
// The prefix of an n-token sequence a training pass uses (models/graph.h graph_train_length):
// one window of M latents ending at M, 2M, .., n, chosen by draw.
int64_t perceiver_train_length(const ModelConfig& cfg, int64_t n, uint64_t draw);
// The latent self-attention stack alone over z (rows, D), the latents at positions first ..
// (decode recomputes it on a sliding window).
template <typename G>
VarOf<G> perceiver_latents(G& t, const Ctx<G>& c, VarOf<G> z, int64_t first);
// Hourglass (models/hourglass.cpp): the levels with shortening and upsampling.
// cat (rows * k, D) -> (rows, D) between depth s and s + 1: the mean of each group of k rows, or
// the group's k*D concatenation times shorten.s.weight plus its bias.
template <typename G>
VarOf<G> hourglass_shorten(G& t, const Ctx<G>& c, int s, const VarOf<G>& cat, int64_t k);
// g (rows, D) -> (rows * k, D): each row repeated k times, or g upsample.s.weight + bias reshaped.
template <typename G>
VarOf<G> hourglass_upsample(G& t, const Ctx<G>& c, int s, const VarOf<G>& g, int64_t k);
template <typename G>
VarOf<G> hourglass_hidden(G& t, const Ctx<G>& c, const VarOf<G>& emb);

// The family's final hidden rows of the embedded rows emb (n, D) and the first row they
// predict (Perceiver AR: n - latents; else 0): the one dispatch every executor runs.
template <typename G>
VarOf<G> family_hidden(G& t, const Ctx<G>& c, const VarOf<G>& emb, int64_t* first_row) {
  const int64_t n = emb->rows;
  *first_row = 0;
  switch (c.cfg.family) {
    case Family::kDense:
    case Family::kSparse:
      return transformer_hidden(t, c, emb);
    case Family::kReformer:
      return reformer_hidden(t, c, emb);
    case Family::kPerceiverAR:
      *first_row = n - std::min<int64_t>(c.cfg.perceiver.latents, n);
      return perceiver_hidden(t, c, emb, *first_row);
    case Family::kHourglass:
      return hourglass_hidden(t, c, emb);
  }
  return emb;
}

// Explicit instantiations of a family's forward for every executor: FN(G) once per executor.
#ifdef ATTNSCOPE_HAVE_CUDA
#define ATTNSCOPE_FOR_EACH_EXECUTOR(FN) \
  FN(Tape<float>)                       \
  FN(Tape<double>)                      \
  FN(exec::DeviceGraph)
#else
#define ATTNSCOPE_FOR_EACH_EXECUTOR(FN) \
  FN(Tape<float>)                       \
  FN(Tape<double>)
#endif

}  // namespace attnscope::tape
