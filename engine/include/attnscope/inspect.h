// What the views show, computed by the engine on the worker thread: one query's attention
// row, a layer's connectivity pattern, Reformer's LSH buckets and kept mass, and the memory
// curve (analytic by category, measured where feasible). Views only read these results.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "attnscope/config.h"
#include "attnscope/model.h"
#include "attnscope/status.h"
#include "attnscope/tensor.h"

namespace attnscope {

// Attention layers as the views number them: dense, sparse, Reformer: blocks 0..L-1;
// Perceiver AR: 0 = the cross-attention, 1..L = the latent self-attention blocks; Hourglass:
// every block in hierarchy order (down levels, the middle, up levels). cfg must be resolved.
int inspect_layer_count(const ModelConfig& cfg);
// What attention layer `layer` (numbered as above) is, in the papers' words: "dense causal",
// "strided A1/A2, l = 64, block 32", "LSH, 2 rounds, chunk 64, 96 buckets", "cross-attention,
// 256 latents over 3072 inputs", "dense causal at shortening 3 (length 1024)".
std::string inspect_layer_kind(const ModelConfig& cfg, int layer);

// ---- the attention of one query --------------------------------------------------------
struct AttnRow {
  int heads = 0;
  int64_t keys = 0;
  // (heads, keys): each row sums to 1 over the keys the layer's rule allows and is exactly 0
  // on every other key; a head whose rule allows no key (the fixed sparse A2 before the first
  // summary column) is all 0, as the forward's output there is.
  std::vector<float> weights;
  // "positions" (dense, sparse, Reformer, Hourglass at full resolution), "inputs" (Perceiver
  // AR cross-attention), "latents" (Perceiver AR latent blocks), "level s" (Hourglass depth s).
  std::string key_space;
  // Key j stands for positions key_offset + j * key_stride .. + key_stride - 1 (clip at 0).
  // Hourglass at factor K: key_offset = 1 - K (shortening shifts right by K - 1, so key j
  // pools positions j*K - K + 1 .. j*K); Perceiver AR latents: the first latent's position.
  int64_t key_offset = 0;
  int64_t key_stride = 1;
  // The query's row in its layer: the position itself; for Perceiver AR query - first latent;
  // for Hourglass query / K, the shortened position whose upsampled output reaches query.
  int64_t query_index = 0;
  // (heads): of a dense causal softmax over the same scores and every key j <= the query's
  // causal limit, the share of probability on the keys this layer's rule attends (self at
  // -1e5 for the Reformer, as its forward scores it): 1 for dense, Perceiver AR and Hourglass
  // layers, below 1 where a sparse or LSH pattern dropped keys the query would have used.
  std::vector<double> dense_kept;
};
// What the row was checked against, for tests: values (heads, keys, d) are that layer's
// value rows and output (heads, d) the attention kernel's output at the query in the real
// forward; weights · values reproduces output.
struct AttnRowCheck {
  int d = 0;
  std::vector<float> values;
  std::vector<float> output;
};
// The attention of position `query` at `layer` for the input x[0..n) (1 <= n <= seq_len),
// under exactly the rule the forward used: causal softmax (dense, Perceiver AR, Hourglass),
// the (layer, head) mask of attn_sparse_allowed (sparse), the chunked LSH windows of
// attn_lsh_forward_cpu with rounds weighted by the softmax of their logsumexps and self at
// -1e5 (Reformer). Perceiver AR's query must be a latent (query >= n - min(M, n)). check may
// be null.
Status inspect_attention_row(const Model& m, const uint8_t* x, int64_t n, int layer, int64_t query,
                             AttnRow* out, AttnRowCheck* check = nullptr);

// ---- connectivity pattern ------------------------------------------------------------------
struct PatternImage {
  int grid = 0;  // cells per side: the requested grid, at most the number of rows and columns
  // (grid, grid), row-major, rows = queries: allowed pairs in the cell / causal pairs in the
  // cell (0 where the cell has no causal pair). Dense cells on and below the diagonal read 1.
  std::vector<float> cells;
  // (grid, grid): 1 where the cell holds any allowed pair, else 0. Max-pooled, so that one
  // strided column in a cell of 64 x 64 pairs stays visible where `cells` reads 1/64.
  std::vector<float> cells_any;
  // (grid, grid): causal pairs in the cell / all pairs in the cell. 0 = the cell lies wholly in
  // the future (no query of it may see any key of it), so a view can tell "not causal" from
  // "causal but pruned by the pattern" (cells = 0 there too).
  std::vector<float> cells_causal;
  // The axes: rows stand for `rows` queries, the first at position `row_first` of its axis (a
  // Perceiver AR latent block starts at n - latents), columns for `cols` keys from 0.
  int64_t rows = 0, cols = 0, row_first = 0;
  // Allowed pairs / (n (n + 1) / 2): the share of a dense causal layer over all n positions
  // that this layer evaluates (Perceiver AR and Hourglass layers count their own pairs).
  double density = 0.0;
  double flops_saved = 0.0;  // 1 - density
  std::string rows_label, cols_label;
};
// The pattern of (layer, head) at length n (1 <= n <= seq_len) from the config alone: dense
// and sparse from their masks (per row and cell by interval counting: O(n * grid) time, no
// n x n memory), Perceiver AR latents x inputs (layer 0) or latents x latents, Hourglass the
// layer's level (n_level x n_level). Reformer's pattern depends on the input: unsupported here,
// use inspect_pattern_lsh.
Status inspect_pattern(const ModelConfig& cfg, int layer, int head, int64_t n, int grid,
                       PatternImage* out);
// Reformer: the pattern the LSH forward used for x[0..n) at (layer, head): the union over
// rounds of each query's chunk and the chunk before, causal, from the forward's own buckets.
Status inspect_pattern_lsh(const Model& m, const uint8_t* x, int64_t n, int layer, int head,
                           int grid, PatternImage* out);

// ---- Reformer LSH --------------------------------------------------------------------------
struct LshInspect {
  int heads = 0, n_hashes = 0, n_buckets = 0, chunk = 0;
  int64_t n = 0;
  std::vector<int> buckets;  // (heads, n_hashes, n): bucket of each position
  std::vector<int> order;    // (heads, n_hashes, n): the position at each sorted slot
  // (heads): of the dense causal attention of every query (softmax over all j <= i of the
  // same shared-QK scores, self at -1e5), the share of probability mass on keys that the LSH
  // pattern attends to in any round, averaged over the n queries.
  std::vector<double> kept_mass;
  std::vector<double> kept_mass_round;  // (heads, n_hashes): the same for each round alone
};
// O(n^2 d) per head for the kept mass. Non-Reformer models: unsupported.
Status inspect_lsh(const Model& m, const uint8_t* x, int64_t n, int layer, LshInspect* out);

// ---- memory curve ----------------------------------------------------------------------------
// Bytes by MemCategory (weights, activations, attention scratch, caches).
using MemBytes = std::array<double, static_cast<size_t>(MemCategory::kCount)>;
struct MemoryPoint {
  int64_t length = 0;
  // Analytic inference peak for this family and the base's widths at this length: weights;
  // activations = the peak of the ledger's tensors in one forward (from the family's own
  // allocation sequence); attention scratch = the length-dependent part of the kernels'
  // working set (online-softmax state, pass layouts, LSH buckets and sort; the measured figure
  // adds the kernels' fixed per-thread tiles, about 140 KB on this machine);
  // caches = the decode state for decoding up to this length.
  MemBytes estimate{};
  // A dense causal transformer of the base's layers and heads that stores every attention
  // matrix (L * H * N^2 floats), as a training step without recomputation does: the seeds'
  // "stored" figure. Our forwards never build it (dense is tiled, no N x N matrix).
  double dense_stored_attention = 0.0;
  // Measured on this machine when asked and length <= kInspectMeasureMax: peak bytes above
  // the pre-forward level per category during one forward of random tokens (weights:
  // the model's own bytes); caches: the bytes
  // decode_begin() allocates for this length.
  bool measured = false;
  MemBytes measured_bytes{};
};
constexpr int64_t kInspectMeasureMax = 16384;

// ---- memory guard ------------------------------------------------------------------------------
// The bytes this process may still take: the machine's physical memory, or what is left under
// the address-space limit (ulimit -v) when that is lower; what names the binding one.
uint64_t memory_limit_bytes(std::string* what = nullptr);
// Refuses, before anything is allocated, running cfg (resolved) when the analytic peak (the
// memory curve's estimate: decode, weights + caches at full length; otherwise one forward,
// weights + activations + attention scratch) exceeds memory_limit_bytes(); the message names
// both figures.
// doing names the work ("generating", "evaluating").
Status memory_check_inference(const ModelConfig& cfg, const std::string& doing, bool decode);
// Each length is modelled as the base config with a text modality of that many bytes
// (auto pos_width, Reformer auto buckets and Perceiver AR latents capped at the length; the
// factorised position tables are the only weights that change). Lengths the config cannot
// take are skipped. cancel (may be null) stops between measurements: the points so far.
std::vector<MemoryPoint> inspect_memory_curve(const ModelConfig& base,
                                              const std::vector<int64_t>& lengths, bool measure,
                                              const std::atomic<bool>* cancel);

}  // namespace attnscope
