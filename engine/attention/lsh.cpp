// Reformer LSH attention on the CPU: rotations, the angular hash, the chunked shared-QK
// forward (training-time form) and the predict-mode decode scheme for one query.
#include <oneapi/dnnl/dnnl.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "attention/fast_exp.h"
#include "attention/lsh_rule.h"
#include "attnscope/attention.h"
#include "attnscope/tensor.h"
#include "core/rng.h"

namespace attnscope {

namespace {

using detail::kLshSelfScore;
// Stream tag for the rotations ("LSH"), so they never share a stream with weight init.
constexpr uint64_t kRotationStream = 0x4C5348;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kLog2e = 1.4426950408889634f;
// Rows whose projections one sgemm computes in the hash pass.
constexpr int64_t kHashRows = 128;
// Query rows of one score tile inside a chunk (bounds the scratch for large chunks).
constexpr int64_t kQueryRows = 64;
// Chunks of one work item of the attention pass, and the most rows it gathers (about).
constexpr int64_t kMaxGroup = 8;
constexpr int64_t kGroupRows = 1024;
// Rows ahead that the gather prefetches.
constexpr int64_t kAhead = 8;

// p_c = x · R[:, c] in double, k ascending: the projection the hash is defined by. Out of
// line so that every caller (the plain hash and the checked one) rounds exactly alike.
[[gnu::noinline]] double project(const float* x, const float* rot, int half, int c, int d) {
  double p = 0.0;
  for (int k = 0; k < d; ++k) p += static_cast<double>(x[k]) * rot[k * half + c];
  return p;
}

// The first largest of [p; -p] over every projection of x: the first largest p against the
// first smallest p. rot is one round's (d, half).
int hash_exact(const float* x, const float* rot, int half, int d) {
  int arg_max = 0, arg_min = 0;
  double p_max = -INFINITY, p_min = INFINITY;
  for (int c = 0; c < half; ++c) {
    const double p = project(x, rot, half, c, d);
    if (p > p_max) p_max = p, arg_max = c;
    if (p < p_min) p_min = p, arg_min = c;
  }
  return -p_min > p_max ? half + arg_min : arg_max;
}

// hash_exact from float projections pf (half) whose distance to the exact double ones is at
// most err each. With f the float extreme, the exact extreme (and every column tying it)
// lies within 2 err of f. When one column alone is that close on each side and the final
// comparison is clear by more than the error, the floats decide; otherwise the close
// columns are recomputed exactly, in ascending order, so the first-on-ties rule and the
// final comparison see exactly hash_exact's values.
int hash_checked(const float* x, const float* pf, const float* rot, int half, int d, float err) {
  float f_max = kNegInf, f_min = INFINITY;
#pragma omp simd reduction(max : f_max) reduction(min : f_min)
  for (int c = 0; c < half; ++c) {
    f_max = pf[c] > f_max ? pf[c] : f_max;
    f_min = pf[c] < f_min ? pf[c] : f_min;
  }
  if (!std::isfinite(f_max) || !std::isfinite(f_min) || !std::isfinite(err))
    return hash_exact(x, rot, half, d);
  const float hi_cut = f_max - 2.0f * err, lo_cut = f_min + 2.0f * err;
  int n_hi = 0, n_lo = 0, first_hi = half, first_lo = half;
#pragma omp simd reduction(+ : n_hi, n_lo) reduction(min : first_hi, first_lo)
  for (int c = 0; c < half; ++c) {
    const bool hi = pf[c] >= hi_cut, lo = pf[c] <= lo_cut;
    n_hi += hi ? 1 : 0;
    n_lo += lo ? 1 : 0;
    first_hi = hi && c < first_hi ? c : first_hi;
    first_lo = lo && c < first_lo ? c : first_lo;
  }
  // -p_min - p_max lies within 2 err of -f_min - f_max.
  const double gap = -static_cast<double>(f_min) - static_cast<double>(f_max);
  const double margin = 2.0 * static_cast<double>(err);
  if (n_hi == 1 && n_lo == 1 && std::abs(gap) > margin)
    return gap > 0.0 ? half + first_lo : first_hi;
  int arg_max = 0, arg_min = 0;
  double p_max = -INFINITY, p_min = INFINITY;
  for (int c = std::min(first_hi, first_lo); c < half; ++c) {
    const bool hi = pf[c] >= hi_cut, lo = pf[c] <= lo_cut;
    if (!hi && !lo) continue;
    const double p = project(x, rot, half, c, d);
    if (hi && p > p_max) p_max = p, arg_max = c;
    if (lo && p < p_min) p_min = p, arg_min = c;
  }
  return -p_min > p_max ? half + arg_min : arg_max;
}

double dot(const float* a, const float* b, int d) {
  double s = 0.0;
  for (int c = 0; c < d; ++c) s += static_cast<double>(a[c]) * b[c];
  return s;
}

Status check_spec(const LshSpec& spec, int d) {
  if (spec.n_hashes < 1) return invalid_argument("lsh: n_hashes must be at least 1");
  if (spec.chunk < 1) return invalid_argument("lsh: chunk must be at least 1");
  if (spec.n_buckets < 2 || spec.n_buckets % 2 != 0)
    return invalid_argument("lsh: n_buckets must be even and at least 2, got " +
                            std::to_string(spec.n_buckets));
  if (d < 1) return invalid_argument("lsh: head width must be at least 1");
  return Status::ok();
}

// Softmax attention of one query over a list of keys given by their scores; adds the
// weighted values into acc (d) and returns the logsumexp. scores has one entry per value
// row; values[t] points at row t.
double softmax_accumulate(const ScratchVector<double>& scores,
                          const std::vector<const float*>& values, double* acc, int d) {
  double mx = scores[0];
  for (double s : scores) mx = std::max(mx, s);
  double sum = 0.0;
  for (size_t t = 0; t < scores.size(); ++t) {
    const double p = std::exp(scores[t] - mx);
    sum += p;
    for (int c = 0; c < d; ++c) acc[c] += p * values[t][c];
  }
  for (int c = 0; c < d; ++c) acc[c] /= sum;
  return mx + std::log(sum);
}

// Combines per-round outputs o (R, d) with their logsumexps lse (R) into out (d): weights
// are the softmax of the lse over the rounds.
void combine_rounds(const double* o, const double* lse, int rounds, int d, float* out) {
  double mx = lse[0];
  for (int r = 1; r < rounds; ++r) mx = std::max(mx, lse[r]);
  double z = 0.0;
  for (int r = 0; r < rounds; ++r) z += std::exp(lse[r] - mx);
  for (int c = 0; c < d; ++c) {
    double s = 0.0;
    for (int r = 0; r < rounds; ++r) s += std::exp(lse[r] - mx) / z * o[r * d + c];
    out[c] = static_cast<float>(s);
  }
}

}  // namespace

// rotations is (n_hashes, d, n_buckets/2), standard normal entries in that order.
std::vector<float> attn_lsh_rotations(uint64_t seed, int layer, int n_hashes, int d,
                                      int n_buckets) {
  Rng rng(derive_seed(seed, kRotationStream, static_cast<uint64_t>(layer)));
  std::vector<float> r(static_cast<size_t>(n_hashes) * d * (n_buckets / 2));
  for (float& x : r) x = static_cast<float>(rng.normal());
  return r;
}

// p = x · R_round (n_buckets/2); the bucket is the index of the largest of [p; -p], the
// first one on ties.
int attn_lsh_hash(const float* x, const float* rotations, int round, int d, int n_buckets) {
  const int half = n_buckets / 2;
  return hash_exact(x, rotations + static_cast<size_t>(round) * d * half, half, d);
}

// Rounds are independent: each sorts the N positions by bucket * N + position and cuts its
// own chunks; the first chunk of a round looks back at nothing (trax sorts all rounds as one
// sequence whose look-back wraps into the previous round's last chunk; we do not, so the
// allowed set of a round depends on that round's buckets only). A key that two rounds share
// is counted in both rounds (trax's second implementation does the same).
//
// Passes: (1) |x| and the key scale per row (keys are normalised once, as a per-key factor
// on the scores); (2) buckets from sgemm projections, checked exactly near the extremes so
// they equal attn_lsh_hash bit for bit; (3) a counting sort by bucket per round (stable, so
// the (bucket, position) order); (4) per round and chunk, the chunk's queries and the two
// chunks' keys/values gathered into scratch, scores and P·V by sgemm, and the round merged
// into out by logsumexp (the softmax of the rounds' lse, kept as a running lse per row).
Status attn_lsh_forward_cpu(const float* qk, const float* v, float* out, int heads, int64_t n,
                            int d, const LshSpec& spec, const float* rotations, LshTrace* trace,
                            AttnStats* stats) {
  ATTN_RETURN_IF_ERROR(check_spec(spec, d));
  if (heads < 1 || n < 1) return invalid_argument("lsh: heads and length must be positive");
  const int R = spec.n_hashes;
  const int half = spec.n_buckets / 2;
  const int64_t m = spec.chunk;
  const int64_t n_chunks = (n + m - 1) / m;
  const int64_t hn = static_cast<int64_t>(heads) * n;
  const size_t dd = static_cast<size_t>(d);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  if (trace) {
    trace->buckets.assign(static_cast<size_t>(hn) * R, 0);
    trace->order.assign(static_cast<size_t>(hn) * R, 0);
  }

  // (1) norm (H, N): |x|; kscale (H, N): 1/sqrt(d) / |x| (lsh_rule.h's floor).
  ScratchVector<double> norm(static_cast<size_t>(hn));
  ScratchVector<float> kscale(static_cast<size_t>(hn));
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < hn; ++row) {
    const float* x = qk + row * d;
    double ss = 0.0;
#pragma omp simd reduction(+ : ss)
    for (int c = 0; c < d; ++c) ss += static_cast<double>(x[c]) * x[c];
    norm[row] = std::sqrt(ss);
    kscale[row] = static_cast<float>(scale / detail::lsh_key_norm(ss));
  }

  // (2) rmax (R): the largest column norm of each round's rotation, for the error bound of
  // the float projections: |fl(x·r) - x·r| <= d u |x| |r| (u = 2^-24), taken twice over, plus
  // a floor for flushed products. bucket (H, R, N).
  ScratchVector<double> rmax(R, 0.0);
  for (int r = 0; r < R; ++r) {
    const float* rot = rotations + static_cast<size_t>(r) * d * half;
    for (int c = 0; c < half; ++c) {
      double ss = 0.0;
      for (int k = 0; k < d; ++k) ss += static_cast<double>(rot[k * half + c]) * rot[k * half + c];
      rmax[r] = std::max(rmax[r], std::sqrt(ss));
    }
  }
  ScratchVector<int> bucket(static_cast<size_t>(hn) * R);
  const int64_t n_blocks = (n + kHashRows - 1) / kHashRows;
#pragma omp parallel
  {
    ScratchVector<float> proj(static_cast<size_t>(std::min(n, kHashRows)) * half);
#pragma omp for schedule(dynamic)
    for (int64_t it = 0; it < heads * R * n_blocks; ++it) {
      const int64_t hr = it / n_blocks, j0 = it % n_blocks * kHashRows;
      const int64_t h = hr / R, r = hr % R;
      const int64_t rows = std::min(kHashRows, n - j0);
      const float* x = qk + (h * n + j0) * d;
      const float* rot = rotations + static_cast<size_t>(r) * d * half;
      // proj (rows, half) = x (rows, d) · rot (d, half).
      dnnl_sgemm('N', 'N', rows, half, d, 1.0f, x, d, rot, half, 0.0f, proj.data(), half);
      int* bk = bucket.data() + hr * n + j0;
      for (int64_t t = 0; t < rows; ++t) {
        const double bound = norm[h * n + j0 + t] * rmax[r];
        bk[t] = bound <= 1e30
                    ? hash_checked(x + t * d, proj.data() + t * half, rot, half, d,
                                   static_cast<float>((d + 4) * (0x1p-23 * bound + 0x1p-125)))
                    : hash_exact(x + t * d, rot, half, d);
      }
    }
  }

  // (3) order (H, R, N): positions sorted by bucket, stable (a counting sort).
  ScratchVector<int64_t> order(static_cast<size_t>(hn) * R);
#pragma omp parallel
  {
    ScratchVector<int64_t> start(static_cast<size_t>(spec.n_buckets) + 1);
#pragma omp for schedule(dynamic)
    for (int64_t hr = 0; hr < heads * R; ++hr) {
      const int* bk = bucket.data() + hr * n;
      int64_t* ord = order.data() + hr * n;
      std::fill(start.begin(), start.end(), 0);
      for (int64_t j = 0; j < n; ++j) ++start[bk[j] + 1];
      for (int b = 0; b < spec.n_buckets; ++b) start[b + 1] += start[b];
      for (int64_t j = 0; j < n; ++j) ord[start[bk[j]]++] = j;
      if (trace) {
        std::copy_n(bk, n, trace->buckets.data() + hr * n);
        for (int64_t s = 0; s < n; ++s) trace->order[hr * n + s] = static_cast<int>(ord[s]);
      }
    }
  }

  // (4) lse (H, N): logsumexp of the rounds merged so far; out holds their weighted output.
  ScratchVector<double> lse(static_cast<size_t>(hn));
  // Chunks run in groups of G whose rows (and the chunk before) are gathered once: each
  // key row is copied (G + 1) / G times instead of twice. G shrinks for wide chunks (to
  // bound the scratch) and for short inputs (so that every thread gets groups).
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  const int64_t G = std::clamp<int64_t>(
      std::min<int64_t>(kGroupRows / m, heads * n_chunks / (4 * threads)), 1, kMaxGroup);
  const int64_t n_groups = (n_chunks + G - 1) / G;
  const int64_t span = std::min(n, (G + 1) * m);
  int64_t entries = 0;
  for (int r = 0; r < R; ++r) {
#pragma omp parallel reduction(+ : entries)
    {
      // Scratch: xg, vg (span, d) rows of a group's chunks and the chunk before; pos, ks
      // (span) their positions and key scales; S (kQueryRows, 2m) scores then
      // probabilities; O (kQueryRows, d) unnormalised outputs; rm, rl (kQueryRows) row max
      // and sum.
      ScratchVector<float> xg(span * dd), vg(span * dd), kg(span);
      ScratchVector<int64_t> pg(span);
      ScratchVector<float> S(static_cast<size_t>(std::min(n, kQueryRows) * std::min(n, 2 * m)));
      ScratchVector<float> O(static_cast<size_t>(std::min(n, kQueryRows)) * dd);
      ScratchVector<float> rm(kQueryRows), rl(kQueryRows);
#pragma omp for schedule(dynamic)
      for (int64_t it = 0; it < heads * n_groups; ++it) {
        const int64_t h = it / n_groups, c0 = it % n_groups * G;
        const int64_t c1 = std::min(n_chunks, c0 + G);
        const int64_t* ord = order.data() + (h * R + r) * n;
        const float* xh = qk + h * n * d;
        const float* vh = v + h * n * d;
        // Slots [g0, g1) of the group into scratch.
        const int64_t g0 = std::max<int64_t>(0, (c0 - 1) * m), g1 = std::min(n, c1 * m);
        for (int64_t t = 0; t < g1 - g0; ++t) {
          const int64_t j = ord[g0 + t];
          if (t + kAhead < g1 - g0) {
            const int64_t ja = ord[g0 + t + kAhead];
            const char* xa = reinterpret_cast<const char*>(xh + ja * d);
            const char* va = reinterpret_cast<const char*>(vh + ja * d);
            for (size_t b = 0; b < sizeof(float) * dd; b += 64)
              __builtin_prefetch(xa + b), __builtin_prefetch(va + b);
          }
          pg[t] = j;
          kg[t] = kscale[h * n + j];
          const float* xs = xh + j * d;
          const float* vs = vh + j * d;
          float* xd = xg.data() + t * d;
          float* vd = vg.data() + t * d;
#pragma omp simd
          for (int k = 0; k < d; ++k) xd[k] = xs[k], vd[k] = vs[k];
        }
        for (int64_t c = c0; c < c1; ++c) {
          // Query slots [q0, hi) see key slots [lo, hi).
          const int64_t q0 = c * m;
          const auto [lo, hi] = attn_lsh_window(c, m, n);
          const int64_t nk = hi - lo;
          const float* xw = xg.data() + (lo - g0) * d;
          const float* vw = vg.data() + (lo - g0) * d;
          const int64_t* pos = pg.data() + (lo - g0);
          const float* ks = kg.data() + (lo - g0);
          for (int64_t s0 = q0; s0 < hi; s0 += kQueryRows) {
            const int64_t nr = std::min(kQueryRows, hi - s0);
            // The output rows of these queries lie anywhere in out: fetch them while the
            // scores are computed.
            for (int64_t q = 0; q < nr; ++q) {
              const char* oq = reinterpret_cast<const char*>(out + (h * n + pos[s0 - lo + q]) * d);
              for (size_t b = 0; b < sizeof(float) * dd; b += 64) __builtin_prefetch(oq + b, 1);
            }
            const float* xq = xw + (s0 - lo) * d;
            // S (nr, nk) = queries (nr, d) · raw keys (nk, d)^T; the key scale comes next.
            dnnl_sgemm('N', 'T', nr, nk, d, 1.0f, xq, d, xw, d, 0.0f, S.data(), nk);
            for (int64_t q = 0; q < nr; ++q) {
              const int64_t i = pos[s0 - lo + q];
              float* sr = S.data() + q * nk;
              const int64_t* pw = pos;
              const float* kw = ks;
              int64_t cnt = 0;
              float mx = kNegInf;
#pragma omp simd reduction(+ : cnt) reduction(max : mx)
              for (int64_t t = 0; t < nk; ++t) {
                const float val = pw[t] < i    ? sr[t] * kw[t]
                                  : pw[t] == i ? static_cast<float>(kLshSelfScore)
                                               : kNegInf;
                sr[t] = val;
                cnt += pw[t] < i ? 1 : 0;
                mx = val > mx ? val : mx;
              }
              entries += cnt;
              for (int64_t t = 0; t < nk; ++t) sr[t] = exp2_nonpos((sr[t] - mx) * kLog2e);
              float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
              for (int64_t t = 0; t < nk; ++t) sum += sr[t];
              rm[q] = mx;
              rl[q] = sum;
            }
            // O (nr, d) = P (nr, nk) · V (nk, d).
            dnnl_sgemm('N', 'N', nr, d, nk, 1.0f, S.data(), nk, vw, d, 0.0f, O.data(), d);
            for (int64_t q = 0; q < nr; ++q) {
              const int64_t i = pos[s0 - lo + q];
              const double lr = static_cast<double>(rm[q]) + std::log(static_cast<double>(rl[q]));
              float* oi = out + (h * n + i) * d;
              const float* orow = O.data() + q * d;
              double& li = lse[h * n + i];
              float wa = 0.0f, wb = static_cast<float>(1.0 / rl[q]);
              if (r == 0) {
                li = lr;
              } else {
                const double mx = std::max(li, lr);
                const double a = std::exp(li - mx), b = std::exp(lr - mx), z = a + b;
                wa = static_cast<float>(a / z);
                wb = static_cast<float>(b / z / rl[q]);
                li = mx + std::log(z);
              }
#pragma omp simd
              for (int k = 0; k < d; ++k) oi[k] = (r == 0 ? 0.0f : oi[k] * wa) + orow[k] * wb;
            }
          }
        }
      }
    }
  }
  if (stats) stats->score_entries += entries;
  return Status::ok();
}

// Per head and round: walk back from i collecting positions in the query's bucket until 2m
// are found (i itself is always the first). Keys and values are fetched once per head for
// the union of the rounds' positions. trax's own predict code differs in detail: it runs one
// attention over the n_hashes * 2m most recent positions sharing a bucket with the query in
// any round (padded with non-matching ones when fewer exist); we keep the rounds separate and
// combine them by logsumexp exactly as the chunked forward does.
void attn_lsh_decode_cpu(const float* q_heads, float* out, int heads, int d, int64_t i,
                         const LshSpec& spec, const int* buckets, int64_t cap,
                         const LshFetch& fetch, AttnStats* stats) {
  const int R = spec.n_hashes;
  const int64_t want = 2 * static_cast<int64_t>(spec.chunk);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  // Per head: picked (R, <= 2m) positions; fetched K, V rows (P, d) for the P distinct ones.
  ScratchVector<ScratchVector<int64_t>> picked(R);
  ScratchVector<int64_t> distinct;
  ScratchVector<float> kbuf, vbuf;
  ScratchVector<double> scores, o(static_cast<size_t>(R) * d), lse(R);
  std::vector<const float*> rows;
  for (int h = 0; h < heads; ++h) {
    const float* q = q_heads + static_cast<size_t>(h) * d;
    distinct.clear();
    for (int r = 0; r < R; ++r) {
      const int* b = buckets + (static_cast<size_t>(h) * R + r) * cap;
      picked[r].clear();
      for (int64_t j = i; j >= 0 && static_cast<int64_t>(picked[r].size()) < want; --j)
        if (b[j] == b[i]) picked[r].push_back(j);
      distinct.insert(distinct.end(), picked[r].begin(), picked[r].end());
    }
    std::sort(distinct.begin(), distinct.end());
    distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
    kbuf.resize(distinct.size() * d);
    vbuf.resize(distinct.size() * d);
    for (size_t p = 0; p < distinct.size(); ++p)
      fetch(h, distinct[p], kbuf.data() + p * d, vbuf.data() + p * d);
    if (stats) stats->keys_read += static_cast<int64_t>(distinct.size());
    for (int r = 0; r < R; ++r) {
      scores.clear();
      rows.clear();
      for (int64_t j : picked[r]) {
        const size_t p = std::lower_bound(distinct.begin(), distinct.end(), j) - distinct.begin();
        if (j == i) {
          scores.push_back(kLshSelfScore);
        } else {
          scores.push_back(dot(q, kbuf.data() + p * d, d) * scale);
          if (stats) ++stats->score_entries;
        }
        rows.push_back(vbuf.data() + p * d);
      }
      std::fill_n(o.data() + r * d, d, 0.0);
      lse[r] = softmax_accumulate(scores, rows, o.data() + r * d, d);
    }
    combine_rounds(o.data(), lse.data(), R, d, out + static_cast<size_t>(h) * d);
  }
}

}  // namespace attnscope
