// Dense and Sparse Transformer attention against the float64 oracle under the same mask,
// the block layout's entry counts, and decode against the full forward row by row.
#include <QtTest/QtTest>
#include <algorithm>
#include <cmath>
#include <vector>

#include "attention/sparse_keys.h"
#include "attnscope/attention.h"
#include "core/rng.h"

using namespace attnscope;

namespace {

// float32 kernels against the float64 oracle: scores are float dot products of width
// d <= 64 and outputs float sums over <= 1000 keys (online softmax rescaling included), so
// the expected relative error is ~1e-6; 1e-5 leaves room for that and still catches any
// wrongly admitted or dropped key, which moves outputs by ~1e-1.
constexpr double kTol = 1e-5;

std::vector<float> random_floats(uint64_t seed, int64_t count) {
  Rng rng(seed);
  std::vector<float> x(static_cast<size_t>(count));
  for (auto& e : x) e = static_cast<float>(rng.normal());
  return x;
}

std::vector<double> to_double(const std::vector<float>& x) {
  return {x.begin(), x.end()};
}

// max|a - b| / max|b|.
double rel_error(const float* a, const double* b, int64_t count) {
  double num = 0.0, den = 0.0;
  for (int64_t i = 0; i < count; ++i) {
    num = std::max(num, std::abs(a[i] - b[i]));
    den = std::max(den, std::abs(b[i]));
  }
  return den > 0.0 ? num / den : num;
}

struct Inputs {
  std::vector<float> q, k, v;
  Inputs(uint64_t seed, int heads, int64_t nq, int64_t nk, int d)
      : q(random_floats(seed, heads * nq * d)),
        k(random_floats(seed + 1, heads * nk * d)),
        v(random_floats(seed + 2, heads * nk * d)) {}
};

std::vector<double> oracle(const Inputs& in, int heads, int64_t nq, int64_t nk, int d,
                           const AttnMask& mask) {
  std::vector<double> out(static_cast<size_t>(heads * nq * d));
  const auto q = to_double(in.q), k = to_double(in.k), v = to_double(in.v);
  attn_naive_forward_f64(q.data(), k.data(), v.data(), out.data(), heads, nq, nk, d, mask);
  return out;
}

const char* pattern_name(SparsePattern p) {
  return p == SparsePattern::kStrided ? "strided" : "fixed";
}
const char* combine_name(SparseCombine c) {
  return c == SparseCombine::kInterleaved ? "interleaved"
         : c == SparseCombine::kMerged    ? "merged"
                                          : "per-head";
}

SparseConfig sparse_cfg(SparsePattern p, SparseCombine c, int stride, int block, int summary) {
  SparseConfig cfg;
  cfg.pattern = p;
  cfg.combine = c;
  cfg.stride = stride;
  cfg.block = block;
  cfg.summary = summary;
  return cfg;
}

AttnMask sparse_mask(const SparseConfig& cfg, int layer, int heads) {
  return [cfg, layer, heads](int h, int64_t i, int64_t j) {
    return attn_sparse_allowed(cfg, attn_sparse_set(cfg, layer, h, heads), i, j);
  };
}

}  // namespace

class TestAttentionDenseSparse : public QObject {
  Q_OBJECT

 private slots:
  void dense_matches_naive_causal();
  void dense_matches_naive_with_query_offset();
  void sparse_sets_follow_combine_mode();
  void sparse_key_lists_are_the_mask();
  void sparse_matches_naive_all_patterns_and_modes();
  void sparse_layout_is_far_below_dense();
  void dense_decode_matches_forward_rows();
  void sparse_decode_matches_forward_rows_and_reads_only_the_pattern();
  void sparse_rejects_unresolved_stride();
};

void TestAttentionDenseSparse::dense_matches_naive_causal() {
  struct Shape {
    int64_t n;
    int heads, d;
  };
  for (const Shape s : {Shape{1, 1, 16}, Shape{33, 3, 16}, Shape{256, 3, 64}, Shape{1000, 1, 64},
                        Shape{1000, 3, 16}}) {
    const Inputs in(11 + s.n, s.heads, s.n, s.n, s.d);
    std::vector<float> out(in.q.size());
    AttnStats stats;
    QVERIFY(attn_dense_forward_cpu(in.q.data(), in.k.data(), in.v.data(), out.data(), s.heads, s.n,
                                   s.n, s.d, 0, &stats));
    const auto ref =
        oracle(in, s.heads, s.n, s.n, s.d, [](int, int64_t i, int64_t j) { return j <= i; });
    const double err = rel_error(out.data(), ref.data(), static_cast<int64_t>(out.size()));
    QVERIFY2(
        err <= kTol,
        qPrintable(QString("N=%1 H=%2 d=%3 rel err %4").arg(s.n).arg(s.heads).arg(s.d).arg(err)));
    // Every causal pair once, plus at most the masked half of each 64-wide diagonal tile.
    const int64_t causal = s.heads * s.n * (s.n + 1) / 2;
    QVERIFY(stats.score_entries >= causal);
    QVERIFY(stats.score_entries <= causal + s.heads * s.n * 64);
  }
}

void TestAttentionDenseSparse::dense_matches_naive_with_query_offset() {
  // Perceiver AR cross-attention: nq latents at the end of an nk-long context.
  struct Shape {
    int64_t nq, nk, offset;
    int heads, d;
  };
  for (const Shape s : {Shape{100, 300, 200, 2, 16}, Shape{37, 130, 93, 3, 64},
                        Shape{64, 1000, 936, 1, 64}, Shape{5, 5, 0, 1, 16}}) {
    const Inputs in(77 + s.nq, s.heads, s.nq, s.nk, s.d);
    std::vector<float> out(in.q.size());
    AttnStats stats;
    QVERIFY(attn_dense_forward_cpu(in.q.data(), in.k.data(), in.v.data(), out.data(), s.heads, s.nq,
                                   s.nk, s.d, s.offset, &stats));
    const int64_t off = s.offset;
    const auto ref = oracle(in, s.heads, s.nq, s.nk, s.d,
                            [off](int, int64_t m, int64_t j) { return j <= off + m; });
    const double err = rel_error(out.data(), ref.data(), static_cast<int64_t>(out.size()));
    QVERIFY2(err <= kTol,
             qPrintable(QString("nq=%1 nk=%2 rel err %3").arg(s.nq).arg(s.nk).arg(err)));
    int64_t allowed = 0;
    for (int64_t m = 0; m < s.nq; ++m) allowed += std::min(s.nk, off + m + 1);
    QVERIFY(stats.score_entries >= s.heads * allowed);
    QVERIFY(stats.score_entries <= s.heads * (allowed + s.nq * 64));
  }
}

void TestAttentionDenseSparse::sparse_sets_follow_combine_mode() {
  SparseConfig cfg = sparse_cfg(SparsePattern::kStrided, SparseCombine::kInterleaved, 8, 32, 2);
  QCOMPARE(attn_sparse_set(cfg, 0, 1, 4), SparseSet::kA1);
  QCOMPARE(attn_sparse_set(cfg, 3, 0, 4), SparseSet::kA2);
  cfg.combine = SparseCombine::kMerged;
  QCOMPARE(attn_sparse_set(cfg, 1, 2, 4), SparseSet::kUnion);
  cfg.combine = SparseCombine::kPerHead;
  QCOMPARE(attn_sparse_set(cfg, 0, 1, 4), SparseSet::kA1);
  QCOMPARE(attn_sparse_set(cfg, 0, 2, 4), SparseSet::kA2);
  QCOMPARE(attn_sparse_set(cfg, 0, 0, 1), SparseSet::kUnion);
  // The released code's local window: l positions, so i - l is outside A1 but in A2.
  QVERIFY(attn_sparse_allowed(cfg, SparseSet::kA1, 20, 13));
  QVERIFY(!attn_sparse_allowed(cfg, SparseSet::kA1, 20, 12));
  QVERIFY(attn_sparse_allowed(cfg, SparseSet::kA2, 20, 12));
  QVERIFY(!attn_sparse_allowed(cfg, SparseSet::kA2, 20, 13));
  QVERIFY(!attn_sparse_allowed(cfg, SparseSet::kUnion, 12, 20));
  const SparseConfig fx = sparse_cfg(SparsePattern::kFixed, SparseCombine::kMerged, 8, 32, 2);
  QVERIFY(attn_sparse_allowed(fx, SparseSet::kA1, 17, 16));
  QVERIFY(!attn_sparse_allowed(fx, SparseSet::kA1, 17, 15));
  QVERIFY(attn_sparse_allowed(fx, SparseSet::kA2, 17, 14));
  QVERIFY(!attn_sparse_allowed(fx, SparseSet::kA2, 17, 13));
}

// The key list both decode kernels walk (attention/sparse_keys.h: the CPU's and the CUDA
// one's) against the paper's sets, written out here: every allowed key exactly once, nothing
// else, and A1's keys first.
void TestAttentionDenseSparse::sparse_key_lists_are_the_mask() {
  struct Case {
    SparsePattern pattern;
    int l, c;
  };
  const Case cases[] = {{SparsePattern::kStrided, 1, 1},  {SparsePattern::kStrided, 7, 1},
                        {SparsePattern::kStrided, 32, 1}, {SparsePattern::kFixed, 8, 1},
                        {SparsePattern::kFixed, 8, 3},    {SparsePattern::kFixed, 8, 8},
                        {SparsePattern::kFixed, 5, 2}};
  int64_t checked = 0;
  for (const Case& cs : cases)
    for (SparseSet set : {SparseSet::kA1, SparseSet::kA2, SparseSet::kUnion}) {
      SparseConfig cfg = sparse_cfg(cs.pattern, SparseCombine::kMerged, cs.l, 32, 1);
      cfg.summary = cs.c;
      const detail::SparseKeys keys = detail::sparse_keys_of(cfg, set);
      const int64_t l = cs.l;
      for (int64_t i = 0; i < 100; ++i) {
        std::vector<int64_t> want, a1_part;
        for (int64_t j = 0; j <= i; ++j) {
          const bool a1 = cs.pattern == SparsePattern::kStrided ? i - j < l : j / l == i / l;
          const bool a2 =
              cs.pattern == SparsePattern::kStrided ? (i - j) % l == 0 : j % l >= l - cs.c;
          if (set == SparseSet::kA1 ? a1 : set == SparseSet::kA2 ? a2 : (a1 || a2))
            want.push_back(j);
          if (a1 && set != SparseSet::kA2) a1_part.push_back(j);
        }
        const int64_t n = detail::sparse_key_count(keys, i);
        QCOMPARE(n, static_cast<int64_t>(want.size()));
        std::vector<int64_t> got;
        for (int64_t t = 0; t < n; ++t) got.push_back(detail::sparse_key_at(keys, i, t));
        QVERIFY2(std::equal(a1_part.begin(), a1_part.end(), got.begin()),
                 "A1's keys come first, ascending");
        std::sort(got.begin(), got.end());
        QCOMPARE(got, want);
        for (int64_t j = 0; j <= i + 1; ++j)
          QCOMPARE(detail::sparse_key_allowed(keys, i, j),
                   std::binary_search(want.begin(), want.end(), j));
        ++checked;
      }
    }
  QCOMPARE(checked, int64_t{7 * 3 * 100});
}

void TestAttentionDenseSparse::sparse_matches_naive_all_patterns_and_modes() {
  struct Shape {
    int64_t n;
    int heads, d;
  };
  struct Params {
    SparsePattern pattern;
    int stride, block, summary;
  };
  const Shape shapes[] = {{1, 1, 16}, {33, 3, 16}, {256, 3, 64}, {1000, 1, 64}, {1000, 4, 16}};
  const Params params[] = {
      {SparsePattern::kStrided, 8, 32, 0},   {SparsePattern::kStrided, 40, 64, 0},
      {SparsePattern::kStrided, 128, 32, 0}, {SparsePattern::kFixed, 32, 32, 8},
      {SparsePattern::kFixed, 48, 64, 48},   {SparsePattern::kFixed, 128, 32, 32}};
  int cases = 0;
  for (const Params& p : params)
    for (SparseCombine c :
         {SparseCombine::kInterleaved, SparseCombine::kMerged, SparseCombine::kPerHead})
      for (int layer : {0, 1}) {
        if (layer == 1 && c != SparseCombine::kInterleaved) continue;
        const SparseConfig cfg = sparse_cfg(p.pattern, c, p.stride, p.block, p.summary);
        for (const Shape s : shapes) {
          const Inputs in(1000 + cases, s.heads, s.n, s.n, s.d);
          std::vector<float> out(in.q.size());
          AttnStats stats;
          QVERIFY(attn_sparse_forward_cpu(in.q.data(), in.k.data(), in.v.data(), out.data(),
                                          s.heads, s.n, s.d, cfg, layer, &stats));
          const auto ref = oracle(in, s.heads, s.n, s.n, s.d, sparse_mask(cfg, layer, s.heads));
          const double err = rel_error(out.data(), ref.data(), static_cast<int64_t>(out.size()));
          QVERIFY2(err <= kTol,
                   qPrintable(QString("%1 %2 l=%3 b=%4 c=%5 layer=%6 N=%7 H=%8 d=%9 rel err %10")
                                  .arg(pattern_name(p.pattern), combine_name(c))
                                  .arg(p.stride)
                                  .arg(p.block)
                                  .arg(p.summary)
                                  .arg(layer)
                                  .arg(s.n)
                                  .arg(s.heads)
                                  .arg(s.d)
                                  .arg(err)));
          QCOMPARE(stats.score_entries.load(),
                   attn_sparse_layout_entries(cfg, layer, s.heads, s.n));
          ++cases;
        }
      }
  QCOMPARE(cases, 6 * 4 * 5);
}

void TestAttentionDenseSparse::sparse_layout_is_far_below_dense() {
  const int64_t n = 4096;
  const int d = 16;
  const int64_t dense = n * (n + 1) / 2;
  const Inputs in(5, 1, n, n, d);
  std::vector<float> out(in.q.size());
  for (const SparseConfig& cfg :
       {sparse_cfg(SparsePattern::kStrided, SparseCombine::kMerged, 64, 32, 0),
        sparse_cfg(SparsePattern::kStrided, SparseCombine::kInterleaved, 64, 64, 0),
        sparse_cfg(SparsePattern::kFixed, SparseCombine::kMerged, 128, 32, 16)}) {
    for (int layer : {0, 1}) {
      AttnStats stats;
      QVERIFY(attn_sparse_forward_cpu(in.q.data(), in.k.data(), in.v.data(), out.data(), 1, n, d,
                                      cfg, layer, &stats));
      const int64_t layout = attn_sparse_layout_entries(cfg, layer, 1, n);
      QCOMPARE(stats.score_entries.load(), layout);
      // The layout covers every allowed pair at least once.
      int64_t allowed = 0;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j <= i; ++j)
          allowed += attn_sparse_allowed(cfg, attn_sparse_set(cfg, layer, 0, 1), i, j);
      QVERIFY(layout >= allowed);
      QVERIFY2(layout * 4 < dense, qPrintable(QString("%1 layer %2: %3 of %4 dense entries")
                                                  .arg(pattern_name(cfg.pattern))
                                                  .arg(layer)
                                                  .arg(layout)
                                                  .arg(dense)));
    }
  }
}

void TestAttentionDenseSparse::dense_decode_matches_forward_rows() {
  const int64_t n = 70;
  const int heads = 2, d = 16;
  const Inputs in(21, heads, n, n, d);
  std::vector<float> full(in.q.size());
  QVERIFY(attn_dense_forward_cpu(in.q.data(), in.k.data(), in.v.data(), full.data(), heads, n, n, d,
                                 0));
  AttnStats stats;
  std::vector<float> qi(heads * d), oi(heads * d);
  double worst = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    for (int h = 0; h < heads; ++h)
      std::copy_n(in.q.data() + (h * n + i) * d, d, qi.data() + h * d);
    attn_dense_decode_cpu(qi.data(), in.k.data(), in.v.data(), oi.data(), heads, n, i + 1, d,
                          &stats);
    for (int h = 0; h < heads; ++h) {
      const std::vector<double> row(full.begin() + (h * n + i) * d,
                                    full.begin() + (h * n + i + 1) * d);
      worst = std::max(worst, rel_error(oi.data() + h * d, row.data(), d));
    }
  }
  QVERIFY2(worst <= kTol, qPrintable(QString("rel err %1").arg(worst)));
  QCOMPARE(stats.keys_read.load(), heads * n * (n + 1) / 2);
}

void TestAttentionDenseSparse::sparse_decode_matches_forward_rows_and_reads_only_the_pattern() {
  const int64_t n = 150;
  const int heads = 3, d = 16;
  const Inputs in(31, heads, n, n, d);
  for (SparsePattern p : {SparsePattern::kStrided, SparsePattern::kFixed})
    for (SparseCombine c :
         {SparseCombine::kInterleaved, SparseCombine::kMerged, SparseCombine::kPerHead})
      for (int layer : {0, 1}) {
        const SparseConfig cfg = sparse_cfg(p, c, 16, 32, 4);
        std::vector<float> full(in.q.size());
        QVERIFY(attn_sparse_forward_cpu(in.q.data(), in.k.data(), in.v.data(), full.data(), heads,
                                        n, d, cfg, layer));
        AttnStats stats;
        std::vector<float> qi(heads * d), oi(heads * d);
        double worst = 0.0;
        int64_t pattern_size = 0;
        for (int64_t i = 0; i < n; ++i) {
          for (int h = 0; h < heads; ++h) {
            std::copy_n(in.q.data() + (h * n + i) * d, d, qi.data() + h * d);
            const SparseSet set = attn_sparse_set(cfg, layer, h, heads);
            for (int64_t j = 0; j <= i; ++j) pattern_size += attn_sparse_allowed(cfg, set, i, j);
          }
          attn_sparse_decode_cpu(qi.data(), in.k.data(), in.v.data(), oi.data(), heads, n, i, d,
                                 cfg, layer, &stats);
          for (int h = 0; h < heads; ++h) {
            const std::vector<double> row(full.begin() + (h * n + i) * d,
                                          full.begin() + (h * n + i + 1) * d);
            worst = std::max(worst, std::abs(rel_error(oi.data() + h * d, row.data(), d)));
          }
        }
        const QString what =
            QString("%1 %2 layer %3").arg(pattern_name(p), combine_name(c)).arg(layer);
        QVERIFY2(worst <= kTol, qPrintable(what + QString(" rel err %1").arg(worst)));
        QVERIFY2(stats.keys_read.load() == pattern_size,
                 qPrintable(what + QString(": read %1 keys, pattern has %2")
                                       .arg(stats.keys_read.load())
                                       .arg(pattern_size)));
      }
}

void TestAttentionDenseSparse::sparse_rejects_unresolved_stride() {
  const SparseConfig cfg = sparse_cfg(SparsePattern::kStrided, SparseCombine::kMerged, 0, 32, 8);
  const Inputs in(3, 1, 8, 8, 16);
  std::vector<float> out(in.q.size());
  const Status s =
      attn_sparse_forward_cpu(in.q.data(), in.k.data(), in.v.data(), out.data(), 1, 8, 16, cfg, 0);
  QVERIFY(!s.is_ok());
  QCOMPARE(s.code(), StatusCode::kInvalidArgument);
  QCOMPARE(attn_sparse_layout_entries(cfg, 0, 1, 8), int64_t{0});
}

QTEST_APPLESS_MAIN(TestAttentionDenseSparse)
#include "test_attention_dense_sparse.moc"
