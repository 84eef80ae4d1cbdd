// Attention kinds on the CPU: the naive masked oracle, dense causal, Sparse Transformer
// block-sparse (strided/fixed), Reformer LSH and the offset-causal form used for Perceiver
// AR cross-attention. Layout everywhere: q, k, v, out are (H, N, d) row-major float32 with
// 1/sqrt(d) scaling of q·k. Every kind states its allowed (i, j) pairs as a mask function so
// that tests can compare it with naive attention under that mask.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "attnscope/config.h"
#include "attnscope/status.h"

namespace attnscope {

// Counts the work a kernel really did; tests compare it with what the layout allows.
struct AttnStats {
  std::atomic<int64_t> score_entries{0};  // q·k dot products evaluated
  std::atomic<int64_t> keys_read{0};      // key rows touched by decode steps
};

// allowed(head, i, j): may query position i attend to key position j (positions absolute).
using AttnMask = std::function<bool(int head, int64_t i, int64_t j)>;

// The oracle. q is (H, Nq, d), k and v are (H, Nk, d), out is (H, Nq, d), all double.
// Rows with no allowed key get zeros.
void attn_naive_forward_f64(const double* q, const double* k, const double* v, double* out,
                            int heads, int64_t nq, int64_t nk, int d, const AttnMask& allowed);

// Dense causal attention with a query offset: query m sits at absolute position
// q_offset + m and attends to keys j <= q_offset + m (j < nk). q_offset = 0, nq = nk is
// ordinary causal self-attention; Perceiver AR's cross-attention uses q_offset = N - M.
// q is (H, nq, d); k, v are (H, nk, d); out is (H, nq, d). Tiled with an online softmax,
// no nq x nk matrix is ever stored.
Status attn_dense_forward_cpu(const float* q, const float* k, const float* v, float* out, int heads,
                              int64_t nq, int64_t nk, int d, int64_t q_offset,
                              AttnStats* stats = nullptr);

// One query per head against the first n_keys rows of a cache with row capacity cap.
// q is (H, d); kcache, vcache are (H, cap, d); out is (H, d).
void attn_dense_decode_cpu(const float* q, const float* kcache, const float* vcache, float* out,
                           int heads, int64_t cap, int64_t n_keys, int d,
                           AttnStats* stats = nullptr);

// ---- Sparse Transformer ------------------------------------------------------------------
// Which of the factorised sets a (layer, head) uses.
enum class SparseSet { kA1, kA2, kUnion };
// Ok when every kernel can run cfg: stride > 0 (0 = auto must be resolved first), block > 0,
// and for the fixed pattern a summary c in [1, stride]. Every sparse entry point checks this.
Status attn_sparse_validate(const SparseConfig& cfg);
SparseSet attn_sparse_set(const SparseConfig& cfg, int layer, int head, int heads);
// The mask of one (layer, head): strided A1(i) = {max(0, i-l+1) .. i} (the released code's l
// positions), A2(i) = {j <= i : (i-j) mod l = 0}; fixed A1(i) = {j <= i : j/l = i/l},
// A2(i) = {j <= i : j mod l >= l - c}.
bool attn_sparse_allowed(const SparseConfig& cfg, SparseSet set, int64_t i, int64_t j);
// Block-sparse forward for one layer: q, k, v, out (H, N, d). Blocks the layout leaves empty
// are never computed; stats->score_entries gets exactly attn_sparse_layout_entries().
Status attn_sparse_forward_cpu(const float* q, const float* k, const float* v, float* out,
                               int heads, int64_t n, int d, const SparseConfig& cfg, int layer,
                               AttnStats* stats = nullptr);
// Score entries the block layout of this layer evaluates at length n (all heads).
int64_t attn_sparse_layout_entries(const SparseConfig& cfg, int layer, int heads, int64_t n);
// Decode: the query at position i reads only the keys in its pattern (keys_read += |A(i)|
// per head). Caches as in attn_dense_decode_cpu, holding positions 0..i.
void attn_sparse_decode_cpu(const float* q, const float* kcache, const float* vcache, float* out,
                            int heads, int64_t cap, int64_t i, int d, const SparseConfig& cfg,
                            int layer, AttnStats* stats = nullptr);

// ---- Reformer LSH --------------------------------------------------------------------------
struct LshSpec {
  int n_hashes = 2;
  int chunk = 64;
  int n_buckets = 2;
};
// Random rotations R for one layer: (n_hashes, d, n_buckets/2), drawn from seed; shared by
// the heads of the layer.
std::vector<float> attn_lsh_rotations(uint64_t seed, int layer, int n_hashes, int d, int n_buckets);
// h(x) = argmax([xR; -xR]) for one vector x of width d under round r.
int attn_lsh_hash(const float* x, const float* rotations, int round, int d, int n_buckets);

// What the LSH forward did, for views and tests. buckets: (H, n_hashes, N) bucket per
// position; order: (H, n_hashes, N) original position at each sorted slot.
// The LSH chunk rule, stated once for the kernel, training and the views: in a round's sorted
// order the query slots of chunk c (slots c*m .. c*m+m-1) see the key slots [lo, hi), their
// chunk and the one before; causality is then checked on the original positions.
struct AttnLshWindow {
  int64_t lo, hi;
};
inline AttnLshWindow attn_lsh_window(int64_t chunk_index, int64_t m, int64_t n) {
  const int64_t lo = (chunk_index - 1) * m, hi = (chunk_index + 1) * m;
  return {lo > 0 ? lo : 0, hi < n ? hi : n};
}

struct LshTrace {
  std::vector<int> buckets;
  std::vector<int> order;
};
// Shared-QK chunked LSH attention (training-time form). qk, v, out are (H, N, d); keys are
// qk rows normalised to unit length. Per round: sort by bucket * N + position, cut into
// chunks of m, each chunk attends to itself and the previous chunk, causal on original
// positions, self only when nothing else (-1e5), rounds combined by softmax of their
// logsumexps. trace may be null. out must not alias qk or v.
Status attn_lsh_forward_cpu(const float* qk, const float* v, float* out, int heads, int64_t n,
                            int d, const LshSpec& spec, const float* rotations,
                            LshTrace* trace = nullptr, AttnStats* stats = nullptr);

// Decode scheme of trax's predict mode for one query at position i. For each round the
// query attends to the cached positions j <= i sharing its bucket, the most recent 2m of
// them (itself included); keys/values for those are given by fetch(j, k_out, v_out), which
// recomputes them from the cached layer inputs. Self only when nothing else; rounds combined
// by logsumexp. q_heads is (H, d); buckets is (n_hashes, i+1) for each head: (H, n_hashes, cap).
using LshFetch = std::function<void(int head, int64_t j, float* k, float* v)>;
void attn_lsh_decode_cpu(const float* q_heads, float* out, int heads, int d, int64_t i,
                         const LshSpec& spec, const int* buckets, int64_t cap,
                         const LshFetch& fetch, AttnStats* stats = nullptr);

// One attention layer of a forward as its kernel saw it, handed to an inspector (see
// inspect.h) while the tensors exist; every pointer is valid during the callback only.
struct AttnLayerView {
  const float* q = nullptr;  // (H, nq, d); Reformer: the shared qk rows (raw, not normalised)
  const float* k = nullptr;  // (H, nk, d); Reformer: the same rows as q
  const float* v = nullptr;  // (H, nk, d)
  const float* o = nullptr;  // (H, nq, d): the kernel's output, before the output projection
  int heads = 0, d = 0;
  int64_t nq = 0, nk = 0;
  int64_t causal_offset = 0;      // query row r may attend to key rows j <= r + causal_offset
  int64_t query_offset = 0;       // query row r serves positions query_offset + r * stride ..
  int64_t key_offset = 0;         // key row j stands for positions key_offset + j * stride ..
  int64_t stride = 1;             // positions per row: 1, or the Hourglass level's total factor
  std::string key_space;          // "positions", "inputs", "latents" or "level s"
  int kind_layer = 0;             // the layer index the kind's rule takes (sparse set, LSH rounds)
  const LshTrace* lsh = nullptr;  // Reformer: this layer's buckets and sorted order
};
// Returns a status that the inspecting call passes on.
using AttnLayerFn = std::function<Status(const AttnLayerView&)>;

}  // namespace attnscope
