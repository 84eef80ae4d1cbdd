// Reformer LSH attention on the CPU: rotations, the angular hash, the chunked shared-QK
// forward (training-time form) and the predict-mode decode scheme for one query.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "attnscope/attention.h"
#include "core/rng.h"

namespace attnscope {

namespace {

// The score a token gives itself: finite, so a token whose allowed set is only itself
// still attends to itself (trax's exclude_self), while any other key outweighs it.
constexpr double kSelfScore = -1e5;
// Stream tag for the rotations ("LSH"), so they never share a stream with weight init.
constexpr uint64_t kRotationStream = 0x4C5348;

// x (d) -> x / |x| with trax's guard against zero rows: |x|^2 is floored at 1e-6.
void normalise_row(const float* x, float* y, int d) {
  double ss = 0.0;
  for (int c = 0; c < d; ++c) ss += static_cast<double>(x[c]) * x[c];
  const double inv = 1.0 / std::sqrt(std::max(ss, 1e-6));
  for (int c = 0; c < d; ++c) y[c] = static_cast<float>(x[c] * inv);
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
double softmax_accumulate(const std::vector<double>& scores,
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
  const float* rot = rotations + static_cast<size_t>(round) * d * half;
  // The first largest of [p; -p]: the first largest p against the first smallest p.
  int arg_max = 0, arg_min = 0;
  double p_max = -INFINITY, p_min = INFINITY;
  for (int c = 0; c < half; ++c) {
    double p = 0.0;
    for (int k = 0; k < d; ++k) p += static_cast<double>(x[k]) * rot[k * half + c];
    if (p > p_max) p_max = p, arg_max = c;
    if (p < p_min) p_min = p, arg_min = c;
  }
  return -p_min > p_max ? half + arg_min : arg_max;
}

// Rounds are independent: each sorts the N positions by bucket * N + position and cuts its
// own chunks; the first chunk of a round looks back at nothing (trax sorts all rounds as one
// sequence whose look-back wraps into the previous round's last chunk; we do not, so the
// allowed set of a round depends on that round's buckets only). A key that two rounds share
// is counted in both rounds (trax's second implementation does the same).
Status attn_lsh_forward_cpu(const float* qk, const float* v, float* out, int heads, int64_t n,
                            int d, const LshSpec& spec, const float* rotations, LshTrace* trace,
                            AttnStats* stats) {
  ATTN_RETURN_IF_ERROR(check_spec(spec, d));
  if (heads < 1 || n < 1) return invalid_argument("lsh: heads and length must be positive");
  const int R = spec.n_hashes;
  const int64_t m = spec.chunk;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  if (trace) {
    trace->buckets.assign(static_cast<size_t>(heads) * R * n, 0);
    trace->order.assign(static_cast<size_t>(heads) * R * n, 0);
  }
  int64_t entries = 0;

#pragma omp parallel for schedule(dynamic) reduction(+ : entries)
  for (int h = 0; h < heads; ++h) {
    // Per head: qh, vh (N, d); kn the unit-length keys (N, d); o (R, N, d) and lse (R, N)
    // the per-round results before they are combined.
    const float* qh = qk + static_cast<size_t>(h) * n * d;
    const float* vh = v + static_cast<size_t>(h) * n * d;
    std::vector<float> kn(static_cast<size_t>(n) * d);
    for (int64_t j = 0; j < n; ++j) normalise_row(qh + j * d, kn.data() + j * d, d);
    std::vector<double> o(static_cast<size_t>(R) * n * d, 0.0), lse(static_cast<size_t>(R) * n);
    std::vector<int> bucket(n);
    std::vector<int64_t> order(n);
    std::vector<double> scores;
    std::vector<const float*> rows;
    for (int r = 0; r < R; ++r) {
      for (int64_t j = 0; j < n; ++j)
        bucket[j] = attn_lsh_hash(qh + j * d, rotations, r, d, spec.n_buckets);
      for (int64_t j = 0; j < n; ++j) order[j] = j;
      // Sorting by bucket * N + position is a stable sort by bucket.
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t a, int64_t b) { return bucket[a] < bucket[b]; });
      if (trace) {
        const size_t base = (static_cast<size_t>(h) * R + r) * n;
        for (int64_t j = 0; j < n; ++j) {
          trace->buckets[base + j] = bucket[j];
          trace->order[base + j] = static_cast<int>(order[j]);
        }
      }
      // Query slot s in chunk c sees key slots [max(0, (c-1) m), min(n, (c+1) m)).
      for (int64_t s = 0; s < n; ++s) {
        const int64_t c = s / m;
        const int64_t lo = std::max<int64_t>(0, (c - 1) * m), hi = std::min(n, (c + 1) * m);
        const int64_t i = order[s];
        scores.clear();
        rows.clear();
        for (int64_t t = lo; t < hi; ++t) {
          const int64_t j = order[t];
          if (j > i) continue;
          if (j == i) {
            scores.push_back(kSelfScore);
          } else {
            scores.push_back(dot(qh + i * d, kn.data() + j * d, d) * scale);
            ++entries;
          }
          rows.push_back(vh + j * d);
        }
        double* oi = o.data() + (static_cast<size_t>(r) * n + i) * d;
        lse[static_cast<size_t>(r) * n + i] = softmax_accumulate(scores, rows, oi, d);
      }
    }
    // o (R, N, d) and lse (R, N) -> out rows of this head.
    std::vector<double> oi(static_cast<size_t>(R) * d), li(R);
    for (int64_t i = 0; i < n; ++i) {
      for (int r = 0; r < R; ++r) {
        li[r] = lse[static_cast<size_t>(r) * n + i];
        std::copy_n(o.data() + (static_cast<size_t>(r) * n + i) * d, d, oi.data() + r * d);
      }
      combine_rounds(oi.data(), li.data(), R, d, out + (static_cast<size_t>(h) * n + i) * d);
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
  std::vector<std::vector<int64_t>> picked(R);
  std::vector<int64_t> distinct;
  std::vector<float> kbuf, vbuf;
  std::vector<double> scores, o(static_cast<size_t>(R) * d), lse(R);
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
          scores.push_back(kSelfScore);
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
