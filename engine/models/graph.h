// Each family's forward built on the training tape, so that it can be differentiated; the
// same values as Model::forward. Memory techniques are switches in GraphOptions.
#pragma once

#include <cstdint>
#include <vector>

#include "attnscope/config.h"
#include "attnscope/model.h"
#include "attnscope/status.h"
#include "exec/tape_attn.h"
#include "exec/tape_ops.h"

namespace attnscope::tape {

struct GraphOptions {
  // false: attention probabilities are recomputed in the backward (only outputs and
  // logsumexps kept); true: every evaluated tile's probabilities are stored.
  bool store_attention = true;
  // Each block's forward runs without keeping its intermediates and is re-run in the
  // backward (checkpoint): stored per block is its input only.
  bool recompute_blocks = false;
  // Reformer with lsh.reversible: rebuild each block's inputs from its outputs in the
  // backward instead of storing them (reversible_stack). Other families: refused.
  bool reversible = false;
  int ff_chunks = 1;     // feed-forward in this many row chunks (ffn_block)
  int logit_chunks = 1;  // output log-probs in this many row chunks (head_loss)
  // Perceiver AR training: share of the context (positions before the latents) dropped from
  // the cross-attention, drawn from seed (0 = none; the config's cross_dropout by default).
  double cross_dropout = -1;  // < 0: take cfg.perceiver.cross_dropout
  uint64_t dropout_seed = 0;
  // The sequence position of the graph's first row: the graph embeds positions pos0 ..
  // pos0 + n - 1 of the sequence x points to (input x[p - 1] at position p) and predicts
  // x[pos0 .. pos0 + n - 1], as if the sequence began at pos0 with x[pos0 - 1] for its BOS.
  // Dense and sparse only (their masks depend on i - j alone); sparse needs pos0 to be a
  // multiple of the pattern's period (graph_window_align), so the window has the pattern
  // those positions have in the whole sequence.
  int64_t pos0 = 0;
  // A forward nobody differentiates (Model::forward, the views; float only): every attention op
  // runs its inference kernel and reports to infer, which may name one layer to inspect; the
  // forward stops early once that layer ran (graph_hidden then returns infer->status).
  AttnInfer* infer = nullptr;
  // Checked between blocks; a set flag makes graph_hidden return a cancelled status.
  const CancelFlag* cancel = nullptr;
};

// The alignment a window start (GraphOptions::pos0) needs under cfg (resolved): the sparse
// stride / block length, 1 for dense; 0 where windows are refused (the other families, whose
// attention depends on absolute positions: LSH chunks, latents, shortening groups).
int64_t graph_window_align(const ModelConfig& cfg);

// How many leading positions of an n-token sequence one training pass of the family uses, given
// a random draw: n for most families; Perceiver AR predicts only its last M positions, so each
// pass trains one window of M whose end is drawn uniformly among M, 2M, .., n (the prefix
// before it is context), and every position is trained equally often.
int64_t graph_train_length(const ModelConfig& cfg, int64_t n, uint64_t draw);

// Trainable parameters from model weights (every spec'd tensor; vectors become (1, n)).
template <typename T>
ParamSet<T> params_from_weights(const ModelConfig& cfg, const WeightMap& w);
// Back to float tensors in the model file's shapes.
WeightMap params_to_weights(const ModelConfig& cfg, const ParamSet<float>& p);

// The final hidden rows (before the final layer norm) of x[pos0..pos0+n) and the first position
// they predict: row r predicts x[pos0 + first_row + r]. first_row is 0 except for Perceiver AR
// (max(0, n - M)).
template <typename T>
struct GraphHidden {
  Var<T> hidden;  // (n - first_row, D)
  int64_t first_row = 0;
};
template <typename T>
Expected<GraphHidden<T>> graph_hidden(Tape<T>& tape, const ModelConfig& cfg, const ParamSet<T>& p,
                                      const uint8_t* x, int64_t n, const GraphOptions& opt);

// Mean cross-entropy (nats per predicted position) of x[pos0..pos0+n): (1, 1). rows_out (may be
// null) gets the number of positions the loss averages over.
template <typename T>
Expected<Var<T>> graph_loss(Tape<T>& tape, const ModelConfig& cfg, const ParamSet<T>& p,
                            const uint8_t* x, int64_t n, const GraphOptions& opt,
                            int64_t* rows_out = nullptr);

}  // namespace attnscope::tape
