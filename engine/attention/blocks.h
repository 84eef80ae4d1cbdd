// Block attention passes shared by the dense and the Sparse Transformer kernels: a pass is a
// row order, per-row allowed key ranges and the block layout that covers them; running
// passes one after another merges disjoint key sets through the online-softmax state.
#pragma once

#include <cstdint>
#include <vector>

#include "attnscope/attention.h"
#include "attnscope/tensor.h"

namespace attnscope::detail {

// The one tile-selection rule of every block kernel (CPU inference, training, and the layouts
// the CUDA kernels are handed): query rows [qs, qe) in blocks of bq against keys [ks, ke) in
// tiles of bk aligned at ks; a tile is kept when some row's allowed keys [lo[r], hi[r]) meet
// it (a row's range must stay inside [ks, ke)). Calls tile(q0, q1, k0, k1) for every kept
// tile in order and then block(q0, q1) for each row block that kept one.
template <typename Ranges, typename TileFn, typename BlockFn>
void attn_select_tiles(const Ranges& lo, const Ranges& hi, int64_t qs, int64_t qe, int64_t ks,
                       int64_t ke, int64_t bq, int64_t bk, TileFn&& tile, BlockFn&& block) {
  for (int64_t q0 = qs; q0 < qe; q0 += bq) {
    const int64_t q1 = q0 + bq < qe ? q0 + bq : qe;
    int64_t kmin = ke, kmax = ks;
    for (int64_t r = q0; r < q1; ++r)
      if (lo[r] < hi[r]) kmin = lo[r] < kmin ? lo[r] : kmin, kmax = hi[r] > kmax ? hi[r] : kmax;
    if (kmin >= kmax) continue;
    for (int64_t k0 = ks + (kmin - ks) / bk * bk; k0 < kmax; k0 += bk) {
      const int64_t k1 = k0 + bk < ke ? k0 + bk : ke;
      bool used = false;
      for (int64_t r = q0; r < q1 && !used; ++r) used = lo[r] < hi[r] && lo[r] < k1 && hi[r] > k0;
      if (used) tile(q0, q1, k0, k1);
    }
    block(q0, q1);
  }
}

// Query rows [q0, q1) of a pass evaluate the key tiles tiles[t0 .. t1).
struct AttnRowBlock {
  int64_t q0, q1, t0, t1;
};
// Queries [qs, qe) of a pass against keys [ks, ke), laid out as row blocks [b0, b1).
struct AttnSegment {
  int64_t qs, qe, ks, ke, b0, b1;
};
// Key rows [k0, k1) of a pass, computed whole (entries outside a row's range are masked).
struct AttnKeyTile {
  int64_t k0, k1;
};

// One pass over some order of the rows. Query row r of the pass is the absolute query
// qpos[r] and key row c is the absolute key kpos[c] (an empty vector means the identity).
// Row r may attend to pass keys [lo[r], hi[r]); an empty range attends to nothing. A pass
// that permutes queries (it must permute keys too) runs segment by segment, each gathered
// into thread scratch; one that permutes only keys has them gathered once per head.
struct AttnPass {
  ScratchVector<int64_t> qpos, kpos;
  ScratchVector<int64_t> lo, hi;
  std::vector<AttnSegment> segments;
  std::vector<AttnRowBlock> rows;
  std::vector<AttnKeyTile> tiles;

  // Appends the layout of queries [qs, qe) against keys [ks, ke) with blocks of bq query
  // rows and bk keys aligned at ks. A tile is kept when some row's range meets it; a row
  // must not reach keys outside its segment. lo and hi must be filled first.
  void add_segment(int64_t qs, int64_t qe, int64_t ks, int64_t ke, int bq, int bk);
  // Score entries the layout evaluates: rows x keys of every kept tile.
  int64_t entries() const;
};

// The passes of one Sparse Transformer set (pattern; A1, A2 or their union) at length n, as
// key ranges before any tiling: the pass's query and key orders (empty: identity), each pass
// row's allowed pass keys [lo, hi), and the segments [qs, qe) x [ks, ke) to tile (a row's range
// stays inside its segment). The one definition of the patterns' pass structure: the CPU
// kernels, the training attention and the CUDA kernels each tile it with their own blocks.
struct SparsePassRanges {
  struct Segment {
    int64_t qs, qe, ks, ke;
  };
  ScratchVector<int64_t> qpos, kpos, lo, hi;
  std::vector<Segment> segments;
};
std::vector<SparsePassRanges> sparse_pass_ranges(const SparseConfig& cfg, SparseSet set, int64_t n);
// Those passes tiled with row blocks of bq query rows and key tiles of bk keys.
std::vector<AttnPass> sparse_build_passes(const SparseConfig& cfg, SparseSet set, int64_t n, int bq,
                                          int bk);

// The online-softmax state of a forward over (H, nq) query rows of width d: acc (H, nq, d)
// holds the unnormalised output, m and l (H, nq) the running max (log2 units) and sum.
struct AttnState {
  float* acc;
  ScratchVector<float> m, l;
  AttnState(float* acc_out, int heads, int64_t nq, int d);
  // acc /= l row by row; rows that saw no key become zeros.
  void finish(int d);
};

// Runs pass[h] for every head h with a pass (nullptr: the head sits this one out), adding
// its keys to the state. q is (H, nq, d); k, v are (H, nk, d) in absolute order.
void attn_pass_run(const std::vector<const AttnPass*>& pass, const float* q, const float* k,
                   const float* v, int64_t nq, int64_t nk, int d, AttnState& state,
                   AttnStats* stats);

// One query row against the keys idx[0 .. n) of a cache (idx null: keys 0 .. n-1).
// q, out are (d); kc, vc are (rows, d). No key gives zeros.
void attn_decode_row(const float* q, const float* kc, const float* vc, const int64_t* idx,
                     int64_t n, int d, float* out);

}  // namespace attnscope::detail
