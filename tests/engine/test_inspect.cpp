// Tests of the views' data (inspect.h): attention rows reproduce each family's forward,
// patterns equal their masks, LSH buckets/order/kept mass, the memory curve's series, and the
// refusals of bad arguments.
#include <QtTest>
#include <algorithm>
#include <cmath>
#include <set>

#include "attnscope/inspect.h"
#include "attnscope/model.h"

using namespace attnscope;

namespace {

// Rows against the forward: the forward evaluates each row in float32 (sgemm scores, a
// polynomial 2^x with relative error < 1e-8, sums over <= 96 keys), the row in double; the
// difference is ~1e-7 of the output's scale, and 1e-5 still fails any wrong key or weight.
constexpr double kRowTol = 1e-5;
constexpr int64_t kN = 96;
// The largest relative error check_row has seen in the current test function (printed).
double g_worst = 0.0;

ModelConfig config(Family f) {
  ModelConfig c;
  c.family = f;
  c.modality = *modality_parse("text:96");
  c.layers = 3;
  c.dim = 32;
  c.heads = 4;
  c.seed = 5;
  switch (f) {
    case Family::kSparse:
      c.sparse.block = 16;
      c.sparse.stride = 16;
      c.sparse.summary = 4;
      break;
    case Family::kReformer:
      c.lsh.n_hashes = 2;
      c.lsh.chunk = 8;
      break;
    case Family::kPerceiverAR:
      c.perceiver.latents = 40;
      break;
    case Family::kHourglass:
      c.hourglass.hierarchy = "1@1,2@3,1@1";
      break;
    case Family::kDense:
      break;
  }
  Status st = config_resolve(c);
  Q_ASSERT(st.is_ok());
  return c;
}

// Query and key projections scaled up 10x so that the rows are far from uniform (the init's
// 0.02 leaves every score near 0, where a wrong mask would still average alike).
std::unique_ptr<Model> make(const ModelConfig& c) {
  WeightMap w = model_init_weights(c, InitOptions{3, /*zero_logits=*/false});
  for (auto& [name, t] : w)
    if (name.find("attn.wq") != std::string::npos || name.find("attn.wk") != std::string::npos)
      for (int64_t e = 0; e < t.numel(); ++e) t.data()[e] *= 10.0f;
  auto m = model_create(c, std::move(w));
  if (!m) qWarning("%s", m.status().message().c_str());
  return m ? std::move(*m) : nullptr;
}

std::vector<uint8_t> tokens(int64_t n) {
  std::vector<uint8_t> x(static_cast<size_t>(n));
  uint64_t s = 12345;
  for (auto& t : x) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    t = static_cast<uint8_t>(s >> 56);
  }
  return x;
}

// Checks one row: each head sums to 1 (0 when the rule allows no key: the fixed pattern's A2
// before the first summary column), is 0 wherever allowed(h, j) is false, and weights ·
// values equals the forward's output. Returns the relative error.
template <typename Allowed>
double check_row(const AttnRow& row, const AttnRowCheck& ck, const Allowed& allowed) {
  double worst = 0.0, scale = 0.0;
  for (float o : ck.output) scale = std::max(scale, std::abs(static_cast<double>(o)));
  for (int h = 0; h < row.heads; ++h) {
    double sum = 0.0;
    bool any = false;
    for (int64_t j = 0; j < row.keys; ++j) {
      const float w = row.weights[h * row.keys + j];
      any = any || allowed(h, j);
      if (!allowed(h, j) && w != 0.0f) {
        qWarning("head %d key %lld: weight %g on a key the rule forbids", h,
                 static_cast<long long>(j), w);
        return 1.0;
      }
      sum += w;
    }
    if (std::abs(sum - (any ? 1.0 : 0.0)) > 1e-5) return 1.0;
    for (int c = 0; c < ck.d; ++c) {
      double acc = 0.0;
      for (int64_t j = 0; j < row.keys; ++j)
        acc += static_cast<double>(row.weights[h * row.keys + j]) *
               ck.values[(h * row.keys + j) * ck.d + c];
      worst = std::max(worst, std::abs(acc - ck.output[h * ck.d + c]));
    }
  }
  const double rel = worst / std::max(scale, 1e-30);
  g_worst = std::max(g_worst, rel);
  return rel;
}

// Distinct causal keys of every query in the union of its LSH windows, from buckets/order.
std::vector<std::set<int64_t>> lsh_keys(const LshInspect& li, int head) {
  const int64_t n = li.n;
  std::vector<std::set<int64_t>> keys(static_cast<size_t>(n));
  for (int r = 0; r < li.n_hashes; ++r) {
    const int* ord = li.order.data() + (static_cast<int64_t>(head) * li.n_hashes + r) * n;
    for (int64_t s = 0; s < n; ++s) {
      const int64_t c = s / li.chunk, lo = std::max<int64_t>(0, (c - 1) * li.chunk),
                    hi = std::min(n, (c + 1) * li.chunk);
      for (int64_t t = lo; t < hi; ++t)
        if (ord[t] <= ord[s]) keys[ord[s]].insert(ord[t]);
    }
  }
  return keys;
}

// Brute-force cells of a square n x n mask (rows = queries, causal columns).
template <typename Allowed>
void brute_pattern(int64_t n, int grid, const Allowed& allowed, std::vector<float>* cells,
                   std::vector<float>* any, double* density,
                   std::vector<float>* causal_share = nullptr) {
  const int g = static_cast<int>(std::min<int64_t>(grid, n));
  std::vector<double> a(static_cast<size_t>(g * g)), c(a.size());
  double pairs = 0.0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      const int64_t ci = i * g / n, cj = j * g / n;
      // The cell of i is the one whose [a*n/g, (a+1)*n/g) holds it.
      int64_t ri = ci, rj = cj;
      while ((ri + 1) * n / g <= i) ++ri;
      while (ri * n / g > i) --ri;
      while ((rj + 1) * n / g <= j) ++rj;
      while (rj * n / g > j) --rj;
      c[ri * g + rj] += 1;
      if (allowed(i, j)) a[ri * g + rj] += 1, pairs += 1;
    }
  cells->assign(a.size(), 0.0f);
  any->assign(a.size(), 0.0f);
  for (size_t e = 0; e < a.size(); ++e) {
    (*cells)[e] = c[e] > 0 ? static_cast<float>(a[e] / c[e]) : 0.0f;
    (*any)[e] = a[e] > 0 ? 1.0f : 0.0f;
  }
  *density = pairs / (n * (n + 1) / 2.0);
  if (causal_share) {  // causal pairs over all pairs of the cell: 0 = wholly in the future
    causal_share->assign(a.size(), 0.0f);
    for (int r = 0; r < g; ++r)
      for (int k = 0; k < g; ++k) {
        const double all = static_cast<double>((r + 1) * n / g - r * n / g) *
                           static_cast<double>((k + 1) * n / g - k * n / g);
        (*causal_share)[static_cast<size_t>(r * g + k)] = static_cast<float>(c[r * g + k] / all);
      }
  }
}

}  // namespace

class TestInspect : public QObject {
  Q_OBJECT

 private slots:
  void init() { g_worst = 0.0; }
  void cleanup() {
    if (g_worst > 0.0) qInfo("largest relative error of weights . V vs the forward: %.2e", g_worst);
  }

  void layerCounts() {
    QCOMPARE(inspect_layer_count(config(Family::kDense)), 3);
    QCOMPARE(inspect_layer_count(config(Family::kPerceiverAR)), 4);
    QCOMPARE(inspect_layer_count(config(Family::kHourglass)), 4);  // 1 + 2 + 1 blocks
  }

  void attentionRowDenseSparse() {
    const auto x = tokens(kN);
    for (Family f : {Family::kDense, Family::kSparse}) {
      for (SparseCombine comb : {SparseCombine::kInterleaved, SparseCombine::kPerHead}) {
        for (SparsePattern pat : {SparsePattern::kStrided, SparsePattern::kFixed}) {
          if (f == Family::kDense &&
              (comb != SparseCombine::kInterleaved || pat != SparsePattern::kStrided))
            continue;
          ModelConfig c = config(f);
          c.sparse.combine = comb;
          c.sparse.pattern = pat;
          auto m = make(c);
          QVERIFY(m);
          for (int layer = 0; layer < c.layers; ++layer)
            for (int64_t q : {int64_t{0}, int64_t{17}, int64_t{50}, kN - 1}) {
              AttnRow row;
              AttnRowCheck ck;
              QVERIFY(inspect_attention_row(*m, x.data(), kN, layer, q, &row, &ck).is_ok());
              QCOMPARE(row.heads, 4);
              QCOMPARE(row.keys, kN);
              QCOMPARE(row.key_space, std::string("positions"));
              QCOMPARE(row.key_stride, int64_t{1});
              QCOMPARE(row.query_index, q);
              const double err = check_row(row, ck, [&](int h, int64_t j) {
                if (f == Family::kDense) return j <= q;
                return attn_sparse_allowed(c.sparse, attn_sparse_set(c.sparse, layer, h, 4), q, j);
              });
              QVERIFY2(err < kRowTol, qPrintable(QString("%1 layer %2 query %3: rel err %4")
                                                     .arg(family_name(f))
                                                     .arg(layer)
                                                     .arg(q)
                                                     .arg(err)));
              QCOMPARE(row.dense_kept.size(), size_t{4});
              for (double k : row.dense_kept) {
                if (f == Family::kDense) QVERIFY(std::abs(k - 1.0) < 1e-12);
                QVERIFY(k >= 0 && k <= 1 + 1e-12);
              }
            }
        }
      }
    }
  }

  // The dense mass a sparse layer keeps, against a dense model with the same weights: at layer
  // 0 both see the same queries and keys, so the sparse row's share is the dense row's weight
  // summed over the keys the sparse mask allows.
  void denseKeptAgainstADenseTwin() {
    const auto x = tokens(kN);
    for (SparsePattern pat : {SparsePattern::kStrided, SparsePattern::kFixed}) {
      ModelConfig c = config(Family::kSparse);
      c.sparse.pattern = pat;
      WeightMap w = model_init_weights(c, InitOptions{3, /*zero_logits=*/false});
      for (auto& [name, t] : w)
        if (name.find("attn.wq") != std::string::npos || name.find("attn.wk") != std::string::npos)
          for (int64_t e = 0; e < t.numel(); ++e) t.data()[e] *= 10.0f;
      ModelConfig cd = c;
      cd.family = Family::kDense;
      auto sparse = model_create(c, w);
      auto dense = model_create(cd, std::move(w));
      QVERIFY(sparse && dense);
      double least = 1.0;
      for (int64_t q : {int64_t{3}, int64_t{17}, int64_t{50}, kN - 1}) {
        AttnRow rs, rd;
        QVERIFY(inspect_attention_row(**sparse, x.data(), kN, 0, q, &rs).is_ok());
        QVERIFY(inspect_attention_row(**dense, x.data(), kN, 0, q, &rd).is_ok());
        for (int h = 0; h < 4; ++h) {
          const SparseSet set = attn_sparse_set(c.sparse, 0, h, 4);
          double want = 0;
          for (int64_t j = 0; j <= q; ++j)
            if (attn_sparse_allowed(c.sparse, set, q, j))
              want += rd.weights[static_cast<size_t>(h * kN + j)];
          // Tolerance: the dense row's weights are floats.
          QVERIFY2(std::abs(rs.dense_kept[static_cast<size_t>(h)] - want) < 1e-5,
                   qPrintable(QString("query %1 head %2: %3 vs %4")
                                  .arg(q)
                                  .arg(h)
                                  .arg(rs.dense_kept[static_cast<size_t>(h)])
                                  .arg(want)));
          least = std::min(least, want);
        }
      }
      QVERIFY(least < 0.99);  // the test would not tell anything if every key were kept
    }
  }

  void attentionRowReformer() {
    const auto x = tokens(kN);
    for (bool rev : {true, false}) {
      ModelConfig c = config(Family::kReformer);
      c.lsh.reversible = rev;
      auto m = make(c);
      QVERIFY(m);
      for (int layer = 0; layer < c.layers; ++layer) {
        LshInspect li;
        QVERIFY(inspect_lsh(*m, x.data(), kN, layer, &li).is_ok());
        for (int64_t q : {int64_t{0}, int64_t{5}, int64_t{40}, int64_t{77}, kN - 1}) {
          AttnRow row;
          AttnRowCheck ck;
          QVERIFY(inspect_attention_row(*m, x.data(), kN, layer, q, &row, &ck).is_ok());
          std::vector<std::set<int64_t>> keys[4];
          for (int h = 0; h < 4; ++h) keys[h] = lsh_keys(li, h);
          const double err = check_row(row, ck, [&](int h, int64_t j) {
            return keys[h][static_cast<size_t>(q)].count(j) > 0;
          });
          QVERIFY2(
              err < kRowTol,
              qPrintable(
                  QString("reformer layer %1 query %2: rel err %3").arg(layer).arg(q).arg(err)));
          // A query with other keys in its windows puts ~0 on itself (-1e5).
          if (q > 0 && keys[0][static_cast<size_t>(q)].size() > 1)
            QVERIFY(row.weights[static_cast<size_t>(q)] < 1e-30f);
        }
        // Each query's kept dense mass, averaged over all queries, is the layer's kept mass
        // (inspect_lsh computes it on its own from the buckets).
        std::vector<double> mean(4, 0.0);
        for (int64_t q = 0; q < kN; ++q) {
          AttnRow row;
          QVERIFY(inspect_attention_row(*m, x.data(), kN, layer, q, &row).is_ok());
          for (int h = 0; h < 4; ++h) mean[static_cast<size_t>(h)] += row.dense_kept[h] / kN;
        }
        for (int h = 0; h < 4; ++h)
          QVERIFY2(
              std::abs(mean[static_cast<size_t>(h)] - li.kept_mass[static_cast<size_t>(h)]) < 1e-9,
              qPrintable(QString("layer %1 head %2: %3 vs %4")
                             .arg(layer)
                             .arg(h)
                             .arg(mean[static_cast<size_t>(h)])
                             .arg(li.kept_mass[static_cast<size_t>(h)])));
      }
    }
  }

  void attentionRowPerceiver() {
    const ModelConfig c = config(Family::kPerceiverAR);
    auto m = make(c);
    QVERIFY(m);
    const auto x = tokens(kN);
    const int64_t first = kN - 40;
    for (int layer = 0; layer <= c.layers; ++layer)
      for (int64_t q : {first, first + 1, int64_t{70}, kN - 1}) {
        AttnRow row;
        AttnRowCheck ck;
        QVERIFY(inspect_attention_row(*m, x.data(), kN, layer, q, &row, &ck).is_ok());
        QCOMPARE(row.query_index, q - first);
        if (layer == 0) {
          QCOMPARE(row.key_space, std::string("inputs"));
          QCOMPARE(row.keys, kN);
          QCOMPARE(row.key_offset, int64_t{0});
        } else {
          QCOMPARE(row.key_space, std::string("latents"));
          QCOMPARE(row.keys, int64_t{40});
          QCOMPARE(row.key_offset, first);
        }
        // Key j is position key_offset + j; causal on positions.
        const double err =
            check_row(row, ck, [&](int, int64_t j) { return row.key_offset + j <= q; });
        QVERIFY2(
            err < kRowTol,
            qPrintable(
                QString("perceiver layer %1 query %2: rel err %3").arg(layer).arg(q).arg(err)));
      }
    // A non-latent position has no row.
    AttnRow row;
    Status st = inspect_attention_row(*m, x.data(), kN, 0, first - 1, &row);
    QCOMPARE(st.code(), StatusCode::kInvalidArgument);
    QVERIFY(st.message().find("not a latent") != std::string::npos);
  }

  void attentionRowHourglass() {
    const ModelConfig c = config(Family::kHourglass);
    auto m = make(c);
    QVERIFY(m);
    const auto x = tokens(kN);
    // Blocks: 0 at full resolution, 1 and 2 at 1/3 (32 rows), 3 at full resolution again.
    for (int layer = 0; layer < 4; ++layer)
      for (int64_t q : {int64_t{0}, int64_t{4}, int64_t{50}, kN - 1}) {
        AttnRow row;
        AttnRowCheck ck;
        QVERIFY(inspect_attention_row(*m, x.data(), kN, layer, q, &row, &ck).is_ok());
        const bool inner = layer == 1 || layer == 2;
        QCOMPARE(row.key_stride, int64_t{inner ? 3 : 1});
        QCOMPARE(row.keys, inner ? int64_t{32} : kN);
        QCOMPARE(row.key_space, std::string(inner ? "level 1" : "positions"));
        QCOMPARE(row.key_offset, int64_t{inner ? -2 : 0});
        QCOMPARE(row.query_index, inner ? q / 3 : q);
        const double err = check_row(row, ck, [&](int, int64_t j) { return j <= row.query_index; });
        QVERIFY2(
            err < kRowTol,
            qPrintable(
                QString("hourglass layer %1 query %2: rel err %3").arg(layer).arg(q).arg(err)));
      }
  }

  void attentionRowRefusals() {
    const ModelConfig c = config(Family::kDense);
    auto m = make(c);
    const auto x = tokens(kN);
    AttnRow row;
    Status st = inspect_attention_row(*m, x.data(), kN, 3, 0, &row);
    QCOMPARE(st.code(), StatusCode::kInvalidArgument);
    QVERIFY(st.message().find("layers 0..2") != std::string::npos);
    st = inspect_attention_row(*m, x.data(), 10, 0, 10, &row);
    QCOMPARE(st.code(), StatusCode::kInvalidArgument);
    QVERIFY(st.message().find("outside the input 0..9") != std::string::npos);
    QCOMPARE(inspect_attention_row(*m, x.data(), kN + 1, 0, 0, &row).code(),
             StatusCode::kInvalidArgument);
    QCOMPARE(inspect_attention_row(*m, nullptr, kN, 0, 0, &row).code(),
             StatusCode::kInvalidArgument);
  }

  void patternDense() {
    PatternImage p;
    QVERIFY(inspect_pattern(config(Family::kDense), 0, 0, 90, 9, &p).is_ok());
    QCOMPARE(p.grid, 9);
    QCOMPARE(p.density, 1.0);
    QCOMPARE(p.flops_saved, 0.0);
    for (int a = 0; a < 9; ++a)
      for (int b = 0; b < 9; ++b) QCOMPARE(p.cells[a * 9 + b], b <= a ? 1.0f : 0.0f);
    // A grid finer than the sequence is clamped to one cell per position.
    QVERIFY(inspect_pattern(config(Family::kDense), 0, 0, 5, 64, &p).is_ok());
    QCOMPARE(p.grid, 5);
  }

  void patternSparseEqualsMask() {
    const int64_t n = 96;
    for (SparsePattern pat : {SparsePattern::kStrided, SparsePattern::kFixed})
      for (SparseCombine comb :
           {SparseCombine::kInterleaved, SparseCombine::kMerged, SparseCombine::kPerHead})
        for (int layer = 0; layer < 2; ++layer)
          for (int head : {0, 3})
            for (int grid : {7, 96}) {
              ModelConfig c = config(Family::kSparse);
              c.sparse.pattern = pat;
              c.sparse.combine = comb;
              PatternImage p;
              QVERIFY(inspect_pattern(c, layer, head, n, grid, &p).is_ok());
              const SparseSet set = attn_sparse_set(c.sparse, layer, head, c.heads);
              std::vector<float> cells, any, causal;
              double density;
              brute_pattern(
                  n, grid,
                  [&](int64_t i, int64_t j) { return attn_sparse_allowed(c.sparse, set, i, j); },
                  &cells, &any, &density, &causal);
              QCOMPARE(p.cells_any, any);
              for (size_t e = 0; e < cells.size(); ++e) {
                QVERIFY(std::abs(p.cells[e] - cells[e]) < 1e-6f);
                QVERIFY(std::abs(p.cells_causal[e] - causal[e]) < 1e-6f);
              }
              QCOMPARE(p.rows, n);
              QCOMPARE(p.cols, n);
              QCOMPARE(p.row_first, int64_t{0});
              QVERIFY(std::abs(p.density - density) < 1e-12);
            }
    // Strided A1 with l = 16 at n = 96: sum over i of min(i + 1, 16) pairs.
    ModelConfig c = config(Family::kSparse);
    PatternImage p;
    QVERIFY(inspect_pattern(c, 0, 0, n, 8, &p).is_ok());
    const double a1 = 16 * 17 / 2.0 + 80 * 16.0;
    QVERIFY(std::abs(p.density - a1 / (96 * 97 / 2.0)) < 1e-12);
    QVERIFY(std::abs(p.flops_saved - (1 - p.density)) < 1e-15);
  }

  void patternSparseLarge() {
    // n = 16384 from the intervals: n x grid work, no n x n memory; strided A2 at l = 128
    // has one key in 128 per row: sum over i of (i / 128 + 1) pairs.
    ModelConfig c;
    c.family = Family::kSparse;
    c.modality = *modality_parse("text:16384");
    c.dim = 32;
    c.heads = 2;
    c.layers = 2;
    c.sparse.stride = 128;
    QVERIFY(config_resolve(c).is_ok());
    PatternImage p;
    QVERIFY(inspect_pattern(c, 1, 0, 16384, 256, &p).is_ok());
    double pairs = 0;
    for (int64_t i = 0; i < 16384; ++i) pairs += static_cast<double>(i / 128 + 1);
    QVERIFY(std::abs(p.density - pairs / (16384.0 * 16385 / 2)) < 1e-12);
    // Cells are 64 x 64 pairs. In the last row of cells (rows 16320..16383, residues 64..127)
    // columns 64..127 hold one key per row: any-pooling shows the cell at full strength where
    // the fraction reads 1/64; columns 0..63 hold none of these residues.
    QCOMPARE(p.cells_any[255 * 256 + 1], 1.0f);
    QVERIFY(std::abs(p.cells[255 * 256 + 1] - 1.0f / 64) < 1e-6f);
    QCOMPARE(p.cells_any[255 * 256], 0.0f);
  }

  void patternPerceiverHourglass() {
    const double full = kN * (kN + 1) / 2.0;
    PatternImage p;
    QVERIFY(inspect_pattern(config(Family::kPerceiverAR), 0, 1, kN, 16, &p).is_ok());
    double cross = 0;
    for (int64_t pos = kN - 40; pos < kN; ++pos) cross += static_cast<double>(pos + 1);
    QVERIFY(std::abs(p.density - cross / full) < 1e-12);
    QCOMPARE(p.grid, 16);
    QVERIFY(p.rows_label.find("latent") == 0);
    QCOMPARE(p.cols_label, std::string("input position"));
    // The axes: 40 latent rows standing for positions kN - 40 .. kN - 1, kN input columns;
    // the first cell is wholly causal; the first row's last cell (latents at 56, 57; inputs
    // 90..95) wholly in the future, which a view must draw apart from pruned pairs; the last
    // row's last cell (latents 93..95) in part.
    QCOMPARE(p.rows, int64_t{40});
    QCOMPARE(p.row_first, kN - 40);
    QCOMPARE(p.cols, kN);
    QCOMPARE(p.cells_causal[0], 1.0f);
    QCOMPARE(p.cells_causal[15], 0.0f);
    QVERIFY(p.cells_causal[15 * 16 + 15] > 0.0f && p.cells_causal[15 * 16 + 15] < 1.0f);
    // Latent 0 (position 56) sees inputs 0..56: columns cells 0..9 of 16 (cell 9 = 54..59 in
    // part), none past.
    QCOMPARE(p.cells[0], 1.0f);
    QCOMPARE(p.cells[15], 0.0f);
    QVERIFY(inspect_pattern(config(Family::kPerceiverAR), 2, 0, kN, 16, &p).is_ok());
    QVERIFY(std::abs(p.density - 40 * 41 / 2.0 / full) < 1e-12);
    QVERIFY(inspect_pattern(config(Family::kHourglass), 1, 0, kN, 16, &p).is_ok());
    QVERIFY(std::abs(p.density - 32 * 33 / 2.0 / full) < 1e-12);
    QVERIFY(p.rows_label.find("level 1 (1/3)") != std::string::npos);
    QVERIFY(inspect_pattern(config(Family::kHourglass), 3, 0, kN, 16, &p).is_ok());
    QCOMPARE(p.density, 1.0);
  }

  void patternRefusals() {
    PatternImage p;
    Status st = inspect_pattern(config(Family::kReformer), 0, 0, kN, 8, &p);
    QCOMPARE(st.code(), StatusCode::kUnsupported);
    QVERIFY(st.message().find("inspect_pattern_lsh") != std::string::npos);
    QCOMPARE(inspect_pattern(config(Family::kDense), 3, 0, kN, 8, &p).code(),
             StatusCode::kInvalidArgument);
    QCOMPARE(inspect_pattern(config(Family::kDense), 0, 4, kN, 8, &p).code(),
             StatusCode::kInvalidArgument);
    QCOMPARE(inspect_pattern(config(Family::kDense), 0, 0, kN, 0, &p).code(),
             StatusCode::kInvalidArgument);
    QCOMPARE(inspect_pattern(config(Family::kDense), 0, 0, kN + 1, 8, &p).code(),
             StatusCode::kInvalidArgument);
  }

  void patternLsh() {
    const ModelConfig c = config(Family::kReformer);
    auto m = make(c);
    const auto x = tokens(kN);
    LshInspect li;
    QVERIFY(inspect_lsh(*m, x.data(), kN, 1, &li).is_ok());
    for (int head : {0, 2}) {
      const auto keys = lsh_keys(li, head);
      for (int grid : {12, 96}) {
        PatternImage p;
        QVERIFY(inspect_pattern_lsh(*m, x.data(), kN, 1, head, grid, &p).is_ok());
        std::vector<float> cells, any;
        double density;
        brute_pattern(
            kN, grid,
            [&](int64_t i, int64_t j) { return keys[static_cast<size_t>(i)].count(j) > 0; }, &cells,
            &any, &density);
        QCOMPARE(p.cells_any, any);
        for (size_t e = 0; e < cells.size(); ++e) QVERIFY(std::abs(p.cells[e] - cells[e]) < 1e-6f);
        QVERIFY(std::abs(p.density - density) < 1e-12);
        // At most 2 rounds x 2 chunks of 8 keys per query.
        QVERIFY(p.density * kN * (kN + 1) / 2 <= kN * 32.0);
        QVERIFY(p.density < 0.5);
      }
    }
    PatternImage p;
    QCOMPARE(inspect_pattern_lsh(*make(config(Family::kDense)), x.data(), kN, 0, 0, 8, &p).code(),
             StatusCode::kUnsupported);
  }

  void lshBucketsAndKeptMass() {
    const auto x = tokens(kN);
    ModelConfig c = config(Family::kReformer);
    auto m = make(c);
    LshInspect li;
    QVERIFY(inspect_lsh(*m, x.data(), kN, 0, &li).is_ok());
    QCOMPARE(li.heads, 4);
    QCOMPARE(li.n_hashes, 2);
    QCOMPARE(li.chunk, 8);
    QCOMPARE(li.n_buckets, 24);  // 2N/m = 24
    QCOMPARE(li.buckets.size(), size_t{4 * 2 * kN});
    // order sorts by (bucket, position) and is a permutation.
    for (int hr = 0; hr < 8; ++hr) {
      const int* b = li.buckets.data() + hr * kN;
      const int* o = li.order.data() + hr * kN;
      std::vector<int> seen(kN, 0);
      for (int64_t s = 0; s < kN; ++s) {
        QVERIFY(b[o[s]] >= 0 && b[o[s]] < 24);
        ++seen[o[s]];
        if (s > 0) QVERIFY(b[o[s - 1]] < b[o[s]] || (b[o[s - 1]] == b[o[s]] && o[s - 1] < o[s]));
      }
      QVERIFY(std::all_of(seen.begin(), seen.end(), [](int k) { return k == 1; }));
    }
    for (int h = 0; h < 4; ++h) {
      const double both = li.kept_mass[h];
      const double r0 = li.kept_mass_round[h * 2], r1 = li.kept_mass_round[h * 2 + 1];
      qInfo("head %d: kept mass %.4f (rounds %.4f, %.4f)", h, both, r0, r1);
      QVERIFY(both > 0.0 && both < 1.0);
      QVERIFY(both >= std::max(r0, r1) - 1e-12 && both <= r0 + r1 + 1e-12);
    }
    // One chunk covering the sequence attends to every causal key: all mass kept.
    ModelConfig one = c;
    one.lsh.chunk = kN;
    one.lsh.n_buckets = 2;
    auto m1 = make(one);
    QVERIFY(inspect_lsh(*m1, x.data(), kN, 0, &li).is_ok());
    for (double k : li.kept_mass) QVERIFY(std::abs(k - 1.0) < 1e-12);
    Status st = inspect_lsh(*make(config(Family::kDense)), x.data(), kN, 0, &li);
    QCOMPARE(st.code(), StatusCode::kUnsupported);
    QVERIFY(st.message().find("Reformer") != std::string::npos);
  }

  // The names the Model panel and `attnscope-cli info` print for each layer.
  void layerKindsNameEachLayer() {
    ModelConfig s;
    s.family = Family::kSparse;
    s.modality = *modality_parse("text:256");
    s.layers = 2;
    s.dim = 32;
    s.heads = 4;
    s.sparse.block = 16;
    s.sparse.stride = 16;
    QVERIFY(config_resolve(s).is_ok());
    QCOMPARE(QString::fromStdString(inspect_layer_kind(s, 0)),
             QString("strided A1, l = 16, block 16"));
    QCOMPARE(QString::fromStdString(inspect_layer_kind(s, 1)),
             QString("strided A2, l = 16, block 16"));
    s.sparse.combine = SparseCombine::kPerHead;
    QCOMPARE(QString::fromStdString(inspect_layer_kind(s, 0)),
             QString("strided A1/A2, l = 16, block 16"));
    ModelConfig p = s;
    p.family = Family::kPerceiverAR;
    p.perceiver.latents = 64;
    QVERIFY(config_resolve(p).is_ok());
    QCOMPARE(inspect_layer_count(p), 3);
    QCOMPARE(QString::fromStdString(inspect_layer_kind(p, 0)),
             QString("cross-attention, 64 latents over 256 inputs"));
    QCOMPARE(QString::fromStdString(inspect_layer_kind(p, 2)),
             QString("latent self-attention over 64"));
    ModelConfig h = s;
    h.family = Family::kHourglass;
    h.hourglass.hierarchy = "1@1,2@4,1@1";
    QVERIFY(config_resolve(h).is_ok());
    QCOMPARE(QString::fromStdString(inspect_layer_kind(h, 2)),
             QString("dense causal at shortening 4 (length 64)"));
    QCOMPARE(QString::fromStdString(inspect_layer_kind(h, 3)),
             QString("dense causal at shortening 1 (length 256)"));
    QCOMPARE(QString::fromStdString(mem_format_bytes(12.5 * 1024 * 1024)), QString("12.5 MiB"));
    QCOMPARE(QString::fromStdString(mem_format_bytes(512)), QString("512 B"));
  }

  void memoryCurveDense() {
    ModelConfig base = config(Family::kDense);
    base.dim = 64;
    base.layers = 2;
    const auto pts = inspect_memory_curve(base, {512, 1024, 2048}, true, nullptr);
    QCOMPARE(pts.size(), size_t{3});
    const auto act = static_cast<size_t>(MemCategory::kActivations);
    const auto wts = static_cast<size_t>(MemCategory::kWeights);
    const auto cch = static_cast<size_t>(MemCategory::kCaches);
    const auto scr = static_cast<size_t>(MemCategory::kAttentionScratch);
    for (const MemoryPoint& p : pts) {
      QVERIFY(p.measured);
      qInfo(
          "N=%lld activations measured %.0f estimated %.0f; caches %.0f/%.0f; stored-attention "
          "series %.0f",
          static_cast<long long>(p.length), p.measured_bytes[act], p.estimate[act],
          p.measured_bytes[cch], p.estimate[cch], p.dense_stored_attention);
      const double ratio = p.measured_bytes[act] / p.estimate[act];
      QVERIFY(ratio > 0.5 && ratio < 2.0);
      QCOMPARE(p.measured_bytes[wts], p.estimate[wts]);
      QCOMPARE(p.measured_bytes[cch], p.estimate[cch]);
      qInfo("N=%lld attention scratch measured %.0f estimated %.0f",
            static_cast<long long>(p.length), p.measured_bytes[scr], p.estimate[scr]);
      QVERIFY(p.measured_bytes[scr] > 0.0);  // the kernels' working memory is in the ledger
      QVERIFY(p.estimate[scr] > 0.0);
    }
    // Tiled dense attention: activations grow linearly in N (the ledger never sees an N x N
    // matrix), while the stored-matrices series grows as N^2.
    for (size_t k = 1; k < pts.size(); ++k) {
      const double g = pts[k].measured_bytes[act] / pts[k - 1].measured_bytes[act];
      QVERIFY2(g > 1.9 && g < 2.1, qPrintable(QString("growth %1").arg(g)));
      QCOMPARE(pts[k].dense_stored_attention / pts[k - 1].dense_stored_attention, 4.0);
    }
  }

  void memoryCurveFamilies() {
    for (Family f :
         {Family::kSparse, Family::kReformer, Family::kPerceiverAR, Family::kHourglass}) {
      const auto pts = inspect_memory_curve(config(f), {300, 600}, true, nullptr);
      QCOMPARE(pts.size(), size_t{2});
      for (const MemoryPoint& p : pts) {
        QVERIFY(p.measured);
        for (MemCategory c :
             {MemCategory::kWeights, MemCategory::kActivations, MemCategory::kCaches}) {
          const double ratio =
              p.measured_bytes[static_cast<size_t>(c)] / p.estimate[static_cast<size_t>(c)];
          qInfo("%s N=%lld %s: measured/estimate %.3f", family_name(f),
                static_cast<long long>(p.length), mem_category_name(c), ratio);
          QVERIFY2(ratio > 0.5 && ratio < 2.0,
                   qPrintable(QString("%1 N=%2 %3: measured/estimate %4")
                                  .arg(family_name(f))
                                  .arg(p.length)
                                  .arg(mem_category_name(c))
                                  .arg(ratio)));
        }
      }
    }
  }

  void memoryCurveSeedFigure() {
    // The Sparse Transformer seed: a dense 64-layer, 4-head transformer on a 64x64x3 image
    // stores 154 GB of attention matrices (float32). Estimates only (no forward).
    ModelConfig base = config(Family::kDense);
    base.layers = 64;
    base.heads = 4;
    std::atomic<bool> cancel{false};
    const auto pts = inspect_memory_curve(base, {12288}, false, &cancel);
    QCOMPARE(pts.size(), size_t{1});
    QVERIFY(!pts[0].measured);
    QVERIFY(std::abs(pts[0].dense_stored_attention / 1e9 - 154.6) < 0.1);
    cancel = true;
    QVERIFY(inspect_memory_curve(base, {256, 512}, false, &cancel).empty());
  }
};

QTEST_APPLESS_MAIN(TestInspect)
#include "test_inspect.moc"
