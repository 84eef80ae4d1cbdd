// Attention for training: forward that saves what its backward needs, and the backward, for
// every kind (dense causal with a query offset, Sparse Transformer block-sparse, Reformer
// shared-QK LSH). Templates over float and double (finite-difference checks).
//
// Two ways to keep what the backward needs, chosen by TrainAttnSpec::store_probs:
// - stored: the attention probabilities of every evaluated tile are kept (dense N^2/2,
//   strided N*sqrt(N), LSH N*2m per round), counted under attention scratch;
// - recomputed: only the outputs and per-row logsumexps are kept (O(N*d)) and the backward
//   recomputes each tile's probabilities from q, k and the logsumexp.
// Both give the same gradients up to rounding.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "attnscope/attention.h"
#include "attnscope/config.h"
#include "attnscope/status.h"
#include "exec/tape.h"

namespace attnscope::tape {

enum class TrainAttnKind { kCausal, kSparse, kLsh };

// What a forward that nobody differentiates (Model::forward, the views) asks of every attention
// op: run the kind's inference kernel (attn_dense_forward_cpu, attn_sparse_forward_cpu,
// attn_lsh_forward_cpu: the same values up to rounding, with their work counters and LSH trace)
// instead of the training forward, and hand one layer to an inspector.
struct AttnInfer {
  AttnStats* stats = nullptr;
  Status status;                    // the first kernel or inspector error; the graph returns it
  int inspect_layer = -1;           // the view-numbered layer (TrainAttnSpec::view_layer) fn gets
  const AttnLayerFn* fn = nullptr;  // called with that layer's q, k, v, output (and LSH trace)
  bool done = false;                // fn has run: the families skip the rest of the forward
  // Whether the rest of a forward is wasted work (inspected, or an error to report).
  bool finished() const { return done || !status.is_ok(); }
};

struct TrainAttnSpec {
  TrainAttnKind kind = TrainAttnKind::kCausal;
  // kCausal: query row m sits at absolute position q_offset + m, keys j <= q_offset + m.
  int64_t q_offset = 0;
  // kSparse: the layer's pattern (attn_sparse_set / attn_sparse_allowed), block layout.
  SparseConfig sparse;
  int layer = 0;
  // kLsh: shared QK (keys are the query rows normalised), buckets from rotations, as
  // attn_lsh_forward_cpu.
  LshSpec lsh;
  const float* rotations = nullptr;
  bool store_probs = true;
  // Inference (float only): run the inference kernel and report to infer; never recorded.
  AttnInfer* infer = nullptr;
  // How the views number and describe this layer (offsets, key space, kind_layer); the op fills
  // the pointers, sizes and trace before it calls infer->fn.
  int view_layer = -1;
  AttnLayerView view;
};

// What a forward saved for its backward; opaque outside tape_attn.cpp.
template <typename T>
struct AttnSaved;

// q (H, nq, d); k, v (H, nk, d); out (H, nq, d). For kLsh k is ignored (pass q) and
// nk = nq. Values equal the inference kernels' (attn_dense_forward_cpu,
// attn_sparse_forward_cpu, attn_lsh_forward_cpu) up to rounding. *saved receives what
// the backward needs (null: nothing saved, inference only).
template <typename T>
Status attn_train_forward(const T* q, const T* k, const T* v, T* out, int heads, int64_t nq,
                          int64_t nk, int d, const TrainAttnSpec& spec,
                          std::shared_ptr<AttnSaved<T>>* saved);
// Adds the gradients for dout (H, nq, d) into dq (H, nq, d), dk, dv (H, nk, d). For kLsh
// dk is ignored (the key gradient, through the normalisation, lands in dq).
template <typename T>
void attn_train_backward(const AttnSaved<T>& saved, const T* dout, T* dq, T* dk, T* dv);

// The op on the tape: q (nq, D), k, v (nk, D) with head h in columns h*d .. h*d+d-1 (as the
// model's projections give them); out (nq, D). For kLsh pass k = q.
template <typename T>
Var<T> attention(Tape<T>& tape, const Var<T>& q, const Var<T>& k, const Var<T>& v, int heads,
                 const TrainAttnSpec& spec);

}  // namespace attnscope::tape
