// Session without a display: snapshots are published while a run goes, a finished run's
// tokens equal the engine's generate() with the same seed byte for byte (several samples: seeds
// S, S+1, ...), text prompts are kept, Stop cancels, and a corrupt model file is a failed()
// message that keeps the model already open.
#include <QCoreApplication>
#include <QFile>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>

#include "attnscope/generate.h"
#include "attnscope/safetensors.h"
#include "session/session.h"

using namespace attnscope;
using session::RunState;
using session::Session;

namespace {

QString make_model(const QTemporaryDir& dir, const QString& name, const std::string& modality,
                   int layers, int dim) {
  ModelConfig cfg;
  cfg.family = Family::kDense;
  cfg.modality = *modality_parse(modality);
  cfg.layers = layers;
  cfg.dim = dim;
  cfg.heads = 4;
  cfg.seed = 3;
  if (!config_resolve(cfg)) return {};
  InitOptions opt;
  opt.seed = 3;
  opt.zero_logits = false;  // so that the distributions carry information
  const QString path = dir.filePath(name);
  if (!safetensors_save(path.toStdString(), cfg, model_init_weights(cfg, opt))) return {};
  return path;
}

}  // namespace

class TestSession : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() { QVERIFY(dir_.isValid()); }

  void finished_run_equals_engine_generate() {
    const QString path = make_model(dir_, QStringLiteral("tiny.safetensors"), "image:8x8x3", 2, 32);
    QVERIFY(!path.isEmpty());
    Session s;
    QSignalSpy loaded(&s, &Session::model_loaded);
    s.open_model(path);
    QVERIFY(loaded.wait(10000));
    auto snap = s.snapshot();
    QVERIFY(snap->model);
    QCOMPARE(QString::fromStdString(snap->model->family), QStringLiteral("dense"));
    QCOMPARE(snap->model->param_count, model_param_count(snap->model->config));
    QCOMPARE(snap->model->layer_kinds.size(), size_t(2));
    QCOMPARE(QString::fromStdString(snap->model->layer_kinds[0]), QStringLiteral("dense causal"));

    std::vector<uint8_t> image(8 * 8 * 3);
    for (size_t i = 0; i < image.size(); ++i) image[i] = static_cast<uint8_t>(i * 7);
    QSignalSpy published(&s, &Session::published);
    s.set_prompt(image, 3);
    QTRY_VERIFY(s.snapshot()->run && s.snapshot()->run->prompt_length() == 3 * 8 * 3);
    QCOMPARE(s.snapshot()->state, RunState::kIdle);

    SamplingParams p;
    p.seed = 7;
    p.top_k = 40;
    QSignalSpy ended(&s, &Session::run_ended);
    const int before = published.count();
    s.generate(p);
    QVERIFY(ended.wait(30000));
    QCOMPARE(ended.at(0).at(0).value<RunState>(), RunState::kFinished);
    QVERIFY(published.count() - before >= 2);  // at least the start and the end of the run

    snap = s.snapshot();
    QCOMPARE(snap->state, RunState::kFinished);
    QCOMPARE(snap->filled, int64_t(192));
    QCOMPARE(snap->run->filled(), int64_t(192));

    auto loaded_model = safetensors_load(path.toStdString());
    QVERIFY(loaded_model.has_value());
    auto model = model_create(loaded_model->cfg, std::move(loaded_model->weights));
    QVERIFY(model.has_value());
    GenerateRequest req;
    req.prompt.assign(image.begin(), image.begin() + 72);
    req.sampling = p;
    auto expected = generate(**model, req);
    QVERIFY(expected.has_value());
    const std::vector<uint8_t> got(snap->run->tokens(), snap->run->tokens() + 192);
    QVERIFY2(got == *expected, "the session's tokens differ from engine generate, same seed");

    // Every position has a distribution that sums to one (float sums of 256 terms: 1e-4)
    // and its entropy in bits is within [0, 8].
    for (int64_t pos = 0; pos < 192; ++pos) {
      double sum = 0;
      for (int t = 0; t < 256; ++t) sum += snap->run->probs(pos)[t];
      QVERIFY(std::abs(sum - 1.0) < 1e-4);
      QVERIFY(snap->run->entropy_bits(pos) >= 0 && snap->run->entropy_bits(pos) <= 8.0001f);
    }
  }

  void stop_cancels_the_run() {
    const QString path =
        make_model(dir_, QStringLiteral("big.safetensors"), "image:32x32x3", 4, 128);
    QVERIFY(!path.isEmpty());
    Session s;
    QSignalSpy loaded(&s, &Session::model_loaded);
    s.open_model(path);
    QVERIFY(loaded.wait(10000));
    QSignalSpy ended(&s, &Session::run_ended);
    s.generate({});
    QTRY_VERIFY(s.snapshot()->state == RunState::kRunning && s.snapshot()->filled > 50);
    // A snapshot taken now keeps its count while the run goes on.
    const auto held = s.snapshot();
    const int64_t held_filled = held->filled;
    s.stop();
    QVERIFY(ended.wait(5000));
    QCOMPARE(ended.at(0).at(0).value<RunState>(), RunState::kStopped);
    const auto snap = s.snapshot();
    QCOMPARE(snap->state, RunState::kStopped);
    QVERIFY(snap->filled < snap->run->length());
    QVERIFY(
        QString::fromStdString(snap->message).startsWith(QStringLiteral("stopped at position")));
    QCOMPARE(held->filled, held_filled);
    QVERIFY(held->run->filled() >= held_filled);
  }

  void several_samples_equal_engine_generate_with_successive_seeds() {
    const QString path = make_model(dir_, QStringLiteral("four.safetensors"), "image:4x4x3", 2, 32);
    QVERIFY(!path.isEmpty());
    Session s;
    QSignalSpy loaded(&s, &Session::model_loaded);
    s.open_model(path);
    QVERIFY(loaded.wait(10000));
    std::vector<uint8_t> kept(4 * 3);  // the first row
    for (size_t i = 0; i < kept.size(); ++i) kept[i] = static_cast<uint8_t>(20 * i);
    s.set_prompt_tokens(kept);
    QTRY_VERIFY(s.snapshot()->run && s.snapshot()->run->prompt_length() == 12);
    SamplingParams p;
    p.seed = 11;
    QSignalSpy ended(&s, &Session::run_ended);
    s.generate(p, 4);
    QVERIFY(ended.wait(30000));
    QCOMPARE(ended.count(), 1);
    QCOMPARE(ended.at(0).at(0).value<RunState>(), RunState::kFinished);
    const auto snap = s.snapshot();
    QCOMPARE(snap->samples_wanted, 4);
    QCOMPARE(snap->samples.size(), size_t(4));
    QCOMPARE(snap->samples.back(), snap->run);

    auto loaded_model = safetensors_load(path.toStdString());
    QVERIFY(loaded_model.has_value());
    auto model = model_create(loaded_model->cfg, std::move(loaded_model->weights));
    QVERIFY(model.has_value());
    for (int k = 0; k < 4; ++k) {
      GenerateRequest req;
      req.prompt = kept;
      req.sampling = p;
      req.sampling.seed = p.seed + static_cast<uint64_t>(k);
      auto expected = generate(**model, req);
      QVERIFY(expected.has_value());
      const auto& run = snap->samples[static_cast<size_t>(k)];
      QCOMPARE(run->filled(), int64_t(48));
      const std::vector<uint8_t> got(run->tokens(), run->tokens() + 48);
      QVERIFY2(got == *expected,
               qPrintable(
                   QStringLiteral("sample %1 differs from seed %2").arg(k).arg(req.sampling.seed)));
    }
    // Different seeds, different samples (48 random-logit draws agreeing is vanishingly rare).
    QVERIFY(!std::equal(snap->samples[0]->tokens(), snap->samples[0]->tokens() + 48,
                        snap->samples[1]->tokens()));
  }

  void text_prompt_tokens_are_kept() {
    const QString path = make_model(dir_, QStringLiteral("text.safetensors"), "text:64", 2, 32);
    QVERIFY(!path.isEmpty());
    Session s;
    QSignalSpy loaded(&s, &Session::model_loaded);
    s.open_model(path);
    QVERIFY(loaded.wait(10000));
    const QByteArray prompt = QStringLiteral("Attention is all — ").toUtf8();
    s.set_prompt_tokens(std::vector<uint8_t>(prompt.begin(), prompt.end()));
    QTRY_VERIFY(s.snapshot()->run && s.snapshot()->run->prompt_length() == prompt.size());
    QSignalSpy ended(&s, &Session::run_ended);
    s.generate({});
    QVERIFY(ended.wait(30000));
    const auto snap = s.snapshot();
    QCOMPARE(snap->filled, int64_t(64));
    QCOMPARE(QByteArray(reinterpret_cast<const char*>(snap->run->tokens()), prompt.size()), prompt);
    // A prompt longer than the model is cut to its length.
    s.set_prompt_tokens(std::vector<uint8_t>(100, 'a'));
    QTRY_VERIFY(s.snapshot()->run && s.snapshot()->run->prompt_length() == 64);
  }

  void corrupt_model_fails_and_keeps_the_open_one() {
    const QString good = make_model(dir_, QStringLiteral("keep.safetensors"), "image:8x8x3", 2, 32);
    Session s;
    QSignalSpy loaded(&s, &Session::model_loaded);
    s.open_model(good);
    QVERIFY(loaded.wait(10000));
    const QString bad = dir_.filePath(QStringLiteral("corrupt.safetensors"));
    QFile f(bad);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write("this is not a safetensors file at all");
    f.close();
    QSignalSpy failed(&s, &Session::failed);
    s.open_model(bad);
    QVERIFY(failed.wait(10000));
    QVERIFY(failed.at(0).at(1).toString().contains(QStringLiteral("corrupt.safetensors")));
    QCOMPARE(QString::fromStdString(s.snapshot()->model->path), good);
  }

 private:
  QTemporaryDir dir_;
};

QTEST_GUILESS_MAIN(TestSession)
#include "test_session.moc"
