// Tests of Reformer LSH attention: the chunked forward against a direct f64 reference of the
// scheme (and the naive masked oracle for one round), the decode scheme against a direct
// reference, and the hash/sort properties the bucket views rely on.
#include <QtTest>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "attnscope/attention.h"
#include "core/rng.h"

using namespace attnscope;

namespace {

constexpr double kSelf = -1e5;

// (H, N, d) of N(0, scale) floats.
std::vector<float> random_tensor(uint64_t seed, size_t count, double scale) {
  Rng rng(seed);
  std::vector<float> x(count);
  for (float& v : x) v = static_cast<float>(scale * rng.normal());
  return x;
}

std::vector<double> unit_f64(const float* x, int d) {
  double ss = 0.0;
  for (int c = 0; c < d; ++c) ss += static_cast<double>(x[c]) * x[c];
  const double inv = 1.0 / std::sqrt(std::max(ss, 1e-6));
  std::vector<double> y(d);
  for (int c = 0; c < d; ++c) y[c] = x[c] * inv;
  return y;
}

// Softmax over (score, value row) pairs in f64: writes the output into o (d), returns lse.
double attend_f64(const std::vector<double>& scores, const std::vector<const float*>& vals,
                  double* o, int d) {
  const double mx = *std::max_element(scores.begin(), scores.end());
  double z = 0.0;
  for (double s : scores) z += std::exp(s - mx);
  std::fill_n(o, d, 0.0);
  for (size_t t = 0; t < scores.size(); ++t)
    for (int c = 0; c < d; ++c) o[c] += std::exp(scores[t] - mx) / z * vals[t][c];
  return mx + std::log(z);
}

void combine_f64(const std::vector<double>& o, const std::vector<double>& lse, int d, double* out) {
  const double mx = *std::max_element(lse.begin(), lse.end());
  double z = 0.0;
  for (double l : lse) z += std::exp(l - mx);
  std::fill_n(out, d, 0.0);
  for (size_t r = 0; r < lse.size(); ++r)
    for (int c = 0; c < d; ++c) out[c] += std::exp(lse[r] - mx) / z * o[r * d + c];
}

// Slot of each position after sorting by bucket * N + position: (N).
std::vector<int64_t> sorted_slot(const std::vector<int>& bucket) {
  const int64_t n = static_cast<int64_t>(bucket.size());
  std::vector<int64_t> key(n), pos(n), slot(n);
  for (int64_t j = 0; j < n; ++j) key[j] = bucket[j] * n + j, pos[j] = j;
  std::sort(pos.begin(), pos.end(), [&](int64_t a, int64_t b) { return key[a] < key[b]; });
  for (int64_t s = 0; s < n; ++s) slot[pos[s]] = s;
  return slot;
}

// Buckets of every position of head h in round r: (N).
std::vector<int> head_buckets(const float* qk, int h, int r, int64_t n, int d, const LshSpec& spec,
                              const float* rot) {
  std::vector<int> b(n);
  for (int64_t j = 0; j < n; ++j)
    b[j] = attn_lsh_hash(qk + (h * n + j) * d, rot, r, d, spec.n_buckets);
  return b;
}

// The allowed keys of query i in one round of the chunked forward: j <= i whose sorted chunk
// is i's chunk or the one before (no wrap-around; the first chunk sees only itself).
bool chunk_allowed(const std::vector<int64_t>& slot, int64_t m, int64_t i, int64_t j) {
  const int64_t ci = slot[i] / m, cj = slot[j] / m;
  return j <= i && (cj == ci || cj == ci - 1);
}

// Direct f64 reference of the chunked scheme: out (H, N, d); *pairs counts non-self scores.
std::vector<double> lsh_reference(const float* qk, const float* v, int heads, int64_t n, int d,
                                  const LshSpec& spec, const float* rot, int64_t* pairs) {
  std::vector<double> out(static_cast<size_t>(heads) * n * d);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  *pairs = 0;
  for (int h = 0; h < heads; ++h) {
    std::vector<std::vector<int64_t>> sorted_slots;
    for (int r = 0; r < spec.n_hashes; ++r)
      sorted_slots.push_back(sorted_slot(head_buckets(qk, h, r, n, d, spec, rot)));
    for (int64_t i = 0; i < n; ++i) {
      const float* q = qk + (h * n + i) * d;
      std::vector<double> o(spec.n_hashes * d), lse(spec.n_hashes);
      for (int r = 0; r < spec.n_hashes; ++r) {
        std::vector<double> scores;
        std::vector<const float*> vals;
        for (int64_t j = 0; j <= i; ++j) {
          if (!chunk_allowed(sorted_slots[r], spec.chunk, i, j)) continue;
          if (j == i) {
            scores.push_back(kSelf);
          } else {
            const std::vector<double> k = unit_f64(qk + (h * n + j) * d, d);
            double s = 0.0;
            for (int c = 0; c < d; ++c) s += q[c] * k[c];
            scores.push_back(s * scale);
            ++*pairs;
          }
          vals.push_back(v + (h * n + j) * d);
        }
        lse[r] = attend_f64(scores, vals, o.data() + r * d, d);
      }
      combine_f64(o, lse, d, out.data() + (h * n + i) * d);
    }
  }
  return out;
}

// max |a - b| / max |b|.
double rel_error(const float* a, const double* b, size_t count) {
  double num = 0.0, den = 0.0;
  for (size_t t = 0; t < count; ++t) {
    num = std::max(num, std::abs(a[t] - b[t]));
    den = std::max(den, std::abs(b[t]));
  }
  return num / std::max(den, 1e-300);
}

struct Case {
  int heads;
  int64_t n;
  int d;
  LshSpec spec;
};

std::vector<Case> forward_cases() {
  std::vector<Case> cs;
  for (int nh : {1, 2, 4})
    for (int nb : {2, 4, 8, 16}) {
      cs.push_back({2, 64, 8, {nh, 8, nb}});    // N a multiple of m
      cs.push_back({3, 45, 16, {nh, 8, nb}});   // N not a multiple of m
      cs.push_back({1, 100, 4, {nh, 16, nb}});  // narrow heads, many ties in buckets
    }
  cs.push_back({2, 7, 8, {2, 16, 4}});  // one chunk, shorter than m
  cs.push_back({2, 33, 8, {2, 1, 8}});  // m = 1: each query sees its slot and the one before
  return cs;
}

}  // namespace

class TestAttentionLsh : public QObject {
  Q_OBJECT

 private slots:
  // The forward equals the direct f64 reference of the scheme for every round count. The
  // implementation keeps unit keys in float and rounds outputs to float (relative error about
  // 1e-7 on scores of order 1), so 1e-5 leaves two orders of margin while still catching any
  // wrong mask entry (one extra or missing key moves outputs by ~1e-2).
  void forward_matches_reference() {
    for (const Case& c : forward_cases()) {
      const size_t count = static_cast<size_t>(c.heads) * c.n * c.d;
      const std::vector<float> qk = random_tensor(11 + c.n, count, 1.0);
      const std::vector<float> v = random_tensor(29 + c.n, count, 1.0);
      const std::vector<float> rot =
          attn_lsh_rotations(5, 3, c.spec.n_hashes, c.d, c.spec.n_buckets);
      std::vector<float> out(count);
      AttnStats stats;
      QVERIFY(attn_lsh_forward_cpu(qk.data(), v.data(), out.data(), c.heads, c.n, c.d, c.spec,
                                   rot.data(), nullptr, &stats)
                  .is_ok());
      int64_t pairs = 0;
      const std::vector<double> ref =
          lsh_reference(qk.data(), v.data(), c.heads, c.n, c.d, c.spec, rot.data(), &pairs);
      const double err = rel_error(out.data(), ref.data(), count);
      QVERIFY2(err <= 1e-5, qPrintable(QString("n=%1 m=%2 hashes=%3 buckets=%4 err=%5")
                                           .arg(c.n)
                                           .arg(c.spec.chunk)
                                           .arg(c.spec.n_hashes)
                                           .arg(c.spec.n_buckets)
                                           .arg(err)));
      QCOMPARE(stats.score_entries.load(), pairs);
    }
  }

  // One round is ordinary attention under a mask: the chunk mask with self removed unless it
  // is the only key. exp(-1e5 - max) is exactly 0 in double, so the finite self score and the
  // removal agree bit for bit in the oracle; same 1e-5 reasoning as above.
  void one_round_equals_naive_under_mask() {
    for (const Case& c : forward_cases()) {
      if (c.spec.n_hashes != 1) continue;
      const size_t count = static_cast<size_t>(c.heads) * c.n * c.d;
      const std::vector<float> qk = random_tensor(41 + c.n, count, 1.0);
      const std::vector<float> v = random_tensor(43 + c.n, count, 1.0);
      const std::vector<float> rot = attn_lsh_rotations(9, 0, 1, c.d, c.spec.n_buckets);
      std::vector<float> out(count);
      QVERIFY(attn_lsh_forward_cpu(qk.data(), v.data(), out.data(), c.heads, c.n, c.d, c.spec,
                                   rot.data())
                  .is_ok());
      // q (H, N, d) as is; k (H, N, d) unit rows; v (H, N, d); all f64.
      std::vector<double> q(count), k(count), vd(v.begin(), v.end()), ref(count);
      for (size_t t = 0; t < count; ++t) q[t] = qk[t];
      for (int64_t row = 0; row < c.heads * c.n; ++row) {
        const std::vector<double> u = unit_f64(qk.data() + row * c.d, c.d);
        std::copy(u.begin(), u.end(), k.begin() + row * c.d);
      }
      std::vector<std::vector<int64_t>> sorted_slots;
      for (int h = 0; h < c.heads; ++h)
        sorted_slots.push_back(
            sorted_slot(head_buckets(qk.data(), h, 0, c.n, c.d, c.spec, rot.data())));
      const int64_t m = c.spec.chunk;
      const AttnMask mask = [&](int h, int64_t i, int64_t j) {
        if (!chunk_allowed(sorted_slots[h], m, i, j)) return false;
        if (j != i) return true;
        for (int64_t o = 0; o < i; ++o)
          if (chunk_allowed(sorted_slots[h], m, i, o)) return false;
        return true;
      };
      attn_naive_forward_f64(q.data(), k.data(), vd.data(), ref.data(), c.heads, c.n, c.n, c.d,
                             mask);
      QVERIFY2(rel_error(out.data(), ref.data(), count) <= 1e-5,
               qPrintable(QString("n=%1 buckets=%2").arg(c.n).arg(c.spec.n_buckets)));
    }
  }

  // The decode scheme against a direct reference: for query i, per round, the most recent 2m
  // positions j <= i in i's bucket (i included), self at -1e5, rounds combined by lse.
  // Buckets past i are set to i's bucket and fetch refuses j > i, so any look ahead fails.
  // Tolerance 1e-5 for the same float-key reason as the forward.
  void decode_matches_reference() {
    for (int nh : {1, 2, 4})
      for (int nb : {2, 4, 8}) {
        const int heads = 2, d = 8;
        const int64_t n = 70;
        const LshSpec spec{nh, 4, nb};
        const size_t count = static_cast<size_t>(heads) * n * d;
        const std::vector<float> qk = random_tensor(101 + nb, count, 1.0);
        const std::vector<float> v = random_tensor(103 + nb, count, 1.0);
        const std::vector<float> rot = attn_lsh_rotations(7, 1, nh, d, nb);
        // all_b (H, R, N): buckets of the full sequence.
        std::vector<int> all_b(static_cast<size_t>(heads) * nh * n);
        for (int h = 0; h < heads; ++h)
          for (int r = 0; r < nh; ++r) {
            const std::vector<int> b = head_buckets(qk.data(), h, r, n, d, spec, rot.data());
            std::copy(b.begin(), b.end(), all_b.begin() + (h * nh + r) * n);
          }
        const double scale = 1.0 / std::sqrt(static_cast<double>(d));
        for (int64_t i = 0; i < n; ++i) {
          std::vector<int> cache = all_b;
          for (int h = 0; h < heads; ++h)
            for (int r = 0; r < nh; ++r)
              for (int64_t j = i + 1; j < n; ++j)
                cache[(h * nh + r) * n + j] = all_b[(h * nh + r) * n + i];
          std::vector<float> q(heads * d), out(heads * d);
          for (int h = 0; h < heads; ++h)
            std::copy_n(qk.data() + (h * n + i) * d, d, q.data() + h * d);
          bool looked_ahead = false;
          const LshFetch fetch = [&](int h, int64_t j, float* k, float* vv) {
            if (j > i) looked_ahead = true;
            const std::vector<double> u = unit_f64(qk.data() + (h * n + j) * d, d);
            for (int c = 0; c < d; ++c) k[c] = static_cast<float>(u[c]);
            std::copy_n(v.data() + (h * n + j) * d, d, vv);
          };
          AttnStats stats;
          attn_lsh_decode_cpu(q.data(), out.data(), heads, d, i, spec, cache.data(), n, fetch,
                              &stats);
          QVERIFY(!looked_ahead);
          std::vector<double> ref(heads * d);
          int64_t distinct = 0;
          for (int h = 0; h < heads; ++h) {
            std::vector<double> o(nh * d), lse(nh);
            std::vector<bool> used(i + 1, false);
            for (int r = 0; r < nh; ++r) {
              const int* b = all_b.data() + (h * nh + r) * n;
              std::vector<int64_t> same;
              for (int64_t j = 0; j <= i; ++j)
                if (b[j] == b[i]) same.push_back(j);
              if (static_cast<int64_t>(same.size()) > 2 * spec.chunk)
                same.erase(same.begin(), same.end() - 2 * spec.chunk);
              std::vector<double> scores;
              std::vector<const float*> vals;
              for (int64_t j : same) {
                used[j] = true;
                const std::vector<double> k = unit_f64(qk.data() + (h * n + j) * d, d);
                double s = 0.0;
                for (int c = 0; c < d; ++c) s += q[h * d + c] * k[c];
                scores.push_back(j == i ? kSelf : s * scale);
                vals.push_back(v.data() + (h * n + j) * d);
              }
              lse[r] = attend_f64(scores, vals, o.data() + r * d, d);
            }
            combine_f64(o, lse, d, ref.data() + h * d);
            distinct += std::count(used.begin(), used.end(), true);
          }
          QVERIFY2(rel_error(out.data(), ref.data(), ref.size()) <= 1e-5,
                   qPrintable(QString("i=%1 hashes=%2 buckets=%3").arg(i).arg(nh).arg(nb)));
          QCOMPARE(stats.keys_read.load(), distinct);
        }
      }
  }

  // Hashes lie in [0, b), are invariant to positive scaling, and the trace holds them and a
  // permutation sorted by (bucket, position); rotations depend on seed and layer only.
  void bucket_properties() {
    const int heads = 3, d = 16;
    const int64_t n = 200;
    const LshSpec spec{3, 16, 12};
    const size_t count = static_cast<size_t>(heads) * n * d;
    const std::vector<float> qk = random_tensor(3, count, 2.0);
    const std::vector<float> v = random_tensor(4, count, 1.0);
    const std::vector<float> rot = attn_lsh_rotations(1, 2, spec.n_hashes, d, spec.n_buckets);
    QCOMPARE(rot.size(), static_cast<size_t>(spec.n_hashes * d * spec.n_buckets / 2));
    QVERIFY(rot == attn_lsh_rotations(1, 2, spec.n_hashes, d, spec.n_buckets));
    QVERIFY(rot != attn_lsh_rotations(1, 3, spec.n_hashes, d, spec.n_buckets));
    QVERIFY(rot != attn_lsh_rotations(2, 2, spec.n_hashes, d, spec.n_buckets));

    LshTrace trace;
    std::vector<float> out(count);
    QVERIFY(
        attn_lsh_forward_cpu(qk.data(), v.data(), out.data(), heads, n, d, spec, rot.data(), &trace)
            .is_ok());
    QCOMPARE(trace.buckets.size(), static_cast<size_t>(heads) * spec.n_hashes * n);
    QCOMPARE(trace.order.size(), trace.buckets.size());
    for (int h = 0; h < heads; ++h)
      for (int r = 0; r < spec.n_hashes; ++r) {
        const int* b = trace.buckets.data() + (h * spec.n_hashes + r) * n;
        const int* o = trace.order.data() + (h * spec.n_hashes + r) * n;
        std::vector<bool> seen(n, false);
        std::vector<bool> bucket_used(spec.n_buckets, false);
        for (int64_t j = 0; j < n; ++j) {
          const float* x = qk.data() + (h * n + j) * d;
          QVERIFY(b[j] >= 0 && b[j] < spec.n_buckets);
          QCOMPARE(b[j], attn_lsh_hash(x, rot.data(), r, d, spec.n_buckets));
          std::vector<float> x3(x, x + d);
          for (float& e : x3) e *= 3.0f;
          QCOMPARE(attn_lsh_hash(x3.data(), rot.data(), r, d, spec.n_buckets), b[j]);
          bucket_used[b[j]] = true;
          QVERIFY(o[j] >= 0 && o[j] < n && !seen[o[j]]);
          seen[o[j]] = true;
        }
        for (int64_t s = 1; s < n; ++s) {
          const int64_t prev = static_cast<int64_t>(b[o[s - 1]]) * n + o[s - 1];
          const int64_t cur = static_cast<int64_t>(b[o[s]]) * n + o[s];
          QVERIFY(prev < cur);
        }
        // 200 random directions over 12 buckets: every bucket is hit (a stuck hash is not).
        QVERIFY(std::all_of(bucket_used.begin(), bucket_used.end(), [](bool u) { return u; }));
      }
  }

  // The forward hashes from float projections checked against the exact double ones: its
  // buckets must equal attn_lsh_hash bit for bit, also where projections tie exactly
  // (duplicated and negated rotation columns), for zero rows, rows whose products underflow
  // and rows too large for the float check, and its output must still match the reference
  // over many chunks (several chunks per work group).
  void forward_buckets_equal_hash_on_ties() {
    const int heads = 2, d = 32;
    const int64_t n = 600;
    for (int nb : {2, 4, 16, 64}) {
      const LshSpec spec{2, 16, nb};
      const int half = nb / 2;
      std::vector<float> rot = attn_lsh_rotations(13, 1, spec.n_hashes, d, nb);
      // Round 1: column c copies or negates column c / 2 (ties between columns and between
      // the largest p and the largest -p).
      float* r1 = rot.data() + static_cast<size_t>(d) * half;
      for (int c = 1; c < half; ++c)
        for (int k = 0; k < d; ++k)
          r1[k * half + c] = (c % 2 ? -1.0f : 1.0f) * r1[k * half + c / 2];
      const size_t count = static_cast<size_t>(heads) * n * d;
      std::vector<float> qk = random_tensor(61 + nb, count, 1.0);
      const std::vector<float> v = random_tensor(67 + nb, count, 1.0);
      for (int64_t row = 0; row < heads * n; row += 7) {
        float* x = qk.data() + row * d;
        const int kind = static_cast<int>(row / 7 % 5);
        for (int k = 0; k < d; ++k) {
          if (kind == 0) x[k] = 0.0f;                        // every projection ties at 0
          if (kind == 1) x[k] *= 1e-30f;                     // products underflow in float
          if (kind == 2) x[k] *= 1e30f;                      // beyond the float check
          if (kind == 3) x[k] = k == row % d ? 1.0f : 0.0f;  // a basis vector
        }
      }
      LshTrace trace;
      std::vector<float> out(count);
      AttnStats stats;
      QVERIFY(attn_lsh_forward_cpu(qk.data(), v.data(), out.data(), heads, n, d, spec, rot.data(),
                                   &trace, &stats)
                  .is_ok());
      for (int h = 0; h < heads; ++h)
        for (int r = 0; r < spec.n_hashes; ++r)
          for (int64_t j = 0; j < n; ++j)
            QCOMPARE(trace.buckets[(h * spec.n_hashes + r) * n + j],
                     attn_lsh_hash(qk.data() + (h * n + j) * d, rot.data(), r, d, nb));
      // The output check needs moderate inputs: redo it without the huge rows.
      for (int64_t row = 14; row < heads * n; row += 35)
        for (int k = 0; k < d; ++k) qk[row * d + k] *= 1e-30f;
      QVERIFY(attn_lsh_forward_cpu(qk.data(), v.data(), out.data(), heads, n, d, spec, rot.data(),
                                   nullptr, &stats)
                  .is_ok());
      int64_t pairs = 0;
      const std::vector<double> ref =
          lsh_reference(qk.data(), v.data(), heads, n, d, spec, rot.data(), &pairs);
      const double err = rel_error(out.data(), ref.data(), count);
      QVERIFY2(err <= 1e-5, qPrintable(QString("buckets=%1 err=%2").arg(nb).arg(err)));
    }
  }

  // Projections that tie in float but not in double (1 + 2^-30 rounds to 1 in float): the
  // forward's buckets follow the double hash. x = (1, 1, 0, 0) projects to
  // round 0: [1, 1 + 2^-30, -1, 0] -> bucket 1 (the largest p beats 1 = -p_min);
  // round 1: [1, 1 + 2^-30, -1 - 2^-29, 0] -> bucket 4 + 2 (-p_min is larger).
  void forward_buckets_follow_double_on_near_ties() {
    const int d = 4, nb = 8, half = 4;
    const int64_t n = 40;
    const LshSpec spec{2, 4, nb};
    const float e30 = std::ldexp(1.0f, -30), e29 = std::ldexp(1.0f, -29);
    // cols[r][c] = column c of round r (d entries).
    const float cols[2][4][4] = {{{1, 0, 0, 0}, {1, e30, 0, 0}, {-1, 0, 0, 0}, {0, 0, 1, 0}},
                                 {{1, 0, 0, 0}, {1, e30, 0, 0}, {-1, -e29, 0, 0}, {0, 0, 1, 0}}};
    std::vector<float> rot(static_cast<size_t>(2) * d * half);
    for (int r = 0; r < 2; ++r)
      for (int k = 0; k < d; ++k)
        for (int c = 0; c < half; ++c) rot[(r * d + k) * half + c] = cols[r][c][k];
    std::vector<float> qk = random_tensor(71, static_cast<size_t>(n) * d, 1.0);
    const std::vector<float> v = random_tensor(73, static_cast<size_t>(n) * d, 1.0);
    for (int64_t j = 0; j < n; j += 2) {
      float* x = qk.data() + j * d;
      x[0] = 1.0f, x[1] = 1.0f, x[2] = 0.0f, x[3] = 0.0f;
    }
    QCOMPARE(attn_lsh_hash(qk.data(), rot.data(), 0, d, nb), 1);
    QCOMPARE(attn_lsh_hash(qk.data(), rot.data(), 1, d, nb), 6);
    LshTrace trace;
    std::vector<float> out(qk.size());
    QVERIFY(attn_lsh_forward_cpu(qk.data(), v.data(), out.data(), 1, n, d, spec, rot.data(), &trace)
                .is_ok());
    for (int r = 0; r < 2; ++r)
      for (int64_t j = 0; j < n; ++j)
        QCOMPARE(trace.buckets[r * n + j], attn_lsh_hash(qk.data() + j * d, rot.data(), r, d, nb));
  }

  void bad_spec_is_refused() {
    const std::vector<float> x(16, 1.0f);
    std::vector<float> out(16);
    const std::vector<float> rot = attn_lsh_rotations(0, 0, 1, 8, 4);
    QVERIFY(!attn_lsh_forward_cpu(x.data(), x.data(), out.data(), 1, 2, 8, {1, 4, 3}, rot.data())
                 .is_ok());
    QVERIFY(!attn_lsh_forward_cpu(x.data(), x.data(), out.data(), 1, 2, 8, {1, 0, 4}, rot.data())
                 .is_ok());
    QVERIFY(!attn_lsh_forward_cpu(x.data(), x.data(), out.data(), 1, 2, 8, {0, 4, 4}, rot.data())
                 .is_ok());
  }
};

QTEST_APPLESS_MAIN(TestAttentionLsh)
#include "test_attention_lsh.moc"
