// Session without a display: snapshots are published while a run goes, a finished run's
// tokens equal the engine's generate() with the same seed byte for byte (several samples: seeds
// S, S+1, ...), text prompts are kept, a keep mask regenerates only its unkept positions, Stop
// cancels, and a corrupt model file is a failed() message that keeps the model already open.
// Test-time knobs (Reformer hash rounds, Perceiver AR latents) re-create the model for the next
// run; a comparison with a second model equals the engine's generate() for each, and a second model
// of another size is refused. Asking for the GPU says on which backend generation runs; without a
// device the run is the CPU's, byte for byte.
#include <QCoreApplication>
#include <QFile>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>
#include <functional>

#include "attnscope/cuda.h"
#include "attnscope/generate.h"
#include "attnscope/safetensors.h"
#include "model_files.h"
#include "session/session.h"

using namespace attnscope;
using session::RunState;
using session::Session;

namespace {

QString make_model(const QTemporaryDir& dir, const QString& name, const std::string& modality,
                   int layers, int dim) {
  return write_test_model(dir, name, Family::kDense, modality, layers, dim, 3);
}

// A model of any family, 2 layers of width 32.
QString make_family_model(const QTemporaryDir& dir, const QString& name, Family family,
                          const std::string& modality) {
  return write_test_model(dir, name, family, modality, 2, 32, 3);
}

// The model in path with its configuration edited by edit, as the engine builds it.
std::unique_ptr<Model> load_edited(const QString& path,
                                   const std::function<void(ModelConfig&)>& edit) {
  auto loaded = safetensors_load(path.toStdString());
  if (!loaded) return nullptr;
  ModelConfig cfg = loaded->cfg;
  edit(cfg);
  auto m = model_create(cfg, loaded->weights);
  return m ? std::move(*m) : nullptr;
}

std::vector<uint8_t> engine_generate(const Model& m, const std::vector<uint8_t>& prompt,
                                     const SamplingParams& p) {
  GenerateRequest req;
  req.prompt = prompt;
  req.sampling = p;
  auto out = generate(m, req);
  return out ? *out : std::vector<uint8_t>();
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

  void device_choice_is_said_and_falls_back_to_the_cpu() {
    const QString path = make_family_model(dir_, QStringLiteral("device.safetensors"),
                                           Family::kSparse, "image:8x8x3");
    Session s;
    QSignalSpy loaded(&s, &Session::model_loaded);
    s.open_model(path);
    QVERIFY(loaded.wait(10000));
    QCOMPARE(QString::fromStdString(s.snapshot()->backend_note), QStringLiteral("backend: cpu"));

    s.set_device(true, CudaPrecision::kF32);
    const Status avail = cuda_available();
    const bool device = avail.is_ok();
    QTRY_VERIFY(s.snapshot()->backend_note != "backend: cpu");
    const QString note = QString::fromStdString(s.snapshot()->backend_note);
    QVERIFY2(note.startsWith(device ? "backend: cuda (" : "backend: cpu ("), qPrintable(note));

    SamplingParams p;
    p.seed = 11;
    QSignalSpy ended(&s, &Session::run_ended);
    s.generate(p);
    QVERIFY(ended.wait(30000));
    QCOMPARE(ended.at(0).at(0).value<RunState>(), RunState::kFinished);
    auto snap = s.snapshot();
    QCOMPARE(snap->run->filled(), int64_t(192));
    if (!device) {
      auto cpu = load_edited(path, [](ModelConfig&) {});
      QVERIFY(cpu);
      const std::vector<uint8_t> got(snap->run->tokens(), snap->run->tokens() + 192);
      QVERIFY(got == engine_generate(*cpu, {}, p));
      QVERIFY2(note.contains(QString::fromStdString(avail.message())), qPrintable(note));
      qInfo("SKIP: no CUDA device here (%s); checked the CPU fallback", avail.message().c_str());
    }

    // Back to the CPU: the note says so again.
    s.set_device(false, CudaPrecision::kF32);
    QTRY_COMPARE(QString::fromStdString(s.snapshot()->backend_note),
                 QStringLiteral("backend: cpu"));
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
    // The message gives the progress bar's figure and what was generated.
    QCOMPARE(snap->message, session::run_stop_message(*snap->run, snap->filled, 0, 1));
    QVERIFY2(QString::fromStdString(snap->message)
                 .startsWith(QStringLiteral("stopped at %1 / %2: ")
                                 .arg(snap->run->known(snap->filled))
                                 .arg(snap->run->length())),
             snap->message.c_str());
    QCOMPARE(held->filled, held_filled);
    QVERIFY(held->run->filled() >= held_filled);
  }

  // Stop mid-prompt said "stopped at position 427 of sample 2" while the bar read 1536 / 3072
  // and the sample showed no new pixel: the message now says what is drawn.
  void stop_message_says_what_is_drawn() {
    const Modality m = *modality_parse("image:4x4x3");  // 48 positions
    const session::RunStore prefix(m, std::vector<uint8_t>(12, 7));
    QCOMPARE(session::run_stop_message(prefix, 5, 0, 1),
             std::string("stopped at 12 / 48: nothing generated yet (it was reading the prompt)"));
    QCOMPARE(session::run_stop_message(prefix, 20, 0, 1),
             std::string("stopped at 20 / 48: 8 positions generated"));
    QCOMPARE(session::run_stop_message(prefix, 12, 1, 4),
             std::string("stopped in sample 2 of 4 at 12 / 48: nothing generated yet (it was "
                         "reading the prompt); sample 1 is complete"));
    QCOMPARE(session::run_stop_message(prefix, 30, 3, 4),
             std::string("stopped in sample 4 of 4 at 30 / 48: 18 positions generated; samples "
                         "1-3 are complete"));
    // A painted mask: kept positions past the prefix are not counted as generated.
    std::vector<uint8_t> keep(48, 1);
    for (int p = 24; p < 48; p += 2) keep[static_cast<size_t>(p)] = 0;  // 12 sampled positions
    const session::RunStore masked(m, std::vector<uint8_t>(48, 7), keep);
    QCOMPARE(masked.generated(30), int64_t(3));  // 24, 26, 28
    QCOMPARE(session::run_stop_message(masked, 30, 0, 1),
             std::string("stopped at 30 / 48: 3 positions generated"));
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

  // A keep mask: kept tokens are there from the start, the run equals the engine's generate()
  // with the same mask and seed, and a mask of the wrong size is a failed() message.
  void keep_mask_equals_engine_generate() {
    const QString path = make_model(dir_, QStringLiteral("mask.safetensors"), "image:4x4x3", 2, 32);
    QVERIFY(!path.isEmpty());
    Session s;
    QSignalSpy loaded(&s, &Session::model_loaded);
    s.open_model(path);
    QVERIFY(loaded.wait(10000));
    std::vector<uint8_t> image(48), keep(48, 1);
    for (size_t i = 0; i < image.size(); ++i) image[i] = static_cast<uint8_t>(i * 29 + 3);
    std::fill(keep.begin() + 6, keep.begin() + 12, 0);   // pixels 2 and 3
    std::fill(keep.begin() + 30, keep.begin() + 33, 0);  // pixel 10
    s.set_prompt_mask(image, keep);
    QTRY_VERIFY(s.snapshot()->run && s.snapshot()->run->has_keep_mask());
    QCOMPARE(s.snapshot()->run->prompt_length(), int64_t(6));
    QVERIFY(s.snapshot()->run->kept(40) && !s.snapshot()->run->kept(31));
    QCOMPARE(s.snapshot()->run->token(40), image[40]);
    QSignalSpy ended(&s, &Session::run_ended);
    const SamplingParams sampling{0.8f, 0, 1.0f, 77};
    s.generate(sampling);
    QVERIFY(ended.wait(30000));
    QCOMPARE(ended.at(0).at(0).value<RunState>(), RunState::kFinished);
    auto model = load_edited(path, [](ModelConfig&) {});
    QVERIFY(model);
    GenerateRequest req;
    req.prompt = image;
    req.keep = keep;
    req.length = 48;
    req.sampling = sampling;
    auto want = generate(*model, req);
    QVERIFY(want.has_value());
    QVERIFY(std::equal(want->begin(), want->end(), s.snapshot()->run->tokens()));

    QSignalSpy failed(&s, &Session::failed);
    s.set_prompt_mask(image, std::vector<uint8_t>(47, 1));
    QVERIFY(failed.wait(10000));
    QVERIFY(failed.at(0).at(1).toString().contains(QStringLiteral("48 tokens")));
  }

  // Each knob value is one run: its prompt bits/dim and tokens are those of the engine with
  // the edited configuration and the file's weights.
  void knobs_edit_the_model_for_the_next_run() {
    struct Case {
      Family family;
      session::Knobs knobs;
      std::function<void(ModelConfig&)> edit;
    };
    const std::vector<Case> cases = {
        {Family::kReformer, {3, 0}, [](ModelConfig& c) { c.lsh.n_hashes = 3; }},
        {Family::kReformer, {1, 0}, [](ModelConfig& c) { c.lsh.n_hashes = 1; }},
        {Family::kPerceiverAR, {0, 40}, [](ModelConfig& c) { c.perceiver.latents = 40; }},
        {Family::kPerceiverAR, {0, 7}, [](ModelConfig& c) { c.perceiver.latents = 7; }},
        {Family::kPerceiverAR, {0, 7, PerceiverDecode::kCached}, [](ModelConfig& c) {
           c.perceiver.latents = 7;
           c.perceiver.decode = PerceiverDecode::kCached;
         }}};
    std::vector<uint8_t> image(8 * 8 * 3);
    for (size_t i = 0; i < image.size(); ++i) image[i] = static_cast<uint8_t>(i * 11);
    std::vector<uint8_t> prompt(image.begin(), image.begin() + 3 * 8 * 3);
    for (Family family : {Family::kReformer, Family::kPerceiverAR}) {
      const QString path =
          make_family_model(dir_, QStringLiteral("knob-%1.safetensors").arg(family_name(family)),
                            family, "image:8x8x3");
      QVERIFY(!path.isEmpty());
      Session s;
      QSignalSpy loaded(&s, &Session::model_loaded);
      s.open_model(path);
      QVERIFY(loaded.wait(10000));
      s.set_prompt(image, 3);
      QTRY_VERIFY(s.snapshot()->run && s.snapshot()->run->prompt_length() == 72);
      size_t rows = 0;
      for (const Case& c : cases) {
        if (c.family != family) continue;
        SamplingParams p;
        p.seed = 11;
        QSignalSpy ended(&s, &Session::run_ended);
        s.set_knobs(c.knobs);
        s.generate(p);
        QVERIFY(ended.wait(30000));
        QCOMPARE(ended.at(0).at(0).value<RunState>(), RunState::kFinished);
        const auto snap = s.snapshot();
        QCOMPARE(snap->knob_rows.size(), ++rows);
        const session::KnobRow& row = snap->knob_rows.back();
        const std::unique_ptr<Model> m = load_edited(path, c.edit);
        QVERIFY(m);
        QCOMPARE(snap->model->config.lsh.n_hashes, m->config().lsh.n_hashes);
        QCOMPARE(snap->model->config.perceiver.latents, m->config().perceiver.latents);
        QCOMPARE(snap->model->config.perceiver.decode, m->config().perceiver.decode);
        QCOMPARE(row.scheme,
                 std::string(family == Family::kReformer
                                 ? ""
                                 : perceiver_decode_name(m->config().perceiver.decode)));
        QCOMPARE(row.value, family == Family::kReformer ? m->config().lsh.n_hashes
                                                        : m->config().perceiver.latents);
        QVERIFY(row.tokens_per_s > 0);
        auto bpd = model_bits_per_dim(*m, prompt.data(), static_cast<int64_t>(prompt.size()));
        QVERIFY(bpd.has_value());
        QCOMPARE(row.prompt_bits_per_dim, *bpd);
        const std::vector<uint8_t> want = engine_generate(*m, prompt, p);
        QCOMPARE(std::vector<uint8_t>(snap->run->tokens(), snap->run->tokens() + 192), want);
      }
    }
  }

  void compare_grid_equals_engine_generate_for_each_cell() {
    const QString a = make_model(dir_, QStringLiteral("cmp-a.safetensors"), "image:8x8x3", 2, 32);
    const QString b = make_family_model(dir_, QStringLiteral("cmp-b.safetensors"), Family::kSparse,
                                        "image:8x8x3");
    const QString other =
        make_model(dir_, QStringLiteral("cmp-c.safetensors"), "image:8x4x3", 1, 16);
    QVERIFY(!a.isEmpty() && !b.isEmpty() && !other.isEmpty());
    Session s;
    QSignalSpy loaded(&s, &Session::model_loaded);
    s.open_model(a);
    QVERIFY(loaded.wait(10000));
    // The current prompt: the first 2 rows of an image, the image its real data.
    std::vector<uint8_t> image(192), second_image(192);
    for (size_t i = 0; i < image.size(); ++i) {
      image[i] = static_cast<uint8_t>(i * 5);
      second_image[i] = static_cast<uint8_t>(250 - i);
    }
    const std::vector<uint8_t> prompt(image.begin(), image.begin() + 2 * 8 * 3);
    s.set_prompt_tokens(prompt, image);

    // A model of another size is refused and nothing is added.
    QSignalSpy failed(&s, &Session::failed);
    s.open_compare_model(other);
    QVERIFY(failed.wait(10000));
    QCOMPARE(failed.at(0).at(0).toString(), QStringLiteral("Compare"));
    QVERIFY2(failed.at(0).at(1).toString().contains(QStringLiteral("image:8x4x3")),
             qPrintable(failed.at(0).at(1).toString()));
    QVERIFY(s.snapshot()->compare_models.empty());

    QSignalSpy compare_loaded(&s, &Session::compare_loaded);
    s.open_compare_model(b);
    QVERIFY(compare_loaded.wait(10000));
    QCOMPARE(s.snapshot()->compare_models, std::vector<std::string>{"cmp-b.safetensors"});
    // A prompt of the wrong size is refused when Compare runs, naming it.
    s.set_compare_prompts({{"small.png", std::vector<uint8_t>(96, 7)}});
    QTRY_COMPARE(s.snapshot()->compare_prompts, std::vector<std::string>{"small.png"});
    SamplingParams p;
    p.seed = 9;
    p.top_k = 20;
    QSignalSpy refused(&s, &Session::compare_ended);
    s.compare(p, 2);
    QVERIFY(refused.wait(10000));
    QVERIFY(!refused.at(0).at(0).toBool());
    QVERIFY2(failed.last().at(1).toString().contains(QStringLiteral("small.png has 96 tokens")),
             qPrintable(failed.last().at(1).toString()));

    s.set_compare_prompts({{"second.png", second_image}});
    QSignalSpy ended(&s, &Session::compare_ended);
    s.compare(p, 2);
    QVERIFY(ended.wait(60000));
    QVERIFY(ended.at(0).at(0).toBool());
    const auto r = s.snapshot()->compare;
    QVERIFY(r);
    // 2 models x 2 prompts x 2 seeds, 144 positions each.
    QCOMPARE(r->rows.size(), size_t{2});
    QCOMPARE(r->prompts.size(), size_t{2});
    QCOMPARE(r->seeds, (std::vector<uint64_t>{9, 10}));
    QCOMPARE(r->total, int64_t(8 * 144));
    QCOMPARE(r->done, r->total);
    QCOMPARE(r->prompts[1].name, std::string("second.png"));
    QCOMPARE(r->prompts[1].prompt_length, int64_t(prompt.size()));
    const QString paths[2] = {a, b};
    const std::vector<uint8_t>* truths[2] = {&image, &second_image};
    for (size_t i = 0; i < 2; ++i) {
      const std::unique_ptr<Model> m = load_edited(paths[i], [](ModelConfig&) {});
      QVERIFY(m);
      const session::CompareRow& row = r->rows[i];
      QCOMPARE(row.parameters, model_param_count(m->config()));
      QVERIFY(row.done() && row.tokens_per_s() > 0 && row.peak_bytes > 0);
      double weighted = 0;
      for (size_t pi = 0; pi < 2; ++pi) {
        const std::vector<uint8_t>& truth = *truths[pi];
        const std::vector<uint8_t> kept(truth.begin(), truth.begin() + 48);
        // Each model is scored on the real image over the 144 positions it completes.
        Tensor lp;
        QVERIFY(model_log_probs(*m, truth.data(), 192, &lp));
        double sum = 0;
        for (int q = 48; q < 192; ++q) sum += -lp.data()[q * 256 + truth[q]] / std::log(2.0);
        QVERIFY(std::abs(row.truth_bits_per_dim[pi] - sum / 144) < 1e-5);
        QCOMPARE(row.surprise_bits[pi].size(), size_t{192});
        weighted += row.truth_bits_per_dim[pi];
        QCOMPARE(row.prompt_bits_per_dim[pi], *model_bits_per_dim(*m, kept.data(), 48));
        for (size_t k = 0; k < 2; ++k) {
          SamplingParams pk = p;
          pk.seed = r->seeds[k];
          const std::vector<uint8_t> want = engine_generate(*m, kept, pk);
          const session::CompareCell& c = r->cell(i, pi, k);
          QCOMPARE(c.tokens, want);
          QVERIFY(c.done && c.tokens_per_s > 0);
          QCOMPARE(c.completion_bits_per_dim, *model_bits_per_dim(*m, want.data(), 192));
        }
      }
      QVERIFY(std::abs(r->truth_bits_mean(i) - weighted / 2) < 1e-9);
      QVERIFY(r->cell(i, 0, 0).tokens != r->cell(i, 0, 1).tokens);
    }
    QVERIFY(r->cell(0, 0, 0).tokens != r->cell(1, 0, 0).tokens);

    // With a painted mask every cell regenerates exactly the painted positions.
    std::vector<uint8_t> keep(192, 1);
    std::fill(keep.begin() + 30, keep.begin() + 60, 0);
    s.set_prompt_mask(image, keep);
    QTRY_VERIFY(s.snapshot()->run && s.snapshot()->run->has_keep_mask());
    QSignalSpy ended_masked(&s, &Session::compare_ended);
    s.compare(p);
    QVERIFY(ended_masked.wait(60000));
    QVERIFY(ended_masked.at(0).at(0).toBool());
    const auto rm = s.snapshot()->compare;
    QCOMPARE(rm->prompts[1].keep, keep);
    QCOMPARE(rm->prompts[1].completed, int64_t(30));
    for (size_t i = 0; i < 2; ++i) {
      const std::unique_ptr<Model> m = load_edited(paths[i], [](ModelConfig&) {});
      for (size_t pi = 0; pi < 2; ++pi) {
        GenerateRequest req;
        req.prompt = *truths[pi];
        req.keep = keep;
        req.length = 192;
        req.sampling = p;
        auto want = generate(*m, req);
        QVERIFY(want.has_value());
        QCOMPARE(rm->cell(i, pi, 0).tokens, *want);
        for (size_t j = 0; j < keep.size(); ++j)
          if (keep[j]) QCOMPARE(rm->cell(i, pi, 0).tokens[j], (*truths[pi])[j]);
      }
    }
    // Clearing removes the added models; Compare then asks for one.
    s.clear_compare_models();
    QTRY_VERIFY(s.snapshot()->compare_models.empty() && !s.snapshot()->compare);
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
