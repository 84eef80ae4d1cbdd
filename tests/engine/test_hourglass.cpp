// Tests of the Hourglass family: incremental decode against the full forward for flat and
// nested hierarchies and every pooling/upsampling kind, causality (prefixes and the shift),
// and that decode runs each inner level once per group of k tokens (keys read, analytically).
#include <QtTest>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "attnscope/model.h"
#include "core/rng.h"
#include "engine/model_checks.h"

using namespace attnscope;

namespace {

// Forward and decode reach the same logits through different float32 kernels (the tiled
// online-softmax forward and sgemm over many rows vs the single-query decode kernel and the
// small-m matmul loop), so sums run in different orders; differences are ~1e-6 of the logits'
// scale (about 1 here), and 1e-4 leaves a wide margin without hiding a misplaced group.
constexpr double kTol = 1e-4;

struct Case {
  const char* modality;
  const char* hierarchy;
  HourglassPool pool;
  HourglassUpsample upsample;
};

ModelConfig hourglass_config(const Case& c) {
  ModelConfig cfg;
  cfg.family = Family::kHourglass;
  cfg.modality = *modality_parse(c.modality);
  cfg.hourglass.hierarchy = c.hierarchy;
  cfg.hourglass.pool = c.pool;
  cfg.hourglass.upsample = c.upsample;
  cfg.dim = 32;
  cfg.heads = 4;
  Status st = config_resolve(cfg);
  Q_ASSERT(st.is_ok());
  return cfg;
}

std::unique_ptr<Model> make_model(const Case& c) {
  const ModelConfig cfg = hourglass_config(c);
  auto m = model_create(cfg, model_init_weights(cfg, InitOptions{11, /*zero_logits=*/false}));
  Q_ASSERT(m.has_value());
  return std::move(*m);
}

Tensor forward(const Model& m, const std::vector<uint8_t>& x, int64_t n) {
  Tensor logits;
  int64_t first = -1;
  Status s = m.forward(x.data(), n, &logits, &first);
  Q_ASSERT(s.is_ok() && first == 0 && logits.dim(0) == n);
  return logits;
}

const Case kCases[] = {
    {"text:50", "1@1,2@2,1@1", HourglassPool::kAverage, HourglassUpsample::kRepeat},
    {"text:50", "1@1,2@2,1@1", HourglassPool::kLinear, HourglassUpsample::kLinear},
    {"image:4x4x3", "2@1,4@3,2@1", HourglassPool::kAverage, HourglassUpsample::kRepeat},
    {"image:4x4x3", "2@1,4@3,2@1", HourglassPool::kLinear, HourglassUpsample::kLinear},
    {"text:50", "2@1,4@3,2@1", HourglassPool::kAverage, HourglassUpsample::kLinear},
    {"text:50", "2@1,4@3,2@1", HourglassPool::kLinear, HourglassUpsample::kRepeat},
    {"text:50", "1@1,1@2,1@4,1@2,1@1", HourglassPool::kAverage, HourglassUpsample::kRepeat},
    {"text:50", "1@1,1@2,1@4,1@2,1@1", HourglassPool::kLinear, HourglassUpsample::kLinear},
    {"text:50", "1@1,1@2,1@6,1@2,1@1", HourglassPool::kLinear, HourglassUpsample::kRepeat},
};

void add_case_rows() {
  QTest::addColumn<int>("index");
  for (int i = 0; i < static_cast<int>(std::size(kCases)); ++i) {
    const Case& c = kCases[i];
    QTest::newRow(qPrintable(
        QString("%1 %2 %3/%4")
            .arg(c.modality, c.hierarchy, c.pool == HourglassPool::kLinear ? "linear" : "average",
                 c.upsample == HourglassUpsample::kLinear ? "linear" : "repeat")))
        << i;
  }
}

}  // namespace

class TestHourglass : public QObject {
  Q_OBJECT

 private slots:
  void linearTensorsHaveTheirShapes() {
    const ModelConfig cfg = hourglass_config(kCases[7]);  // factors 1,2,4,2,1 -> k = 2, 2
    QCOMPARE(cfg.layers, 5);
    int found = 0;
    const std::vector<std::pair<std::string, std::vector<int64_t>>> want = {
        {"shorten.1.weight", {64, 32}},
        {"shorten.1.bias", {32}},
        {"upsample.0.weight", {32, 64}},
        {"upsample.0.bias", {64}}};
    for (const ParamSpec& s : model_param_specs(cfg)) {
      for (const auto& [name, shape] : want)
        if (s.name == name) {
          QCOMPARE(s.shape, shape);
          ++found;
        }
      QVERIFY(s.name != "shorten.2.weight" && s.name != "blocks.5.ln1.weight");
    }
    QCOMPARE(found, 4);
  }

  void decodeEqualsForward_data() { add_case_rows(); }
  void decodeEqualsForward() {
    QFETCH(int, index);
    auto m = make_model(kCases[index]);
    const int64_t n = m->config().seq_len();
    const auto x = random_tokens(1, n);
    const auto dec = decode_all(*m, x, n);
    const Tensor f = forward(*m, x, n);
    const double err = max_err(dec.data(), f.data(), n * kVocab);
    qInfo("decode vs forward over %lld positions: max rel err %.3g", static_cast<long long>(n),
          err);
    QVERIFY(err <= kTol);
  }

  void appendingTokensKeepsEarlierLogits_data() { add_case_rows(); }
  void appendingTokensKeepsEarlierLogits() {
    QFETCH(int, index);
    auto m = make_model(kCases[index]);
    const int64_t n = m->config().seq_len();
    const auto x = random_tokens(2, n);
    const Tensor full = forward(*m, x, n);
    double worst = 0.0;
    for (int64_t len = 1; len < n; ++len)
      worst = std::max(worst, max_err(forward(*m, x, len).data(), full.data(), len * kVocab));
    qInfo("prefix forward vs full forward: max rel err %.3g", worst);
    QVERIFY(worst <= kTol);
  }

  void rowDoesNotSeeItsOwnOrLaterTokens_data() { add_case_rows(); }
  void rowDoesNotSeeItsOwnOrLaterTokens() {
    QFETCH(int, index);
    auto m = make_model(kCases[index]);
    const int64_t n = m->config().seq_len();
    const auto x = random_tokens(3, n);
    const Tensor base = forward(*m, x, n);
    for (int64_t p = 0; p < n; ++p) {
      // Perturb x[p] only: rows 0..p must not move (row p predicts x[p] from x[< p]); row p+1
      // reads it.
      auto y = x;
      y[static_cast<size_t>(p)] ^= 0xa5;
      const Tensor f = forward(*m, y, n);
      const double same = max_err(f.data(), base.data(), (p + 1) * kVocab);
      QVERIFY2(same <= kTol, qPrintable(QString("row <= %1 moved by %2").arg(p).arg(same)));
      if (p + 1 < n)
        QVERIFY(max_err(f.data() + (p + 1) * kVocab, base.data() + (p + 1) * kVocab, kVocab) >
                1e-4);
    }
  }

  void decodeRunsInnerLevelsOncePerGroup_data() { add_case_rows(); }
  void decodeRunsInnerLevelsOncePerGroup() {
    QFETCH(int, index);
    const Case& c = kCases[index];
    auto m = make_model(c);
    const ModelConfig& cfg = m->config();
    const int64_t n = cfg.seq_len();
    // Level L at depth s = min(L, 2S - L) sees n_s = ceil(n / factor_s) positions, each reading
    // all earlier keys of its level: H * layers * n_s (n_s + 1) / 2 keys in all. Running inner
    // levels per token would read at depth s > 0 n times instead of n_s times.
    const auto levels = *hourglass_parse(c.hierarchy);
    int64_t want = 0, per_token = 0;
    for (const HourglassLevel& lv : levels) {
      const int64_t ns = (n + lv.factor - 1) / lv.factor;
      want += int64_t{cfg.heads} * lv.layers * ns * (ns + 1) / 2;
      for (int64_t i = 0; i < n; ++i)
        per_token += int64_t{cfg.heads} * lv.layers * (i / lv.factor + 1);
    }
    m->stats().keys_read = 0;
    decode_all(*m, random_tokens(4, n), n);
    const int64_t got = m->stats().keys_read.load();
    qInfo("keys read %lld (analytic %lld; per-token inner levels would read %lld)",
          static_cast<long long>(got), static_cast<long long>(want),
          static_cast<long long>(per_token));
    QCOMPARE(got, want);
    QVERIFY(got < per_token);
  }
};

QTEST_APPLESS_MAIN(TestHourglass)
#include "test_hourglass.moc"
