// Dense causal attention on the CPU (tiled, flash-style online softmax, query offset for
// Perceiver AR) and the block-pass machinery it shares with the Sparse Transformer kernels.
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "attention/blocks.h"
#include "attention/fast_exp.h"

namespace attnscope {
namespace detail {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kLog2e = 1.4426950408889634f;
// Dense layout tiles: 64 queries x 64 keys; tiles past the causal limit are never built.
constexpr int kDenseTile = 64;
// Kept tiles that touch are evaluated as one run of up to this many keys, so that a row
// block makes few, wider sgemm calls (oneDNN's per-call cost matters at 32 x 32 x 64).
constexpr int64_t kMaxRun = 256;
// Below this many multiply-adds a call stays on one thread: waking the team costs more
// (and far more when another process holds a core the team waits on).
constexpr int64_t kParallelWork = int64_t{1} << 22;

// The row helpers below are kept apart so that each loop vectorises on its own.
inline float row_max(const float* __restrict x, int64_t n) {
  float mx = kNegInf;
#pragma omp simd reduction(max : mx)
  for (int64_t j = 0; j < n; ++j) mx = x[j] > mx ? x[j] : mx;
  return mx;
}

// x = 2^(x - m) in place; returns the sum.
inline float row_exp2_sum(float* __restrict x, int64_t n, float m) {
  for (int64_t j = 0; j < n; ++j) x[j] = exp2_nonpos(x[j] - m);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) sum += x[j];
  return sum;
}

// Per-thread scratch of a row block: scores (rows, run width), output rows (rows, d), m, l.
struct Scratch {
  ScratchVector<float> s, acc, m, l;
};

// Per-thread copies of one segment of a query-permuting pass: q (rows, d), k, v (keys, d).
struct SegmentRows {
  ScratchVector<float> q, k, v;
};

// Evaluates one row block of a pass for one head. qh holds pass-ordered query rows from
// qbase on, kh and vh pass-ordered key and value rows from kbase on, all (rows, d); the
// state rows of this head are addressed through the pass's qpos. Returns the score entries
// computed.
int64_t run_row_block(const AttnPass& p, const AttnRowBlock& rb, const float* qh, int64_t qbase,
                      const float* kh, const float* vh, int64_t kbase, int d, float* acc_h,
                      float* m_h, float* l_h, Scratch& sc) {
  const int64_t nr = rb.q1 - rb.q0;
  int64_t width = kMaxRun;
  for (int64_t t = rb.t0; t < rb.t1; ++t) width = std::max(width, p.tiles[t].k1 - p.tiles[t].k0);
  sc.s.resize(static_cast<size_t>(nr * width));
  sc.acc.resize(static_cast<size_t>(nr * d));
  sc.m.resize(static_cast<size_t>(nr));
  sc.l.resize(static_cast<size_t>(nr));
  float* S = sc.s.data();
  float* A = sc.acc.data();
  const size_t row_bytes = sizeof(float) * static_cast<size_t>(d);
  auto abs_row = [&](int64_t r) { return p.qpos.empty() ? r : p.qpos[r]; };

  for (int64_t r = 0; r < nr; ++r) {
    const int64_t a = abs_row(rb.q0 + r);
    sc.m[r] = m_h[a];
    sc.l[r] = l_h[a];
    std::memcpy(A + r * d, acc_h + a * d, row_bytes);
  }

  // Scores in log2 units: 2^(s - m) is e^(q·k/sqrt(d) - m').
  const float alpha = kLog2e / std::sqrt(static_cast<float>(d));
  int64_t entries = 0;
  for (int64_t t = rb.t0; t < rb.t1;) {
    // Adjacent tiles (up to kMaxRun keys) share one product: the same entries, fewer calls.
    const int64_t k0 = p.tiles[t].k0;
    int64_t k1 = p.tiles[t++].k1;
    while (t < rb.t1 && p.tiles[t].k0 == k1 && p.tiles[t].k1 - k0 <= kMaxRun) k1 = p.tiles[t++].k1;
    const int64_t nc = k1 - k0;
    entries += nr * nc;
    // S (nr, nc) = alpha * Q (nr, d) · K (nc, d)^T, leading dimension width.
    dnnl_sgemm('N', 'T', nr, nc, d, alpha, qh + (rb.q0 - qbase) * d, d, kh + (k0 - kbase) * d, d,
               0.0f, S, width);
    for (int64_t r = 0; r < nr; ++r) {
      float* sr = S + r * width;
      const int64_t lo = std::clamp<int64_t>(p.lo[rb.q0 + r] - k0, 0, nc);
      const int64_t hi = std::clamp<int64_t>(p.hi[rb.q0 + r] - k0, lo, nc);
      const float m_new = std::max(sc.m[r], row_max(sr + lo, hi - lo));
      std::fill(sr, sr + lo, 0.0f);
      std::fill(sr + hi, sr + nc, 0.0f);
      if (m_new == kNegInf) continue;  // nothing allowed yet: the row stays empty
      const float sum = row_exp2_sum(sr + lo, hi - lo, m_new);
      const float corr = exp2_nonpos(sc.m[r] - m_new);
      sc.m[r] = m_new;
      sc.l[r] = sc.l[r] * corr + sum;
      float* ar = A + r * d;
#pragma omp simd
      for (int c = 0; c < d; ++c) ar[c] *= corr;
    }
    // A (nr, d) += P (nr, nc) · V (nc, d).
    dnnl_sgemm('N', 'N', nr, d, nc, 1.0f, S, width, vh + (k0 - kbase) * d, d, 1.0f, A, d);
  }

  for (int64_t r = 0; r < nr; ++r) {
    const int64_t a = abs_row(rb.q0 + r);
    m_h[a] = sc.m[r];
    l_h[a] = sc.l[r];
    std::memcpy(acc_h + a * d, A + r * d, row_bytes);
  }
  return entries;
}

// Rows pos[b .. e) of src (rows, d) into dst (e - b, d).
void gather_rows(const float* src, const ScratchVector<int64_t>& pos, int64_t b, int64_t e, int d,
                 float* dst) {
  const size_t row_bytes = sizeof(float) * static_cast<size_t>(d);
  for (int64_t r = b; r < e; ++r) std::memcpy(dst + (r - b) * d, src + pos[r] * d, row_bytes);
}

}  // namespace

void AttnPass::add_segment(int64_t qs, int64_t qe, int64_t ks, int64_t ke, int bq, int bk) {
  const int64_t b0 = static_cast<int64_t>(rows.size());
  int64_t t0 = static_cast<int64_t>(tiles.size());
  attn_select_tiles(
      lo, hi, qs, qe, ks, ke, bq, bk,
      [&](int64_t, int64_t, int64_t k0, int64_t k1) {
        tiles.push_back({k0, k1});
      },
      [&](int64_t q0, int64_t q1) {
        const int64_t t1 = static_cast<int64_t>(tiles.size());
        rows.push_back({q0, q1, t0, t1});
        t0 = t1;
      });
  segments.push_back({qs, qe, ks, ke, b0, static_cast<int64_t>(rows.size())});
}

int64_t AttnPass::entries() const {
  int64_t n = 0;
  for (const auto& rb : rows)
    for (int64_t t = rb.t0; t < rb.t1; ++t) n += (rb.q1 - rb.q0) * (tiles[t].k1 - tiles[t].k0);
  return n;
}

AttnState::AttnState(float* acc_out, int heads, int64_t nq, int d)
    : acc(acc_out),
      m(static_cast<size_t>(heads * nq), kNegInf),
      l(static_cast<size_t>(heads * nq), 0.0f) {
  std::memset(acc, 0, sizeof(float) * static_cast<size_t>(heads * nq * d));
}

void AttnState::finish(int d) {
  const int64_t rows = static_cast<int64_t>(l.size());
#pragma omp parallel for schedule(static) if (rows * d >= kParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
    float* ar = acc + r * d;
    for (int c = 0; c < d; ++c) ar[c] *= inv;
  }
}

void attn_pass_run(const std::vector<const AttnPass*>& pass, const float* q, const float* k,
                   const float* v, int64_t nq, int64_t nk, int d, AttnState& state,
                   AttnStats* stats) {
  const int heads = static_cast<int>(pass.size());
  const int64_t dd = d;
  // Keys and values (n_keys, d) gathered once for heads whose pass permutes only keys.
  ScratchVector<ScratchVector<float>> kg(heads), vg(heads);
  // Work items (head, segment or row block, as the pass runs), the later (costlier for
  // causal layouts) ones first so that the dynamic schedule ends balanced.
  std::vector<std::pair<int, int64_t>> items;
  int64_t work = 0;
  for (int h = 0; h < heads; ++h) {
    const AttnPass* p = pass[h];
    if (!p) continue;
    work += p->entries() * d;
    if (p->qpos.empty() && !p->kpos.empty()) {
      const int64_t n = static_cast<int64_t>(p->kpos.size());
      kg[h].resize(static_cast<size_t>(n * dd));
      vg[h].resize(static_cast<size_t>(n * dd));
      gather_rows(k + h * nk * d, p->kpos, 0, n, d, kg[h].data());
      gather_rows(v + h * nk * d, p->kpos, 0, n, d, vg[h].data());
    }
    const size_t count = p->qpos.empty() ? p->rows.size() : p->segments.size();
    for (int64_t b = static_cast<int64_t>(count) - 1; b >= 0; --b) items.emplace_back(h, b);
  }
  int64_t entries = 0;
#pragma omp parallel reduction(+ : entries) if (work >= kParallelWork)
  {
    Scratch sc;
    SegmentRows seg_rows;
#pragma omp for schedule(dynamic, 1)
    for (size_t it = 0; it < items.size(); ++it) {
      const auto [h, b] = items[it];
      const AttnPass& p = *pass[h];
      float* acc_h = state.acc + h * nq * d;
      float* m_h = state.m.data() + h * nq;
      float* l_h = state.l.data() + h * nq;
      if (p.qpos.empty()) {
        const bool gathered = !p.kpos.empty();
        entries +=
            run_row_block(p, p.rows[b], q + h * nq * d, 0, gathered ? kg[h].data() : k + h * nk * d,
                          gathered ? vg[h].data() : v + h * nk * d, 0, d, acc_h, m_h, l_h, sc);
        continue;
      }
      const AttnSegment& sg = p.segments[b];
      seg_rows.q.resize(static_cast<size_t>((sg.qe - sg.qs) * dd));
      seg_rows.k.resize(static_cast<size_t>((sg.ke - sg.ks) * dd));
      seg_rows.v.resize(static_cast<size_t>((sg.ke - sg.ks) * dd));
      gather_rows(q + h * nq * d, p.qpos, sg.qs, sg.qe, d, seg_rows.q.data());
      gather_rows(k + h * nk * d, p.kpos, sg.ks, sg.ke, d, seg_rows.k.data());
      gather_rows(v + h * nk * d, p.kpos, sg.ks, sg.ke, d, seg_rows.v.data());
      for (int64_t r = sg.b0; r < sg.b1; ++r)
        entries += run_row_block(p, p.rows[r], seg_rows.q.data(), sg.qs, seg_rows.k.data(),
                                 seg_rows.v.data(), sg.ks, d, acc_h, m_h, l_h, sc);
    }
  }
  if (stats) stats->score_entries += entries;
}

void attn_decode_row(const float* q, const float* kc, const float* vc, const int64_t* idx,
                     int64_t n, int d, float* out) {
  for (int c = 0; c < d; ++c) out[c] = 0.0f;
  if (n <= 0) return;
  const float alpha = kLog2e / std::sqrt(static_cast<float>(d));
  ScratchVector<float> s(static_cast<size_t>(n));
  float mx = kNegInf;
  for (int64_t j = 0; j < n; ++j) {
    const float* kr = kc + (idx ? idx[j] : j) * d;
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int c = 0; c < d; ++c) dot += q[c] * kr[c];
    s[j] = dot * alpha;
    mx = std::max(mx, s[j]);
  }
  const float sum = row_exp2_sum(s.data(), n, mx);
  for (int64_t j = 0; j < n; ++j) {
    const float* vr = vc + (idx ? idx[j] : j) * d;
    const float w = s[j];
#pragma omp simd
    for (int c = 0; c < d; ++c) out[c] += w * vr[c];
  }
  const float inv = 1.0f / sum;
  for (int c = 0; c < d; ++c) out[c] *= inv;
}

}  // namespace detail

// q is (H, nq, d); k, v are (H, nk, d); out is (H, nq, d). Query m may see keys
// [0, min(nk, q_offset + m + 1)); 64 x 64 tiles past that limit are never built.
Status attn_dense_forward_cpu(const float* q, const float* k, const float* v, float* out, int heads,
                              int64_t nq, int64_t nk, int d, int64_t q_offset, AttnStats* stats) {
  if (heads < 0 || nq < 0 || nk < 0 || d <= 0 || q_offset < 0)
    return invalid_argument(
        "attn_dense_forward_cpu: heads, nq, nk, q_offset must be >= 0 and d > 0");
  detail::AttnPass pass;
  pass.lo.assign(static_cast<size_t>(nq), 0);
  pass.hi.resize(static_cast<size_t>(nq));
  for (int64_t r = 0; r < nq; ++r) pass.hi[r] = std::min(nk, q_offset + r + 1);
  pass.add_segment(0, nq, 0, nk, detail::kDenseTile, detail::kDenseTile);
  detail::AttnState state(out, heads, nq, d);
  detail::attn_pass_run(std::vector<const detail::AttnPass*>(heads, &pass), q, k, v, nq, nk, d,
                        state, stats);
  state.finish(d);
  return Status::ok();
}

// q is (H, d); kcache, vcache are (H, cap, d); out is (H, d).
void attn_dense_decode_cpu(const float* q, const float* kcache, const float* vcache, float* out,
                           int heads, int64_t cap, int64_t n_keys, int d, AttnStats* stats) {
  for (int h = 0; h < heads; ++h)
    detail::attn_decode_row(q + h * d, kcache + h * cap * d, vcache + h * cap * d, nullptr, n_keys,
                            d, out + h * d);
  if (stats) stats->keys_read += static_cast<int64_t>(heads) * std::max<int64_t>(n_keys, 0);
}

}  // namespace attnscope
