// Tests of the Perceiver AR family: cached decode against the forward over every prefix
// (growing and sliding latent window), the forward's row layout, causality of the
// cross-attention and the number of latents as a test-time knob.
#include <QtTest>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "attnscope/model.h"
#include "core/rng.h"
#include "engine/model_checks.h"

using namespace attnscope;

namespace {

// Forward and decode reach the same logits through different float32 kernels (the tiled
// online-softmax forward and sgemm over many rows vs the single-query decode kernel and the
// small-m matmul loop), so sums run in different orders; differences are ~1e-6 of the logits'
// scale (about 1 here), and 1e-4 leaves a wide margin without hiding a wrong mask or window.
constexpr double kTol = 1e-4;
constexpr int64_t kN = 48;

ModelConfig perceiver_config(int latents, PerceiverDecode decode = PerceiverDecode::kExact) {
  ModelConfig c;
  c.family = Family::kPerceiverAR;
  c.modality = *modality_parse("text:48");
  c.layers = 2;
  c.dim = 32;
  c.heads = 4;
  c.perceiver.latents = latents;
  c.perceiver.decode = decode;
  Status st = config_resolve(c);
  Q_ASSERT(st.is_ok());
  return c;
}

WeightMap perceiver_weights() {
  return model_init_weights(perceiver_config(16), InitOptions{7, /*zero_logits=*/false});
}

std::unique_ptr<Model> make_model(int latents, PerceiverDecode decode = PerceiverDecode::kExact) {
  auto m = model_create(perceiver_config(latents, decode), perceiver_weights());
  Q_ASSERT(m.has_value());
  return std::move(*m);
}

struct Rows {
  Tensor logits;
  int64_t first = -1;
};
Rows forward(const Model& m, const std::vector<uint8_t>& x, int64_t n) {
  Rows r;
  Status s = m.forward(x.data(), n, &r.logits, &r.first);
  Q_ASSERT(s.is_ok());
  return r;
}

}  // namespace

class TestPerceiverAr : public QObject {
  Q_OBJECT

 private slots:
  void decodeEqualsLastRowOfForwardOnEveryPrefix() {
    // M = 16 < N = 48: positions 16..47 take the sliding path.
    for (int latents : {16, 32}) {
      auto m = make_model(latents);
      const auto x = random_tokens(1, kN);
      const auto dec = decode_all(*m, x, kN);
      double worst = 0.0;
      for (int64_t p = 0; p < kN; ++p) {
        Rows f = forward(*m, x, p + 1);
        const int64_t rows = f.logits.dim(0);
        QCOMPARE(f.first + rows, p + 1);
        worst = std::max(worst,
                         max_err(&dec[p * kVocab], f.logits.data() + (rows - 1) * kVocab, kVocab));
      }
      qInfo("latents %d: decode vs last forward row, max rel err %.3g", latents, worst);
      QVERIFY(worst <= kTol);
    }
  }

  void cachedDecodeEqualsForwardOverItsWindow() {
    // The official sampler's schedule, restated: the caches fill to M at p = M - 1; at p = M
    // and then every M - h + 1 positions (h = M/2, rounded down) they are rebuilt from the
    // last h positions ending at p, so p's window starts at that rebuild's p - h + 1 and holds
    // h .. M latents.
    for (int latents : {16, 11, 1}) {
      const int64_t M = latents, h = std::max(1, latents / 2);
      auto cached = make_model(latents, PerceiverDecode::kCached);
      auto exact = make_model(latents);
      const auto x = random_tokens(6, kN);
      const auto dec = decode_all(*cached, x, kN);
      const auto ref = decode_all(*exact, x, kN);
      double worst = 0.0, apart = 0.0;
      int64_t smallest = M, largest = 0;
      for (int64_t p = 0; p < kN; ++p) {
        const int64_t period = M - h + 1;
        const int64_t first = p < M ? 0 : M + (p - M) / period * period - h + 1;
        const int64_t window = p - first + 1;
        if (p >= M) smallest = std::min(smallest, window), largest = std::max(largest, window);
        auto m = make_model(static_cast<int>(window));
        Rows f = forward(*m, x, p + 1);
        QCOMPARE(f.first, first);
        worst = std::max(worst, max_err(&dec[p * kVocab],
                                        f.logits.data() + (f.logits.dim(0) - 1) * kVocab, kVocab));
        if (p < M) QVERIFY(max_err(&dec[p * kVocab], &ref[p * kVocab], kVocab) <= kTol);
        if (window < M)
          apart = std::max(apart, max_err(&dec[p * kVocab], &ref[p * kVocab], kVocab));
      }
      qInfo(
          "latents %d cached: windows %lld..%lld after the caches fill, vs the forward over "
          "each window %.3g, vs exact decode %.3g",
          latents, static_cast<long long>(smallest), static_cast<long long>(largest), worst, apart);
      QVERIFY(worst <= kTol);
      QCOMPARE(smallest, h);
      QCOMPARE(largest, M);
      // A window smaller than M is a different answer from the exact scheme's M latents.
      if (M > 1) QVERIFY(apart > 1e-3);
    }
  }

  void cachedDecodeDoesLessWork() {
    // Exact: from p = M on, every step runs M latents through the stack, so the latent
    // layers make ~M^2/2 q.k products per token; cached: one latent per step plus a rebuild of M/2
    // every M/2 + 1 steps.
    const int64_t M = 16;
    auto exact = make_model(16);
    auto cached = make_model(16, PerceiverDecode::kCached);
    const auto x = random_tokens(8, kN);
    // Score entries (the forward's q.k products) plus keys read (the decode kernel's).
    const auto work = [&](const Model& m) {
      m.stats().score_entries = 0;
      m.stats().keys_read = 0;
      decode_all(m, x, kN);
      return static_cast<double>(m.stats().score_entries + m.stats().keys_read);
    };
    const double e = work(*exact), c = work(*cached);
    qInfo("attention work over %lld tokens, M = %lld: exact %.0f, cached %.0f",
          static_cast<long long>(kN), static_cast<long long>(M), e, c);
    QVERIFY(c > 0 && c * 3 < e);
  }

  void growingWindowRowsEqualDecodeRows() {
    auto m = make_model(16);
    const auto x = random_tokens(2, kN);
    const auto dec = decode_all(*m, x, 16);
    double worst = 0.0;
    for (int64_t n = 1; n <= 16; ++n) {
      Rows f = forward(*m, x, n);
      QCOMPARE(f.first, int64_t{0});
      QCOMPARE(f.logits.dim(0), n);
      worst = std::max(worst, max_err(dec.data(), f.logits.data(), n * kVocab));
    }
    qInfo("n <= M: every forward row vs decode, max rel err %.3g", worst);
    QVERIFY(worst <= kTol);
  }

  void forwardRowLayout() {
    auto m = make_model(16);
    const auto x = random_tokens(3, kN);
    for (int64_t n : {1, 9, 16, 17, 40, 48}) {
      Rows f = forward(*m, x, n);
      const int64_t want_rows = std::min<int64_t>(n, 16);
      QCOMPARE(f.logits.dim(0), want_rows);
      QCOMPARE(f.logits.dim(1), int64_t{kVocab});
      QCOMPARE(f.first, n - want_rows);
    }
    Tensor t;
    int64_t first = 0;
    QVERIFY(!m->forward(x.data(), kN + 1, &t, &first).is_ok());
  }

  void crossAttentionIsCausalAndSeesTheWholeContext() {
    auto m = make_model(16);
    const auto x = random_tokens(4, kN);
    const Rows base = forward(*m, x, kN);  // rows are positions 32..47
    for (int64_t p : {32, 37, 46}) {
      // Perturb every x[q], q >= p: rows of positions <= p read only x[< p]. Their inputs are
      // bitwise the same and no row reads another's sums, so they must match exactly.
      auto y = x;
      for (int64_t q = p; q < kN; ++q) y[static_cast<size_t>(q)] ^= 0x5a;
      const Rows f = forward(*m, y, kN);
      const int64_t keep = p - base.first + 1;
      const double same = max_err(f.logits.data(), base.logits.data(), keep * kVocab);
      const double changed = max_err(f.logits.data() + keep * kVocab,
                                     base.logits.data() + keep * kVocab, (16 - keep) * kVocab);
      QVERIFY2(same == 0.0,
               qPrintable(QString("row of position <= %1 moved by %2").arg(p).arg(same)));
      QVERIFY2(changed > 1e-3, "later rows must see the perturbed tokens");
    }
    // A token before the window (position 3 < first_row = 32) still reaches every latent
    // through the cross-attention.
    auto y = x;
    y[2] ^= 0x5a;
    const Rows f = forward(*m, y, kN);
    for (int64_t r = 0; r < 16; ++r)
      QVERIFY(max_err(f.logits.data() + r * kVocab, base.logits.data() + r * kVocab, kVocab) >
              1e-4);
  }

  void latentsCountIsATestTimeKnob() {
    // Same weights (the tensors do not depend on M), three window sizes.
    auto m8 = make_model(8);
    auto m16 = make_model(16);
    auto m48 = make_model(48);
    const auto x = random_tokens(5, kN);
    // Positions p < 8: every window holds the whole prefix x[0..p], so all three agree.
    const Rows f8 = forward(*m8, x, 8), f16 = forward(*m16, x, 8), f48 = forward(*m48, x, 8);
    QCOMPARE(f8.logits.dim(0), int64_t{8});
    const double e16 = max_err(f8.logits.data(), f16.logits.data(), 8 * kVocab);
    const double e48 = max_err(f8.logits.data(), f48.logits.data(), 8 * kVocab);
    const auto d8 = decode_all(*m8, x, kN), d16 = decode_all(*m16, x, kN),
               d48 = decode_all(*m48, x, kN);
    const double dec = std::max(max_err(d8.data(), d16.data(), 8 * kVocab),
                                max_err(d8.data(), d48.data(), 8 * kVocab));
    const double up_to_16 = max_err(d16.data(), d48.data(), 16 * kVocab);
    qInfo(
        "shared prefix rows: forward M=8 vs 16 %.3g, vs 48 %.3g; decode %.3g; M=16 vs 48 "
        "up to p=15 %.3g",
        e16, e48, dec, up_to_16);
    QVERIFY(e16 <= kTol && e48 <= kTol && dec <= kTol && up_to_16 <= kTol);
    // Once the smaller window has slid, the knob changes the answer.
    QVERIFY(max_err(&d16[40 * kVocab], &d48[40 * kVocab], kVocab) > 1e-4);
    // M = N is a plain full forward: one row per position, matching decode.
    const Rows full = forward(*m48, x, kN);
    QCOMPARE(full.first, int64_t{0});
    QVERIFY(max_err(d48.data(), full.logits.data(), kN * kVocab) <= kTol);
  }

  void windowedBitsMatchExactUpToTwoWindows() {
    // For n <= M and n = 2M the windowed score and the exact (decode-semantics) score are the
    // same numbers: rows before M come from a growing window in both, rows from M on from one
    // forward whose latents start at M. Otherwise the exact score's last forward starts its
    // latents at n - M while the windows start at multiples of M, so they differ.
    auto m = make_model(16);
    const auto x = random_tokens(9, kN);
    for (int64_t n : {int64_t{5}, int64_t{16}, int64_t{32}}) {
      const double exact = *model_bits_per_dim(*m, x.data(), n);
      const double windowed = *model_bits_per_dim_windowed(*m, x.data(), n);
      qInfo("n = %lld: exact %.6f, windowed %.6f", static_cast<long long>(n), exact, windowed);
      QVERIFY(std::abs(exact - windowed) <= 1e-5);
    }
    for (int64_t n : {int64_t{23}, kN}) {
      const double exact = *model_bits_per_dim(*m, x.data(), n);
      const double windowed = *model_bits_per_dim_windowed(*m, x.data(), n);
      qInfo("n = %lld: exact %.6f, windowed %.6f", static_cast<long long>(n), exact, windowed);
      QVERIFY(std::abs(exact - windowed) > 1e-4);
      QVERIFY(std::isfinite(windowed) && windowed > 0);
    }
  }
};

QTEST_APPLESS_MAIN(TestPerceiverAr)
#include "test_perceiver_ar.moc"
