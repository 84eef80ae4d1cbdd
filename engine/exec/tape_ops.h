// Differentiable ops on the training tape, one forward and one backward each (the backward
// is the closure the forward records). Templates over float (training) and double (the
// finite-difference checks); both are instantiated in tape_ops.cpp. Every op computes the
// same values as the inference ops in ops/ops.h and models/common.cpp, so a graph built
// from them reproduces Model::forward.
#pragma once

#include <cassert>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "attnscope/config.h"
#include "exec/tape.h"

namespace attnscope::tape {

// Parameters by their model-file name; each a (rows, cols) Var (vectors are (1, n)).
template <typename T>
using ParamSet = std::map<std::string, Var<T>>;

// A parameter by name from any executor's parameter map; the graph checked that every spec'd
// one is present.
template <typename M>
const typename M::mapped_type& param(const M& p, const std::string& name) {
  auto it = p.find(name);
  assert(it != p.end() && "parameter missing: did check_params run first?");
  return it->second;
}

// y (n, out) = x (n, in) · w (in, out) + b (1, out); b may be null.
template <typename T>
Var<T> linear(Tape<T>& tape, const Var<T>& x, const Var<T>& w, const Var<T>& b);
// y (n, D) = (x - mean) / sqrt(var + 1e-5) * g + b per row; g, b are (1, D).
template <typename T>
Var<T> layernorm(Tape<T>& tape, const Var<T>& x, const Var<T>& g, const Var<T>& b);
// GPT-2's tanh GELU, elementwise.
template <typename T>
Var<T> gelu(Tape<T>& tape, const Var<T>& x);
// a + b (same shape).
template <typename T>
Var<T> add(Tape<T>& tape, const Var<T>& a, const Var<T>& b);
// a * s.
template <typename T>
Var<T> scale(Tape<T>& tape, const Var<T>& a, T s);
// Rows r0 .. r0+count-1 of x.
template <typename T>
Var<T> slice_rows(Tape<T>& tape, const Var<T>& x, int64_t r0, int64_t count);
// Rows of the parts one after another (same cols).
template <typename T>
Var<T> concat_rows(Tape<T>& tape, const std::vector<Var<T>>& parts);
// The same row-major numbers seen as (rows, cols); rows * cols must equal x's count.
template <typename T>
Var<T> reshape(Tape<T>& tape, const Var<T>& x, int64_t rows, int64_t cols);

// Hourglass's row moves. y (out_rows, D): row j = x[j - shift] (zeros where that row does not
// exist).
template <typename T>
Var<T> shift_rows(Tape<T>& tape, const Var<T>& x, int64_t shift, int64_t out_rows);
// y (rows, D): the mean of each group of k consecutive rows of x (rows * k, D), summed in
// order and then scaled by 1/k.
template <typename T>
Var<T> mean_groups(Tape<T>& tape, const Var<T>& x, int64_t k);
// y (rows * k, D): row t*k + r = x[t] (repeat upsampling).
template <typename T>
Var<T> repeat_rows(Tape<T>& tape, const Var<T>& x, int64_t k);

// The inputs at positions p0 .. p0+count-1 of token sequence x (BOS at 0, x[p-1] after)
// plus their factorised position embeddings: (count, D), exactly embed_inputs().
template <typename T>
Var<T> embed(Tape<T>& tape, const ParamSet<T>& p, const ModelConfig& cfg, const uint8_t* x,
             int64_t p0, int64_t count);

// The pre-LN feed-forward half of a block under prefix ("blocks.3."): FFN(LN2 x), (n, D).
// With chunks > 1 the rows are processed in that many chunks and only one chunk's (rows, F)
// hidden activations exist at a time, in the forward and in the backward (which recomputes
// them per chunk).
template <typename T>
Var<T> ffn_block(Tape<T>& tape, const ParamSet<T>& p, const std::string& prefix, const Var<T>& x,
                 int chunks);

// Mean cross-entropy in nats of the final layer norm + logit head over hidden (n, D) against
// targets[0..n): (1, 1). With chunks > 1 the (n, 256) logits are never held whole: each
// chunk's logits are made, used and dropped, and the backward recomputes them per chunk.
template <typename T>
Var<T> head_loss(Tape<T>& tape, const ParamSet<T>& p, const Var<T>& hidden, const uint8_t* targets,
                 int chunks);
// The logits (n, 256) of the final layer norm + head (for tests and evaluation).
template <typename T>
Var<T> head_logits(Tape<T>& tape, const ParamSet<T>& p, const Var<T>& hidden);

}  // namespace attnscope::tape
