// Attention for training: the tiled forward that keeps either every evaluated tile's
// probabilities or only the per-row logsumexps, its exact backward (recomputing tiles when
// nothing was kept), and the tape op over (n, D) head-interleaved matrices.
#include "exec/tape_attn.h"

#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>

#include "attention/blocks.h"
#include "attention/fast_exp.h"
#include "attention/lsh_rule.h"
#include "ops/ops.h"

namespace attnscope::tape {

namespace {

// Query rows and keys of a dense tile.
constexpr int64_t kTile = 64;
using detail::kLshNormFloor;
using detail::kLshSelfScore;
// Multiply-adds below which a call runs on one thread (threads cost more than they save).
constexpr int64_t kParallelWork = int64_t{1} << 18;

// One head-strided matrix: row i of head h starts at p + h * hs + i * ld.
template <typename P>
struct HeadView {
  P* p = nullptr;
  int64_t hs = 0, ld = 0;
  P* row(int h, int64_t i) const { return p + h * hs + i * ld; }
};

// A tile of a pass: pass rows [r0, r1) against pass keys [c0, c1); off and roff are where its
// probabilities and its row maxima start in the pass's share of the head's store.
struct Tile {
  int64_t r0, r1, c0, c1, off, roff;
};

// One pass over some order of the rows: pass row r is the query q(r), pass key c the key k(c)
// (empty vectors: identity). Non-LSH passes allow pass keys [lo[r], hi[r]) to row r; LSH passes
// (qpos = kpos = the round's sort order) allow earlier original positions, with the constant
// self score for the query itself.
struct Pass {
  ScratchVector<int64_t> qpos, kpos, lo, hi;
  bool lsh = false;
  std::vector<Tile> tiles;
  int64_t size = 0;  // probabilities of all tiles
  int64_t rows = 0;  // tile rows of all tiles
  int64_t q(int64_t r) const { return qpos.empty() ? r : qpos[r]; }
  int64_t k(int64_t c) const { return kpos.empty() ? c : kpos[c]; }

  // Tiles for pass rows [qs, qe) against pass keys [ks, ke): detail::attn_select_tiles, the
  // rule the inference kernels tile with.
  void add_segment(int64_t qs, int64_t qe, int64_t ks, int64_t ke, int64_t bq, int64_t bk) {
    detail::attn_select_tiles(
        lo, hi, qs, qe, ks, ke, bq, bk,
        [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) { add_tile(r0, r1, c0, c1); },
        [](int64_t, int64_t) {});
  }
  void add_tile(int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    tiles.push_back({r0, r1, c0, c1, size, rows});
    size += (r1 - r0) * (c1 - c0);
    rows += r1 - r0;
  }
};

}  // namespace

template <typename T>
struct AttnSaved {
  TrainAttnKind kind = TrainAttnKind::kCausal;
  int heads = 0;
  int64_t nq = 0, nk = 0;
  int d = 0;
  bool store = true;
  bool parallel = true;  // enough work for the OpenMP team
  // Inputs and output as the backward reads them; for kLsh k is unused (keys come from q).
  HeadView<const T> q, k, v, out;
  // Copies behind the views when the caller's buffers may not outlive the forward.
  ActivationVector<T> own_q, own_k, own_v, own_out;
  // The passes (shared by heads with the same pattern) and which of them each head runs.
  std::vector<std::unique_ptr<Pass>> pool;
  std::vector<std::vector<const Pass*>> head_passes;
  // Per head (store): probabilities of every tile of its passes, one pass after another, as
  // exp(s - tile row max), and those row maxima (one per tile row): P = probs * exp(max - lse).
  std::vector<ScratchVector<T>> probs, tmax;
  // lse (H, nq): logsumexp of each query row over all its entries (-inf: no key).
  ScratchVector<T> lse;
  // kLsh: inv_norm (H, n) 1 / sqrt(max(|x|^2, 1e-6)); floored (H, n) whether the floor won.
  ScratchVector<T> inv_norm;
  ScratchVector<char> floored;
};

namespace {

// ---- small dense products: oneDNN sgemm for float, loops for double
// -------------------------

// Leading dimensions: a's rows are lda apart, b's ldb; c is dense (ld n).
// c (m, n) = a (m, k) · b (n, k)^T.
template <typename T>
void mm_nt(const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t m, int64_t k,
           int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    dnnl_sgemm('N', 'T', m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, n);
  } else {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        T s = 0;
        for (int64_t t = 0; t < k; ++t) s += a[i * lda + t] * b[j * ldb + t];
        c[i * n + j] = s;
      }
  }
}
// c (m, n) = a (m, k) · b (k, n).
template <typename T>
void mm_nn(const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t m, int64_t k,
           int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    dnnl_sgemm('N', 'N', m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, n);
  } else {
    std::fill_n(c, m * n, T(0));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t t = 0; t < k; ++t) {
        const T av = a[i * lda + t];
        if (av == T(0)) continue;
        for (int64_t j = 0; j < n; ++j) c[i * n + j] += av * b[t * ldb + j];
      }
  }
}
// c (m, n) = a (k, m)^T · b (k, n).
template <typename T>
void mm_tn(const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t m, int64_t k,
           int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    dnnl_sgemm('T', 'N', m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, n);
  } else {
    std::fill_n(c, m * n, T(0));
    for (int64_t t = 0; t < k; ++t)
      for (int64_t i = 0; i < m; ++i) {
        const T av = a[t * lda + i];
        if (av == T(0)) continue;
        for (int64_t j = 0; j < n; ++j) c[i * n + j] += av * b[t * ldb + j];
      }
  }
}

// e^x for x <= 0 (softmax entries); the kernels' vectorised form for float.
template <typename T>
inline T exp_nonpos(T x) {
  if constexpr (std::is_same_v<T, float>)
    return exp2_nonpos(x * 1.4426950408889634f);
  else
    return std::exp(x);
}

constexpr double kInf = std::numeric_limits<double>::infinity();

Status check_args(int heads, int64_t nq, int64_t nk, int d, const TrainAttnSpec& spec) {
  if (heads < 1 || d < 1 || nq < 0 || nk < 0)
    return invalid_argument("train attention: heads and d must be >= 1, lengths >= 0");
  if (spec.kind == TrainAttnKind::kSparse) {
    ATTN_RETURN_IF_ERROR(attn_sparse_validate(spec.sparse));
    if (nq != nk) return invalid_argument("train attention: sparse needs nq == nk");
  }
  if (spec.kind == TrainAttnKind::kLsh) {
    const LshSpec& l = spec.lsh;
    if (l.n_hashes < 1 || l.chunk < 1 || l.n_buckets < 2 || l.n_buckets % 2 != 0)
      return invalid_argument(
          "train attention: lsh needs n_hashes >= 1, chunk >= 1 and an even "
          "n_buckets >= 2, got n_buckets " +
          std::to_string(l.n_buckets));
    if (!spec.rotations) return invalid_argument("train attention: lsh needs rotations");
    if (nq != nk) return invalid_argument("train attention: lsh needs nq == nk");
  }
  return Status::ok();
}

// The passes of one Sparse Transformer set at length n: the inference kernel's pass structure
// (detail::sparse_pass_ranges) tiled with blocks of cfg.block rows and keys.
std::vector<std::unique_ptr<Pass>> sparse_passes(const SparseConfig& cfg, SparseSet set,
                                                 int64_t n) {
  std::vector<std::unique_ptr<Pass>> passes;
  for (detail::SparsePassRanges& r : detail::sparse_pass_ranges(cfg, set, n)) {
    auto p = std::make_unique<Pass>();
    p->qpos = std::move(r.qpos);
    p->kpos = std::move(r.kpos);
    p->lo = std::move(r.lo);
    p->hi = std::move(r.hi);
    for (const detail::SparsePassRanges::Segment& g : r.segments)
      p->add_segment(g.qs, g.qe, g.ks, g.ke, cfg.block, cfg.block);
    passes.push_back(std::move(p));
  }
  return passes;
}

// attn_lsh_hash of x (d) under one round's rotation rot (d, half), computed column-parallel:
// each projection still sums x_k r_kc in double with k ascending, and every product of two
// floats is exact in double, so the projections, and the bucket, are bit for bit the same. p is
// scratch (half).
int lsh_bucket(const float* x, const float* rot, int half, int d, double* p) {
  std::fill_n(p, half, 0.0);
  for (int k = 0; k < d; ++k) {
    const double xk = x[k];
    const float* rk = rot + static_cast<size_t>(k) * half;
#pragma omp simd
    for (int c = 0; c < half; ++c) p[c] += xk * static_cast<double>(rk[c]);
  }
  int arg_max = 0, arg_min = 0;
  double p_max = -kInf, p_min = kInf;
  for (int c = 0; c < half; ++c) {
    if (p[c] > p_max) p_max = p[c], arg_max = c;
    if (p[c] < p_min) p_min = p[c], arg_min = c;
  }
  return -p_min > p_max ? half + arg_min : arg_max;
}

// Builds the passes of every head; for kLsh also the key norms and the per-round sort. qk is
// the query view (LSH hashes its rows).
template <typename T>
void build_layout(AttnSaved<T>& s, const TrainAttnSpec& spec) {
  const int H = s.heads;
  const int64_t nq = s.nq, nk = s.nk;
  s.head_passes.assign(static_cast<size_t>(H), {});
  if (s.kind == TrainAttnKind::kCausal) {
    auto p = std::make_unique<Pass>();
    p->lo.assign(static_cast<size_t>(nq), 0);
    p->hi.resize(static_cast<size_t>(nq));
    for (int64_t i = 0; i < nq; ++i) p->hi[i] = std::clamp<int64_t>(spec.q_offset + i + 1, 0, nk);
    p->add_segment(0, nq, 0, nk, kTile, kTile);
    for (int h = 0; h < H; ++h) s.head_passes[h].push_back(p.get());
    s.pool.push_back(std::move(p));
    return;
  }
  if (s.kind == TrainAttnKind::kSparse) {
    for (int h = 0; h < H; ++h) {
      const SparseSet set = attn_sparse_set(spec.sparse, spec.layer, h, H);
      int first = -1;
      for (int g = 0; g < h && first < 0; ++g)
        if (attn_sparse_set(spec.sparse, spec.layer, g, H) == set) first = g;
      if (first >= 0) {
        s.head_passes[h] = s.head_passes[first];
        continue;
      }
      for (auto& p : sparse_passes(spec.sparse, set, nq)) {
        s.head_passes[h].push_back(p.get());
        s.pool.push_back(std::move(p));
      }
    }
    return;
  }
  // kLsh: norms (H, n), buckets by attn_lsh_hash (a float copy of the row for double), a stable
  // counting sort per round (= by bucket * N + position), chunks of m attending to themselves
  // and the previous chunk, in query tiles of at most kTile rows.
  const int64_t n = nq, m = spec.lsh.chunk;
  const int R = spec.lsh.n_hashes, nb = spec.lsh.n_buckets;
  s.inv_norm.resize(static_cast<size_t>(H * n));
  s.floored.resize(static_cast<size_t>(H * n));
  s.pool.resize(static_cast<size_t>(H) * R);
  const bool par = int64_t{H} * n * R * (s.d + nb) >= kParallelWork;
#pragma omp parallel for schedule(dynamic) if (par)
  for (int h = 0; h < H; ++h) {
    std::vector<float> xf(static_cast<size_t>(s.d));
    std::vector<double> proj(static_cast<size_t>(nb / 2));
    ScratchVector<int> bucket(static_cast<size_t>(n));
    ScratchVector<int64_t> start(static_cast<size_t>(nb) + 1);
    for (int64_t i = 0; i < n; ++i) {
      const T* x = s.q.row(h, i);
      double ss = 0.0;
      for (int c = 0; c < s.d; ++c) ss += static_cast<double>(x[c]) * x[c];
      s.inv_norm[h * n + i] = static_cast<T>(1.0 / detail::lsh_key_norm(ss));
      s.floored[h * n + i] = ss < kLshNormFloor ? 1 : 0;
    }
    for (int r = 0; r < R; ++r) {
      const float* rot = spec.rotations + static_cast<size_t>(r) * s.d * (nb / 2);
      for (int64_t i = 0; i < n; ++i) {
        const T* x = s.q.row(h, i);
        if constexpr (std::is_same_v<T, float>) {
          bucket[i] = lsh_bucket(x, rot, nb / 2, s.d, proj.data());
        } else {
          for (int c = 0; c < s.d; ++c) xf[c] = static_cast<float>(x[c]);
          bucket[i] = lsh_bucket(xf.data(), rot, nb / 2, s.d, proj.data());
        }
      }
      auto p = std::make_unique<Pass>();
      p->lsh = true;
      p->qpos.resize(static_cast<size_t>(n));
      std::fill(start.begin(), start.end(), 0);
      for (int64_t j = 0; j < n; ++j) ++start[bucket[j] + 1];
      for (int b = 0; b < nb; ++b) start[b + 1] += start[b];
      for (int64_t j = 0; j < n; ++j) p->qpos[start[bucket[j]]++] = j;
      p->kpos = p->qpos;
      for (int64_t q0 = 0; q0 < n; q0 += m) {
        const int64_t q1 = std::min(n, q0 + m);
        const AttnLshWindow w = attn_lsh_window(q0 / m, m, n);
        for (int64_t r0 = q0; r0 < q1; r0 += kTile)
          p->add_tile(r0, std::min(q1, r0 + kTile), w.lo, w.hi);
      }
      s.pool[static_cast<size_t>(h) * R + r] = std::move(p);
    }
  }
  for (int h = 0; h < H; ++h)
    for (int r = 0; r < R; ++r)
      s.head_passes[h].push_back(s.pool[static_cast<size_t>(h) * R + r].get());
}

// Per-thread buffers of one tile: gathered rows and the tile's matrices.
template <typename T>
struct TileScratch {
  ScratchVector<T> qg, kg, vg, og, S, P2, a, b, c;
  ScratchVector<char> self;  // LSH: entry is the query's own constant score
  // The tile's query, key, value and output-gradient rows: in place when the pass keeps their
  // order, else gathered into qg, kg, vg, og; ld* are their row strides.
  const T *qp = nullptr, *kp = nullptr, *vp = nullptr, *dop = nullptr;
  int64_t ldq = 0, ldk = 0, ldv = 0, lddo = 0;
  TileScratch(int64_t rows, int64_t cols, int d) {
    const size_t rd = static_cast<size_t>(rows * d), cd = static_cast<size_t>(cols * d);
    const size_t rc = static_cast<size_t>(rows * cols);
    qg.resize(rd), kg.resize(cd), vg.resize(cd), og.resize(rd), S.resize(rc), P2.resize(rc);
    a.resize(rd), b.resize(cd), c.resize(cd), self.resize(rc);
  }
};

// Points w at the tile's queries, keys (LSH: normalised query rows) and values of head h,
// gathering rows the pass permutes.
template <typename T>
void gather(const AttnSaved<T>& s, const Pass& p, const Tile& t, int h, TileScratch<T>& w) {
  const int d = s.d;
  if (p.qpos.empty()) {
    w.qp = s.q.row(h, t.r0), w.ldq = s.q.ld;
  } else {
    for (int64_t r = t.r0; r < t.r1; ++r)
      std::copy_n(s.q.row(h, p.q(r)), d, w.qg.data() + (r - t.r0) * d);
    w.qp = w.qg.data(), w.ldq = d;
  }
  if (p.kpos.empty() && s.kind != TrainAttnKind::kLsh) {
    w.kp = s.k.row(h, t.c0), w.ldk = s.k.ld;
    w.vp = s.v.row(h, t.c0), w.ldv = s.v.ld;
    return;
  }
  for (int64_t c = t.c0; c < t.c1; ++c) {
    const int64_t j = p.k(c);
    T* kd = w.kg.data() + (c - t.c0) * d;
    if (s.kind == TrainAttnKind::kLsh) {
      const T* x = s.q.row(h, j);
      const T inv = s.inv_norm[h * s.nq + j];
      for (int e = 0; e < d; ++e) kd[e] = x[e] * inv;
    } else {
      std::copy_n(s.k.row(h, j), d, kd);
    }
    std::copy_n(s.v.row(h, j), d, w.vg.data() + (c - t.c0) * d);
  }
  w.kp = w.kg.data(), w.ldk = d;
  w.vp = w.vg.data(), w.ldv = d;
}

// S (nr, nc) = scaled scores of the gathered tile, masked with -inf; LSH self entries get the
// constant score and are flagged in w.self.
template <typename T>
void tile_scores(const AttnSaved<T>& s, const Pass& p, const Tile& t, TileScratch<T>& w) {
  const int64_t nr = t.r1 - t.r0, nc = t.c1 - t.c0;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(s.d)));
  const T ninf = static_cast<T>(-kInf);
  mm_nt(w.qp, w.ldq, w.kp, w.ldk, w.S.data(), nr, s.d, nc);
  for (int64_t a = 0; a < nr; ++a) {
    T* sr = w.S.data() + a * nc;
    if (p.lsh) {
      const int64_t i = p.q(t.r0 + a);
      char* fl = w.self.data() + a * nc;
      const int64_t* kp = p.kpos.data() + t.c0;
      const T self = static_cast<T>(kLshSelfScore);
#pragma omp simd
      for (int64_t b = 0; b < nc; ++b) {
        sr[b] = kp[b] < i ? sr[b] * scale : kp[b] == i ? self : ninf;
        fl[b] = kp[b] == i ? 1 : 0;
      }
    } else {
      const int64_t lo = p.lo[t.r0 + a] - t.c0, hi = p.hi[t.r0 + a] - t.c0;
#pragma omp simd
      for (int64_t b = 0; b < nc; ++b) sr[b] = b >= lo && b < hi ? sr[b] * scale : ninf;
    }
  }
}

// The probabilities P (nr, nc) of a tile from its scores in w.S and the rows' lse.
template <typename T>
void probs_from_scores(const AttnSaved<T>& s, const Pass& p, const Tile& t, int h, const T* S,
                       T* P) {
  const int64_t nr = t.r1 - t.r0, nc = t.c1 - t.c0;
  for (int64_t a = 0; a < nr; ++a) {
    const T l = s.lse[h * s.nq + p.q(t.r0 + a)];
    const T* sr = S + a * nc;
    T* pr = P + a * nc;
    if (l == static_cast<T>(-kInf)) {
      std::fill_n(pr, nc, T(0));
      continue;
    }
#pragma omp simd
    for (int64_t b = 0; b < nc; ++b) pr[b] = exp_nonpos(std::min(sr[b] - l, T(0)));
  }
}

// Unit of forward work: head h, tiles [tb, te) of pass ps (all passes of the head when whole).
// Units own their query rows, so they run in parallel.
struct Unit {
  int h;
  size_t ps;
  size_t tb, te;
  bool whole;
};

// The forward into out (written as a view); s holds the layout and receives lse and, when
// s.store, the probabilities.
template <typename T>
void run_forward(AttnSaved<T>& s, HeadView<T> out) {
  const int H = s.heads, d = s.d;
  const int64_t nq = s.nq;
  s.lse.assign(static_cast<size_t>(H * nq), static_cast<T>(-kInf));
  ScratchVector<T> lsum(static_cast<size_t>(H * nq), T(0));
  for (int h = 0; h < H; ++h)
    for (int64_t i = 0; i < nq; ++i) std::fill_n(out.row(h, i), d, T(0));
  if (s.store) {
    s.probs.resize(static_cast<size_t>(H));
    s.tmax.resize(static_cast<size_t>(H));
    for (int h = 0; h < H; ++h) {
      int64_t total = 0, rows = 0;
      for (const Pass* p : s.head_passes[h]) total += p->size, rows += p->rows;
      s.probs[h].resize(static_cast<size_t>(total));
      s.tmax[h].resize(static_cast<size_t>(rows));
    }
  }
  int64_t max_r = 1, max_c = 1;
  std::vector<Unit> units;
  for (int h = 0; h < H; ++h) {
    for (const Pass* p : s.head_passes[h])
      for (const Tile& t : p->tiles)
        max_r = std::max(max_r, t.r1 - t.r0), max_c = std::max(max_c, t.c1 - t.c0);
    if (s.kind == TrainAttnKind::kCausal && !s.head_passes[h].empty()) {
      const auto& tiles = s.head_passes[h][0]->tiles;
      for (size_t a = 0; a < tiles.size();) {
        size_t b = a;
        while (b < tiles.size() && tiles[b].r0 == tiles[a].r0) ++b;
        units.push_back({h, 0, a, b, false});
        a = b;
      }
    } else {
      units.push_back({h, 0, 0, 0, true});
    }
  }
  int64_t work = 0;
  for (int h = 0; h < H; ++h)
    for (const Pass* p : s.head_passes[h]) work += p->size * d;
  s.parallel = work >= kParallelWork;
  // m (running max) lives in s.lse until the rows are finished.
  T* mrow = s.lse.data();
#pragma omp parallel if (s.parallel)
  {
    TileScratch<T> w(max_r, max_c, d);
#pragma omp for schedule(dynamic)
    for (size_t u = 0; u < units.size(); ++u) {
      const Unit& un = units[u];
      const int h = un.h;
      int64_t base = 0, rbase = 0;
      for (size_t ps = 0; ps < s.head_passes[h].size(); ++ps) {
        const Pass& p = *s.head_passes[h][ps];
        if (!un.whole && ps != un.ps) {
          base += p.size, rbase += p.rows;
          continue;
        }
        const size_t tb = un.whole ? 0 : un.tb, te = un.whole ? p.tiles.size() : un.te;
        for (size_t ti = tb; ti < te; ++ti) {
          const Tile& t = p.tiles[ti];
          const int64_t nr = t.r1 - t.r0, nc = t.c1 - t.c0;
          gather(s, p, t, h, w);
          tile_scores(s, p, t, w);
          // Row max tm and sum tl of the tile; P2 = exp(S - tm).
          for (int64_t a = 0; a < nr; ++a) {
            const T* sr = w.S.data() + a * nc;
            T* pr = w.P2.data() + a * nc;
            T tm = static_cast<T>(-kInf);
#pragma omp simd reduction(max : tm)
            for (int64_t b = 0; b < nc; ++b) tm = sr[b] > tm ? sr[b] : tm;
            w.a[a] = tm;
            if (tm == static_cast<T>(-kInf)) {
              std::fill_n(pr, nc, T(0));
              continue;
            }
#pragma omp simd
            for (int64_t b = 0; b < nc; ++b) pr[b] = exp_nonpos(sr[b] - tm);
          }
          if (s.store) {
            std::copy_n(w.P2.data(), nr * nc, s.probs[h].data() + base + t.off);
            std::copy_n(w.a.data(), nr, s.tmax[h].data() + rbase + t.roff);
          }
          // og (nr, d) = P2 (nr, nc) · V (nc, d), merged into each row's running state.
          mm_nn(w.P2.data(), nc, w.vp, w.ldv, w.og.data(), nr, nc, d);
          for (int64_t a = 0; a < nr; ++a) {
            const T tm = w.a[a];
            if (tm == static_cast<T>(-kInf)) continue;
            T tl = 0;
            const T* pr = w.P2.data() + a * nc;
#pragma omp simd reduction(+ : tl)
            for (int64_t b = 0; b < nc; ++b) tl += pr[b];
            const int64_t i = p.q(t.r0 + a);
            T& m = mrow[h * nq + i];
            T& l = lsum[h * nq + i];
            const T nm = std::max(m, tm);
            const T fa = m == static_cast<T>(-kInf) ? T(0) : static_cast<T>(std::exp(m - nm));
            const T fb = static_cast<T>(std::exp(tm - nm));
            T* o = out.row(h, i);
            const T* og = w.og.data() + a * d;
#pragma omp simd
            for (int e = 0; e < d; ++e) o[e] = o[e] * fa + og[e] * fb;
            l = l * fa + tl * fb;
            m = nm;
          }
        }
        base += p.size, rbase += p.rows;
      }
    }
  }
  // Finish: out /= l; lse = m + log l (-inf for rows without keys).
#pragma omp parallel for schedule(static) if (s.parallel)
  for (int64_t hi = 0; hi < H * nq; ++hi) {
    const int h = static_cast<int>(hi / nq);
    const int64_t i = hi % nq;
    T* o = out.row(h, i);
    if (lsum[hi] > T(0)) {
      const T inv = T(1) / lsum[hi];
      for (int e = 0; e < d; ++e) o[e] *= inv;
      mrow[hi] = mrow[hi] + static_cast<T>(std::log(static_cast<double>(lsum[hi])));
    } else {
      std::fill_n(o, d, T(0));
      mrow[hi] = static_cast<T>(-kInf);
    }
  }
}

// The backward: dout, dq, dk, dv are views (null pointers: gradient not wanted).
template <typename T>
void run_backward(const AttnSaved<T>& s, HeadView<const T> dout, HeadView<T> dq, HeadView<T> dk,
                  HeadView<T> dv) {
  const int H = s.heads, d = s.d;
  const int64_t nq = s.nq;
  const bool lsh = s.kind == TrainAttnKind::kLsh;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(d)));
  int64_t max_r = 1, max_c = 1;
  for (int h = 0; h < H; ++h)
    for (const Pass* p : s.head_passes[h])
      for (const Tile& t : p->tiles)
        max_r = std::max(max_r, t.r1 - t.r0), max_c = std::max(max_c, t.c1 - t.c0);
  const bool want_q = dq.p != nullptr, want_k = lsh ? want_q : dk.p != nullptr;
  const bool want_v = dv.p != nullptr;
  if (!want_q && !want_k && !want_v) return;
#pragma omp parallel if (s.parallel)
  {
    TileScratch<T> w(max_r, max_c, d);
    // D (nq): rowsum(dO * O); dkn (n, d): LSH gradient of the normalised keys.
    ScratchVector<T> D(static_cast<size_t>(nq));
    ScratchVector<T> dkn(lsh && want_k ? static_cast<size_t>(nq) * d : 0);
    ScratchVector<T> dS(static_cast<size_t>(max_r * max_c));
#pragma omp for schedule(dynamic)
    for (int h = 0; h < H; ++h) {
      for (int64_t i = 0; i < nq; ++i) {
        const T* go = dout.row(h, i);
        const T* o = s.out.row(h, i);
        T acc = 0;
        for (int e = 0; e < d; ++e) acc += go[e] * o[e];
        D[i] = acc;
      }
      std::fill(dkn.begin(), dkn.end(), T(0));
      int64_t base = 0, rbase = 0;
      for (const Pass* pp : s.head_passes[h]) {
        const Pass& p = *pp;
        for (const Tile& t : p.tiles) {
          const int64_t nr = t.r1 - t.r0, nc = t.c1 - t.c0;
          gather(s, p, t, h, w);
          if (p.qpos.empty()) {
            w.dop = dout.row(h, t.r0), w.lddo = dout.ld;
          } else {
            for (int64_t r = t.r0; r < t.r1; ++r)
              std::copy_n(dout.row(h, p.q(r)), d, w.og.data() + (r - t.r0) * d);
            w.dop = w.og.data(), w.lddo = d;
          }
          // P (nr, nc) in w.P2.
          if (s.store) {
            // P = stored exp(s - tile max) * exp(tile max - lse), row by row.
            const T* st = s.probs[h].data() + base + t.off;
            const T* tm = s.tmax[h].data() + rbase + t.roff;
            for (int64_t a = 0; a < nr; ++a) {
              const T l = s.lse[h * nq + p.q(t.r0 + a)];
              const T f = tm[a] == static_cast<T>(-kInf) || l == static_cast<T>(-kInf)
                              ? T(0)
                              : static_cast<T>(std::exp(std::min(tm[a] - l, T(0))));
              T* pr = w.P2.data() + a * nc;
              const T* sr = st + a * nc;
#pragma omp simd
              for (int64_t b = 0; b < nc; ++b) pr[b] = sr[b] * f;
            }
            if (lsh)
              for (int64_t a = 0; a < nr; ++a)
                for (int64_t b = 0; b < nc; ++b)
                  w.self[a * nc + b] = p.k(t.c0 + b) == p.q(t.r0 + a) ? 1 : 0;
          } else {
            tile_scores(s, p, t, w);
            probs_from_scores(s, p, t, h, w.S.data(), w.P2.data());
          }
          // dV (nc, d) = P^T · dO.
          if (want_v) {
            mm_tn(w.P2.data(), nc, w.dop, w.lddo, w.c.data(), nc, nr, d);
            for (int64_t b = 0; b < nc; ++b) {
              T* g = dv.row(h, p.k(t.c0 + b));
              const T* src = w.c.data() + b * d;
              for (int e = 0; e < d; ++e) g[e] += src[e];
            }
          }
          if (!want_q && !want_k) continue;
          // dP (nr, nc) = dO · V^T; dS = P (dP - D) scale, zero on constant (self) entries.
          mm_nt(w.dop, w.lddo, w.vp, w.ldv, dS.data(), nr, d, nc);
          for (int64_t a = 0; a < nr; ++a) {
            const T Di = D[p.q(t.r0 + a)];
            T* ds = dS.data() + a * nc;
            const T* pr = w.P2.data() + a * nc;
#pragma omp simd
            for (int64_t b = 0; b < nc; ++b) ds[b] = pr[b] * (ds[b] - Di) * scale;
            if (lsh) {
              const char* fl = w.self.data() + a * nc;
              for (int64_t b = 0; b < nc; ++b)
                if (fl[b]) ds[b] = T(0);
            }
          }
          // dQ (nr, d) = dS · K; dK (nc, d) = dS^T · Q.
          if (want_q) {
            mm_nn(dS.data(), nc, w.kp, w.ldk, w.a.data(), nr, nc, d);
            for (int64_t a = 0; a < nr; ++a) {
              T* g = dq.row(h, p.q(t.r0 + a));
              const T* src = w.a.data() + a * d;
              for (int e = 0; e < d; ++e) g[e] += src[e];
            }
          }
          if (want_k) {
            mm_tn(dS.data(), nc, w.qp, w.ldq, w.b.data(), nc, nr, d);
            for (int64_t b = 0; b < nc; ++b) {
              const int64_t j = p.k(t.c0 + b);
              T* g = lsh ? dkn.data() + j * d : dk.row(h, j);
              const T* src = w.b.data() + b * d;
              for (int e = 0; e < d; ++e) g[e] += src[e];
            }
          }
        }
        base += p.size, rbase += p.rows;
      }
      // LSH: keys are x / r with r = sqrt(max(|x|^2, 1e-6)); dx = (dkn - kn (kn·dkn)) / r, or
      // dkn / r where the floor holds r constant. The key gradient lands in dq.
      if (lsh && want_k) {
        for (int64_t j = 0; j < nq; ++j) {
          const T* x = s.q.row(h, j);
          const T inv = s.inv_norm[h * nq + j];
          const T* g = dkn.data() + j * d;
          T proj = 0;
          if (!s.floored[h * nq + j])
            for (int e = 0; e < d; ++e) proj += x[e] * inv * g[e];
          T* gq = dq.row(h, j);
          for (int e = 0; e < d; ++e) gq[e] += (g[e] - x[e] * inv * proj) * inv;
        }
      }
    }
  }
}

// Copies an (H, n, d) buffer into owned storage and returns its view.
template <typename T>
HeadView<const T> own(ActivationVector<T>& dst, const T* src, int heads, int64_t n, int d) {
  dst.assign(src, src + static_cast<size_t>(heads) * n * d);
  return {dst.data(), n * d, d};
}

}  // namespace

template <typename T>
Status attn_train_forward(const T* q, const T* k, const T* v, T* out, int heads, int64_t nq,
                          int64_t nk, int d, const TrainAttnSpec& spec,
                          std::shared_ptr<AttnSaved<T>>* saved) {
  if (spec.kind == TrainAttnKind::kLsh) k = q, nk = nq;
  ATTN_RETURN_IF_ERROR(check_args(heads, nq, nk, d, spec));
  auto s = std::make_shared<AttnSaved<T>>();
  s->kind = spec.kind;
  s->heads = heads;
  s->nq = nq;
  s->nk = nk;
  s->d = d;
  s->store = saved != nullptr && spec.store_probs;
  if (saved) {
    s->q = own(s->own_q, q, heads, nq, d);
    s->k = own(s->own_k, k, heads, nk, d);
    s->v = own(s->own_v, v, heads, nk, d);
  } else {
    s->q = {q, nq * d, d};
    s->k = {k, nk * d, d};
    s->v = {v, nk * d, d};
  }
  build_layout(*s, spec);
  run_forward(*s, HeadView<T>{out, nq * d, d});
  if (saved) {
    s->out = own(s->own_out, out, heads, nq, d);
    *saved = std::move(s);
  }
  return Status::ok();
}

template <typename T>
void attn_train_backward(const AttnSaved<T>& saved, const T* dout, T* dq, T* dk, T* dv) {
  const int64_t nq = saved.nq, nk = saved.nk;
  const int d = saved.d;
  run_backward(saved, HeadView<const T>{dout, nq * d, d}, HeadView<T>{dq, nq * d, d},
               HeadView<T>{saved.kind == TrainAttnKind::kLsh ? nullptr : dk, nk * d, d},
               HeadView<T>{dv, nk * d, d});
}

// q (nq, D), k, v (nk, D), out (nq, D) with head h in columns h*d .. h*d+d-1: the kernels read
// and write them in place through strided views (no split copies). The backward reads the data
// of q, k, v and out, which must not be changed in place after this op. For kLsh, k must be q
// (keys are its rows normalised); the whole gradient lands in q once.
// The inference form of the op (TrainAttnSpec::infer): the kind's inference kernel over
// head-major copies, its counters in infer->stats, and the inspector called for the layer it
// asks for. out (nq, D) is left zero after an error, which infer->status keeps.
Var<float> attention_infer(const Var<float>& q, const Var<float>& k, const Var<float>& v, int heads,
                           const TrainAttnSpec& spec) {
  AttnInfer& inf = *spec.infer;
  const int64_t D = q->cols, nq = q->rows, nk = k->rows;
  const int d = static_cast<int>(D / heads);
  const bool lsh = spec.kind == TrainAttnKind::kLsh;
  Var<float> out = make_var_for_write<float>(nq, D, false);
  if (inf.finished()) return out;  // the families drop what follows a finished forward
  // qh, oh are (H, nq, d); kh, vh are (H, nk, d): the inference kernels' layout.
  ActivationVector<float> qh(static_cast<size_t>(nq * D)), oh(static_cast<size_t>(nq * D));
  ActivationVector<float> kh(lsh ? 0 : static_cast<size_t>(nk * D)),
      vh(static_cast<size_t>(nk * D));
  op_split_heads(q->data.data(), qh.data(), nq, heads, d);
  if (!lsh) op_split_heads(k->data.data(), kh.data(), nk, heads, d);
  op_split_heads(v->data.data(), vh.data(), nk, heads, d);
  const float* kp = lsh ? qh.data() : kh.data();
  const bool inspect = inf.fn && spec.view_layer == inf.inspect_layer;
  LshTrace trace;
  Status st;
  switch (spec.kind) {
    case TrainAttnKind::kCausal:
      st = attn_dense_forward_cpu(qh.data(), kp, vh.data(), oh.data(), heads, nq, nk, d,
                                  spec.q_offset, inf.stats);
      break;
    case TrainAttnKind::kSparse:
      st = attn_sparse_forward_cpu(qh.data(), kp, vh.data(), oh.data(), heads, nq, d, spec.sparse,
                                   spec.layer, inf.stats);
      break;
    case TrainAttnKind::kLsh:
      st = attn_lsh_forward_cpu(qh.data(), vh.data(), oh.data(), heads, nq, d, spec.lsh,
                                spec.rotations, inspect ? &trace : nullptr, inf.stats);
      break;
  }
  if (!st) {
    inf.status = st;
    return out;
  }
  if (inspect) {
    AttnLayerView view = spec.view;
    view.q = qh.data();
    view.k = kp;
    view.v = vh.data();
    view.o = oh.data();
    view.heads = heads;
    view.d = d;
    view.nq = nq;
    view.nk = nk;
    view.lsh = lsh ? &trace : nullptr;
    inf.status = (*inf.fn)(view);
    inf.done = true;
    return out;
  }
  op_merge_heads(oh.data(), out->data.data(), nq, heads, d);
  return out;
}

// q (nq, D), k, v (nk, D), out (nq, D) with head h in columns h*d .. h*d+d-1: the kernels read
// and write them in place through strided views (no split copies). The backward reads the data
// of q, k, v and out, which must not be changed in place after this op. For kLsh, k must be q
// (keys are its rows normalised); the whole gradient lands in q once. Shapes and the spec are
// the graph's to get right (graph_hidden checked the config): a mismatch is a programmer error.
template <typename T>
Var<T> attention(Tape<T>& tape, const Var<T>& q, const Var<T>& k, const Var<T>& v, int heads,
                 const TrainAttnSpec& spec) {
  const bool lsh = spec.kind == TrainAttnKind::kLsh;
  const Var<T>& kk = lsh ? q : k;
  assert(heads >= 1 && q->cols % heads == 0 && kk->cols == q->cols && v->cols == q->cols &&
         v->rows == kk->rows && "attention: q, k, v must share D divisible by heads");
  assert((!lsh || !k || k == q) && "attention: kLsh shares QK, pass k = q");
  const int64_t D = q->cols, nq = q->rows, nk = kk->rows;
  const int d = static_cast<int>(D / heads);
  assert(check_args(heads, nq, nk, d, spec).is_ok() &&
         "attention: did graph_hidden check the config?");
  if (spec.infer) {
    if constexpr (std::is_same_v<T, float>) {
      return attention_infer(q, kk, v, heads, spec);
    } else {
      assert(false && "attention: inference runs in float only");
    }
  }
  const bool needs = q->requires_grad || kk->requires_grad || v->requires_grad;
  Var<T> out = make_var<T>(nq, D, needs);
  auto s = std::make_shared<AttnSaved<T>>();
  s->kind = spec.kind;
  s->heads = heads;
  s->nq = nq;
  s->nk = nk;
  s->d = d;
  const bool record = tape.recording() && needs;
  s->store = record && spec.store_probs;
  s->q = {q->data.data(), d, D};
  s->k = {kk->data.data(), d, D};
  s->v = {v->data.data(), d, D};
  build_layout(*s, spec);
  run_forward(*s, HeadView<T>{out->data.data(), d, D});
  if (!record) return out;
  s->out = {out->data.data(), d, D};
  tape.push([s, q, kk, v, out, lsh]() {
    if (!out->has_grad()) return;
    const int64_t d = s->d, D = out->cols;
    HeadView<T> gq{q->requires_grad ? q->g() : nullptr, d, D};
    HeadView<T> gk{!lsh && kk->requires_grad ? kk->g() : nullptr, d, D};
    HeadView<T> gv{v->requires_grad ? v->g() : nullptr, d, D};
    run_backward(*s, HeadView<const T>{out->grad.data(), d, D}, gq, gk, gv);
  });
  return out;
}

template struct AttnSaved<float>;
template struct AttnSaved<double>;
template Status attn_train_forward<float>(const float*, const float*, const float*, float*, int,
                                          int64_t, int64_t, int, const TrainAttnSpec&,
                                          std::shared_ptr<AttnSaved<float>>*);
template Status attn_train_forward<double>(const double*, const double*, const double*, double*,
                                           int, int64_t, int64_t, int, const TrainAttnSpec&,
                                           std::shared_ptr<AttnSaved<double>>*);
template void attn_train_backward<float>(const AttnSaved<float>&, const float*, float*, float*,
                                         float*);
template void attn_train_backward<double>(const AttnSaved<double>&, const double*, double*, double*,
                                          double*);
template Var<float> attention<float>(Tape<float>&, const Var<float>&, const Var<float>&,
                                     const Var<float>&, int, const TrainAttnSpec&);
template Var<double> attention<double>(Tape<double>&, const Var<double>&, const Var<double>&,
                                       const Var<double>&, int, const TrainAttnSpec&);

}  // namespace attnscope::tape
