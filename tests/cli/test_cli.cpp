// attnscope-cli end to end: init/info for every family, generate (prompt scaling and kept
// rows, seeds, grids, text, audio), eval and .npy dumps, and every refusal: exit code 2, one
// line on stderr, no output file and no temporary file left behind.
#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>

#include "attnscope/audio.h"
#include "attnscope/cuda.h"
#include "attnscope/model.h"
#include "attnscope/safetensors.h"
#include "cli_run.h"

using namespace attnscope;

namespace {

QByteArray read_all(const QString& path) {
  QFile f(path);
  return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

void write_all(const QString& path, const QByteArray& bytes) {
  QFile f(path);
  QVERIFY(f.open(QIODevice::WriteOnly));
  QCOMPARE(f.write(bytes), bytes.size());
}

// Width and height from a PNG's IHDR chunk (big-endian at bytes 16 and 20).
QSize png_size(const QByteArray& png) {
  if (png.size() < 24 || !png.startsWith("\x89PNG\r\n\x1a\n")) return {};
  auto be = [&](int at) {
    return int((uint8_t(png[at]) << 24) | (uint8_t(png[at + 1]) << 16) |
               (uint8_t(png[at + 2]) << 8) | uint8_t(png[at + 3]));
  };
  return {be(16), be(20)};
}

// The pixels of a binary PPM (P6, maxval 255) as written by Qt: "P6\nW H\n255\n" + RGB.
QByteArray ppm_pixels(const QByteArray& ppm, int w, int h) {
  const QByteArray header =
      "P6\n" + QByteArray::number(w) + " " + QByteArray::number(h) + "\n255\n";
  if (!ppm.startsWith(header)) return {};
  return ppm.mid(header.size());
}

// The value of "key: value" on stdout.
QString field(const QByteArray& out, const QString& key) {
  for (const QString& line : QString::fromUtf8(out).split('\n'))
    if (line.startsWith(key + ": ")) return line.mid(key.size() + 2).trimmed();
  return {};
}

}  // namespace

class TestCli : public QObject {
  Q_OBJECT

  QTemporaryDir dir_;
  QString path(const QString& name) const { return dir_.filePath(name); }

  // A refusal: exit code 2, exactly one line on stderr in the tool's error form.
  static void expect_usage_error(const Run& r, const QString& mentions = {}) {
    QVERIFY2(r.code == 2,
             qPrintable(QString("exit %1, stderr: %2").arg(r.code).arg(QString(r.err))));
    const QString err = QString::fromUtf8(r.err);
    QVERIFY2(err.endsWith('\n') && err.count('\n') == 1, qPrintable(err));
    QVERIFY2(err.startsWith("attnscope-cli: error: "), qPrintable(err));
    if (!mentions.isEmpty()) QVERIFY2(err.contains(mentions), qPrintable(err));
  }

  QString init_image(const QString& name, const QString& family, QStringList extra = {}) {
    QStringList args = {"init",  "--family", family,    "--modality", "image:8x8x3",
                        "--dim", "32",       "--heads", "4",          "--seed",
                        "1",     "--out",    path(name)};
    if (family != "hourglass")
      args << "--layers"
           << "2";
    const Run r = cli(args + extra);
    if (r.code != 0) qWarning() << r.err;
    return r.code == 0 ? path(name) : QString();
  }

 private slots:
  void initTestCase() { QVERIFY(dir_.isValid()); }

  // No command, successful or not, leaves a temporary file in the output folder.
  void cleanup() {
    const QStringList hidden =
        QDir(dir_.path()).entryList(QDir::Files | QDir::Hidden).filter(QRegularExpression("^\\."));
    QVERIFY2(hidden.isEmpty(), qPrintable(hidden.join(", ")));
  }

  void helpForEveryCommand() {
    for (QStringList args : {QStringList{"--help"},
                             {"init", "--help"},
                             {"info", "--help"},
                             {"generate", "--help"},
                             {"eval", "--help"},
                             {"bench", "attention", "--help"},
                             {"bench", "generate", "--help"}}) {
      const Run r = cli(args);
      QVERIFY2(r.code == 0, qPrintable(args.join(' ')));
      QVERIFY(r.out.contains("usage: attnscope-cli"));
      if (args[0] == "init" || args[0] == "generate") QVERIFY(r.out.contains("default"));
    }
    QVERIFY(cli({"generate", "--help"}).out.contains("2-pixel"));
    QVERIFY(cli({"generate", "--help"}).out.contains("OUT-1.wav"));
  }

  void initAndInfoEveryFamily_data() {
    QTest::addColumn<QString>("family");
    QTest::addColumn<QStringList>("extra");
    QTest::newRow("dense") << "dense" << QStringList{};
    QTest::newRow("sparse strided") << "sparse" << QStringList{};
    QTest::newRow("sparse fixed") << "sparse"
                                  << QStringList{"--pattern", "fixed", "--stride",  "64",
                                                 "--summary", "16",    "--combine", "merged"};
    QTest::newRow("reformer") << "reformer" << QStringList{"--chunk", "16", "--n-hashes", "2"};
    QTest::newRow("perceiver-ar") << "perceiver-ar" << QStringList{"--latents", "64"};
    QTest::newRow("hourglass") << "hourglass" << QStringList{"--hierarchy", "1@1,1@2,1@1"};
  }

  void initAndInfoEveryFamily() {
    QFETCH(QString, family);
    QFETCH(QStringList, extra);
    const QString file =
        init_image("init-" + QString(QTest::currentDataTag()).replace(' ', '-') + ".safetensors",
                   family, extra);
    QVERIFY(!file.isEmpty());
    auto loaded = safetensors_load(file.toStdString());
    QVERIFY2(loaded.has_value(), loaded.status().message().c_str());
    QCOMPARE(QString(family_name(loaded->cfg.family)), family);
    QCOMPARE(loaded->cfg.seq_len(), int64_t{192});
    const Run r = cli({"info", file});
    QCOMPARE(r.code, 0);
    QCOMPARE(field(r.out, "parameters").toLongLong(),
             static_cast<long long>(model_param_count(loaded->cfg)));
    QCOMPARE(field(r.out, "family"), family);
    QCOMPARE(field(r.out, "modality"), QString("image:8x8x3"));
    QCOMPARE(field(r.out, "sequence length"), QString("192"));
    QVERIFY(r.out.contains("density"));
    QVERIFY(r.out.contains("KV cache"));
    if (family == "dense") QVERIFY(r.out.contains("layer 1: dense causal, density 1.0000"));
  }

  // --token-init ordinal writes the engine's ordinal init (the file equals
  // model_init_weights with ordinal_tokens); it sets the logit layer, so --logits with it and
  // an unknown init are refused, writing nothing.
  void initOrdinalTokens() {
    const QString file = init_image("ordinal.safetensors", "dense", {"--token-init", "ordinal"});
    QVERIFY(!file.isEmpty());
    auto loaded = safetensors_load(file.toStdString());
    QVERIFY2(loaded.has_value(), loaded.status().message().c_str());
    InitOptions io;
    io.seed = 1;
    io.ordinal_tokens = true;
    const WeightMap want = model_init_weights(loaded->cfg, io);
    for (const char* name : {"embed.token", "head.weight", "blocks.0.attn.wq"}) {
      const Tensor& a = loaded->weights.at(name);
      const Tensor& b = want.at(name);
      QVERIFY(a.numel() == b.numel() && std::equal(a.data(), a.data() + a.numel(), b.data()));
    }
    expect_usage_error(cli({"init", "--family", "dense", "--modality", "image:8x8x3", "--layers",
                            "2", "--dim", "32", "--heads", "4", "--seed", "1", "--token-init",
                            "ordinal", "--logits", "random", "--out", path("no1.safetensors")}),
                       "--logits");
    expect_usage_error(cli({"init", "--family", "dense", "--modality", "image:8x8x3", "--layers",
                            "2", "--dim", "32", "--heads", "4", "--seed", "1", "--token-init",
                            "sorted", "--out", path("no2.safetensors")}),
                       "--token-init");
    QVERIFY(!QFileInfo::exists(path("no1.safetensors")));
    QVERIFY(!QFileInfo::exists(path("no2.safetensors")));
  }

  void infoParameterCountMatchesIndependentConfig() {
    ModelConfig c;
    c.family = Family::kDense;
    c.modality = *modality_parse("image:8x8x3");
    c.layers = 2;
    c.dim = 32;
    c.heads = 4;
    QVERIFY(config_resolve(c).is_ok());
    const QString file = init_image("count.safetensors", "dense");
    QCOMPARE(field(cli({"info", file}).out, "parameters").toLongLong(),
             static_cast<long long>(model_param_count(c)));
  }

  void generateScalesPromptAndKeepsRows() {
    // A 16x16 prompt of 2x2 single-colour blocks: halving it with QImage::scaled(8, 8,
    // IgnoreAspectRatio, SmoothTransformation), the CLI's call, averages whole blocks, so the
    // expected scaled prompt is the block colours exactly (this test has no QtGui to call it).
    QByteArray ppm = "P6\n16 16\n255\n";
    QByteArray blocks;
    for (int i = 0; i < 8 * 8 * 3; ++i) blocks.append(char((i * 37 + 11) % 256));
    for (int y = 0; y < 16; ++y)
      for (int x = 0; x < 16; ++x) ppm.append(blocks.mid(((y / 2) * 8 + x / 2) * 3, 3));
    write_all(path("prompt16.ppm"), ppm);
    const QString model = init_image("gen.safetensors", "dense", {"--logits", "random"});
    const Run r = cli({"generate", "--model", model, "--prompt", path("prompt16.ppm"),
                       "--keep-rows", "3", "--seed", "5", "--out", path("kept.ppm")});
    QVERIFY2(r.code == 0, r.err.constData());
    QVERIFY2(r.err.contains("scaled prompt 16x16 -> 8x8"), r.err.constData());
    const QByteArray px = ppm_pixels(read_all(path("kept.ppm")), 8, 8);
    QCOMPARE(px.size(), 8 * 8 * 3);
    QCOMPARE(px.left(3 * 8 * 3), blocks.left(3 * 8 * 3));
    QVERIFY(px.mid(3 * 8 * 3) != blocks.mid(3 * 8 * 3));

    // A prompt of the model's size is not scaled and all its kept rows come back byte for byte.
    const Run same = cli({"generate", "--model", model, "--prompt", path("kept.ppm"), "--keep-rows",
                          "8", "--seed", "9", "--out", path("same.ppm")});
    QVERIFY2(same.code == 0, same.err.constData());
    QVERIFY(!same.err.contains("scaled"));
    QCOMPARE(ppm_pixels(read_all(path("same.ppm")), 8, 8), px);
  }

  void generateSeedsAndGrid() {
    const QString model = init_image("seeds.safetensors", "sparse");
    auto gen = [&](const QString& seed, const QString& out, QStringList extra = {}) {
      const Run r = cli(
          QStringList{"generate", "--model", model, "--seed", seed, "--out", path(out)} + extra);
      QVERIFY2(r.code == 0, r.err.constData());
    };
    gen("3", "a.png");
    gen("3", "b.png");
    gen("4", "c.png");
    QCOMPARE(png_size(read_all(path("a.png"))), QSize(8, 8));
    QCOMPARE(read_all(path("a.png")), read_all(path("b.png")));
    QVERIFY(read_all(path("a.png")) != read_all(path("c.png")));
    gen("3", "grid4.png", {"--samples", "4"});  // 2 columns, 2 rows, a 2-pixel gap
    QCOMPARE(png_size(read_all(path("grid4.png"))), QSize(18, 18));
    gen("3", "grid5.png",
        {"--samples", "5", "--temperature", "0.7", "--top-k", "20", "--top-p", "0.9"});
    QCOMPARE(png_size(read_all(path("grid5.png"))), QSize(28, 18));  // 3 columns, 2 rows
  }

  void evalUniformModelAndDump() {
    const QString model = init_image("eval.safetensors", "dense");  // zero logits: uniform
    QVERIFY(cli({"generate", "--model", model, "--seed", "1", "--out", path("eval.png")}).code ==
            0);
    const Run r = cli(
        {"eval", "--model", model, "--input", path("eval.png"), "--dump-logprobs", path("lp.npy")});
    QVERIFY2(r.code == 0, r.err.constData());
    QCOMPARE(field(r.out, "bits/dim"), QString("8.0000"));
    QCOMPARE(field(r.out, "N"), QString("192"));
    const QByteArray npy = read_all(path("lp.npy"));
    QVERIFY(npy.startsWith(QByteArray("\x93NUMPY\x01\x00", 8)));
    const int header = uint8_t(npy[8]) | (uint8_t(npy[9]) << 8);
    QCOMPARE((10 + header) % 64, 0);
    const QByteArray dict = npy.mid(10, header);
    QVERIFY2(dict.contains("'descr': '<f4'") && dict.contains("'shape': (192, 256)") &&
                 dict.contains("'fortran_order': False") && dict.endsWith('\n'),
             dict.constData());
    QCOMPARE(npy.size(), 10 + header + 192 * 256 * 4);
    const float* v = reinterpret_cast<const float*>(npy.constData() + 10 + header);
    for (int i = 0; i < 192 * 256; i += 97) QVERIFY(std::fabs(v[i] + std::log(256.0f)) < 1e-5f);
    // Eval does not scale images: another size is refused.
    expect_usage_error(cli({"eval", "--model", model, "--input", path("grid4.png")}), "8x8");
  }

  // --latents and --latent-cache change how a Perceiver AR model decodes for one command:
  // the cached scheme scores and samples differently once M latents are cached, and with
  // M = N (never full) the two are the same; other families refuse the knobs by name.
  void perceiverLatentKnobs() {
    const QString model =
        init_image("knobs.safetensors", "perceiver-ar", {"--latents", "16", "--logits", "random"});
    QVERIFY(!model.isEmpty());
    QVERIFY(cli({"generate", "--model", model, "--seed", "3", "--out", path("knobs.png")}).code ==
            0);
    auto bits = [&](const QStringList& extra) {
      const Run r =
          cli(QStringList{"eval", "--model", model, "--input", path("knobs.png")} + extra);
      if (r.code != 0) qWarning() << r.err;
      return field(r.out, "bits/dim");
    };
    const QString exact = bits({}), cached = bits({"--latent-cache", "cached"});
    QVERIFY(!exact.isEmpty() && !cached.isEmpty());
    QCOMPARE(bits({"--latent-cache", "exact"}), exact);
    QVERIFY2(exact != cached, qPrintable(exact + " vs " + cached));
    QCOMPARE(bits({"--latents", "192", "--latent-cache", "cached"}), bits({"--latents", "192"}));
    const Run a = cli({"generate", "--model", model, "--seed", "4", "--out", path("ke.ppm")});
    const Run b = cli({"generate", "--model", model, "--seed", "4", "--latent-cache", "cached",
                       "--out", path("kc.ppm")});
    QVERIFY(a.code == 0 && b.code == 0);
    QVERIFY(read_all(path("ke.ppm")) != read_all(path("kc.ppm")));
    expect_usage_error(
        cli({"eval", "--model", model, "--input", path("knobs.png"), "--latent-cache", "fast"}),
        "exact, cached");
    expect_usage_error(
        cli({"eval", "--model", model, "--input", path("knobs.png"), "--latents", "193"}),
        "--latents");
    const QString dense = init_image("knobs-dense.safetensors", "dense");
    expect_usage_error(cli({"generate", "--model", dense, "--seed", "1", "--latent-cache", "cached",
                            "--out", path("kd.png")}),
                       "Perceiver AR");
  }

  void textModel() {
    const Run init =
        cli({"init", "--family", "dense", "--modality", "text:48", "--layers", "1", "--dim", "16",
             "--heads", "2", "--seed", "2", "--out", path("text.safetensors")});
    QVERIFY2(init.code == 0, init.err.constData());
    const Run r = cli({"generate", "--model", path("text.safetensors"), "--prompt-text",
                       "hello, world", "--seed", "1", "--out", path("t.txt")});
    QVERIFY2(r.code == 0, r.err.constData());
    const QByteArray text = read_all(path("t.txt"));
    QCOMPARE(text.size(), 48);
    QVERIFY(text.startsWith("hello, world"));
    const Run longer =
        cli({"generate", "--model", path("text.safetensors"), "--prompt-text", QString(60, 'x'),
             "--seed", "1", "--samples", "2", "--out", path("tl.txt")});
    QVERIFY2(longer.code == 0, longer.err.constData());
    QVERIFY(longer.err.contains("truncated"));
    QCOMPARE(read_all(path("tl-1.txt")), QByteArray(48, 'x'));
    QCOMPARE(read_all(path("tl-2.txt")), QByteArray(48, 'x'));
    QVERIFY(!QFile::exists(path("tl.txt")));
    write_all(path("in.txt"), "some text to score");
    const Run ev = cli({"eval", "--model", path("text.safetensors"), "--input", path("in.txt")});
    QCOMPARE(ev.code, 0);
    QCOMPARE(field(ev.out, "N"), QString("18"));
    expect_usage_error(cli({"generate", "--model", path("text.safetensors"), "--seed", "1", "--out",
                            path("t.png")}),
                       ".txt");
  }

  void audioModel() {
    const Run init =
        cli({"init", "--family", "dense", "--modality", "audio:8000:0.05", "--layers", "1", "--dim",
             "16", "--heads", "2", "--seed", "2", "--out", path("audio.safetensors")});
    QVERIFY2(init.code == 0, init.err.constData());
    // A 16 kHz prompt: resampled to 8 kHz and mu-law coded; 0.025 s = 200 samples kept.
    AudioClip prompt;
    prompt.rate = 16000;
    for (int i = 0; i < 800; ++i) prompt.samples.push_back(0.6f * std::sin(i * 0.02f));
    QVERIFY(audio_wav_write(path("prompt.wav").toStdString(), prompt).is_ok());
    const Run r =
        cli({"generate", "--model", path("audio.safetensors"), "--prompt", path("prompt.wav"),
             "--keep-seconds", "0.025", "--seed", "1", "--samples", "2", "--out", path("a.wav")});
    QVERIFY2(r.code == 0, r.err.constData());
    QVERIFY(r.err.contains("resampled prompt 16000 Hz -> 8000 Hz"));
    const auto expected =
        audio_mulaw_decode(audio_mulaw_encode(audio_resample_linear(prompt.samples, 16000, 8000)));
    for (const char* name : {"a-1.wav", "a-2.wav"}) {
      auto clip = audio_wav_read(path(name).toStdString());
      QVERIFY2(clip.has_value(), clip.status().message().c_str());
      QCOMPARE(clip->rate, 8000);
      QCOMPARE(clip->samples.size(), size_t{400});
      for (size_t i = 0; i < 200; ++i)  // 16-bit PCM: within half a step
        QVERIFY(std::fabs(clip->samples[i] - expected[i]) <= 0.5f / 32768 + 1e-7f);
    }
    const Run ev =
        cli({"eval", "--model", path("audio.safetensors"), "--input", path("prompt.wav")});
    QCOMPARE(ev.code, 0);
    QCOMPARE(field(ev.out, "N"), QString("400"));
    expect_usage_error(
        cli({"generate", "--model", path("audio.safetensors"), "--prompt", path("prompt.wav"),
             "--keep-seconds", "0.5", "--seed", "1", "--out", path("b.wav")}),
        "--keep-seconds");
    write_all(path("bad.wav"), "RIFF\x10\0\0\0WAVEjunk");
    expect_usage_error(cli({"generate", "--model", path("audio.safetensors"), "--prompt",
                            path("bad.wav"), "--seed", "1", "--out", path("b.wav")}),
                       "bad.wav");
    QVERIFY(!QFile::exists(path("b.wav")));
  }

  void usageErrors() {
    const QString model = init_image("errors.safetensors", "dense");
    expect_usage_error(cli({"frobnicate"}), "unknown command");
    expect_usage_error(cli({}));
    expect_usage_error(cli({"init", "--family", "dense", "--modality", "image:8x8x3", "--layers",
                            "2", "--dim", "32", "--heads", "4", "--seed", "1"}),
                       "--out");
    expect_usage_error(cli({"generate", "--model", model, "--seed", "1"}), "--out");
    expect_usage_error(
        cli({"generate", "--model", model, "--seed", "1", "--out", path("x.png"), "--bogus", "1"}),
        "--bogus");
    expect_usage_error(cli({"generate", "--model", path("missing.safetensors"), "--seed", "1",
                            "--out", path("x.png")}),
                       "missing.safetensors");
    expect_usage_error(cli({"info", path("missing.safetensors")}), "missing.safetensors");
    expect_usage_error(
        cli({"init", "--family", "dense", "--modality", "image:8x8x3", "--layers", "2", "--dim",
             "1000000000", "--heads", "4", "--seed", "1", "--out", path("big.safetensors")}),
        "dim");
    expect_usage_error(cli({"init", "--family", "dense", "--modality", "image:8x8x3", "--layers",
                            "2", "--dim", "32", "--heads", "4", "--seed", "1", "--stride", "64",
                            "--out", path("big.safetensors")}),
                       "--stride");
    expect_usage_error(
        cli({"init", "--family", "wavenet", "--modality", "image:8x8x3", "--layers", "2", "--dim",
             "32", "--heads", "4", "--seed", "1", "--out", path("big.safetensors")}),
        "wavenet");
    QVERIFY(!QFile::exists(path("big.safetensors")));
    expect_usage_error(cli({"generate", "--model", model, "--seed", "1", "--temperature", "-1",
                            "--out", path("x.png")}),
                       "--temperature");
    expect_usage_error(cli({"generate", "--model", model, "--seed", "1", "--prompt-text", "hi",
                            "--out", path("x.png")}),
                       "--prompt-text");
    expect_usage_error(cli({"bench", "everything"}), "everything");
    QVERIFY(!QFile::exists(path("x.png")));
  }

  void corruptInputs() {
    const QString model = init_image("corrupt.safetensors", "dense");
    write_all(path("bad.png"), QByteArray("\x89PNG\r\n\x1a\n", 8) + QByteArray(200, '\x42'));
    expect_usage_error(cli({"generate", "--model", model, "--prompt", path("bad.png"), "--seed",
                            "1", "--out", path("y.png")}),
                       "bad.png");
    expect_usage_error(cli({"eval", "--model", model, "--input", path("bad.png")}), "bad.png");
    QVERIFY(!QFile::exists(path("y.png")));

    // An image bomb: a PNG of a few hundred bytes whose header declares 30000x30000 pixels (2.7 GB
    // as RGB) is refused from its header, naming the limit, in well under a second, for a prompt,
    // for eval and as training data; nothing is written.
    {
      // The PNG by hand (QtCore only): signature, IHDR, one IDAT of 10 white rows, IEND.
      auto crc32 = [](const QByteArray& d) {
        quint32 c = 0xffffffffu;
        for (char ch : d) {
          c ^= static_cast<quint8>(ch);
          for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
        }
        return c ^ 0xffffffffu;
      };
      auto be32 = [](quint32 v) {
        QByteArray b(4, 0);
        for (int i = 0; i < 4; ++i) b[i] = static_cast<char>((v >> (24 - 8 * i)) & 0xff);
        return b;
      };
      auto chunk = [&](const QByteArray& type, const QByteArray& data) {
        return be32(static_cast<quint32>(data.size())) + type + data + be32(crc32(type + data));
      };
      QByteArray raw;
      for (int y = 0; y < 10; ++y) raw += QByteArray(1, 0) + QByteArray(30000 * 3, '\xff');
      const QByteArray png =
          QByteArray("\x89PNG\r\n\x1a\n", 8) +
          chunk("IHDR", be32(30000) + be32(30000) + QByteArray("\x08\x02\0\0\0", 5)) +
          chunk("IDAT", qCompress(raw).mid(4)) + chunk("IEND", {});
      QVERIFY(png.size() < 10000);
      write_all(path("bomb.png"), png);
      QElapsedTimer t;
      t.start();
      expect_usage_error(cli({"generate", "--model", model, "--prompt", path("bomb.png"), "--seed",
                              "1", "--out", path("y.png")}),
                         "8192 pixels a side");
      expect_usage_error(cli({"eval", "--model", model, "--input", path("bomb.png")}),
                         "30000x30000");
      QDir().mkpath(path("bombs"));
      QFile::copy(path("bomb.png"), path("bombs/bomb.png"));
      expect_usage_error(cli({"train", "--model", model, "--data", path("bombs"), "--steps", "1",
                              "--out", path("bomb-trained.safetensors")}),
                         "8192 pixels a side");
      QVERIFY2(t.elapsed() < 20000, qPrintable(QString::number(t.elapsed())));
      QVERIFY(!QFile::exists(path("y.png")) && !QFile::exists(path("bomb-trained.safetensors")));
    }

    QStringList broken;
    const QByteArray whole = read_all(model);
    write_all(path("truncated.safetensors"), whole.left(whole.size() / 2));
    broken << path("truncated.safetensors");
    write_all(path("garbage.safetensors"), QByteArray(1000, '\x07'));
    broken << path("garbage.safetensors");
    const QDir malformed(QStringLiteral(ATTNSCOPE_TEST_DATA) + "/malformed");
    for (const QString& name : malformed.entryList({"*.safetensors"}, QDir::Files))
      broken << malformed.filePath(name);
    for (const QString& file : broken) {
      const QString name = QFileInfo(file).fileName();
      expect_usage_error(cli({"info", file}), name);
      expect_usage_error(cli({"generate", "--model", file, "--seed", "1", "--out", path("z.png")}),
                         name);
      expect_usage_error(cli({"eval", "--model", file, "--input", path("bad.png")}), name);
    }
    QVERIFY(!QFile::exists(path("z.png")));
  }

  void outputIntoMissingFolder() {
    const QString model = init_image("folder.safetensors", "dense");
    expect_usage_error(
        cli({"generate", "--model", model, "--seed", "1", "--out", path("nope/out.png")}), "nope");
    expect_usage_error(
        cli({"init", "--family", "dense", "--modality", "image:8x8x3", "--layers", "2", "--dim",
             "32", "--heads", "4", "--seed", "1", "--out", path("nope/m.safetensors")}),
        "nope");
    expect_usage_error(cli({"eval", "--model", model, "--input", path("eval.png"),
                            "--dump-logprobs", path("nope/lp.npy")}),
                       "nope");
    QVERIFY(!QFileInfo::exists(path("nope")));
  }

  void benchAttentionDeviceFlags() {
    // Unknown devices and precisions, and a precision without the device it applies to, are
    // usage errors (exit 2); without a CUDA device, --device cuda stops with exit 1 and the
    // reason. With a device the benchmark itself is not run here (benchmarks are not tests).
    Run r = cli({"bench", "attention", "--device", "tpu"});
    QCOMPARE(r.code, 2);
    QVERIFY(r.err.contains("--device must be cpu or cuda"));
    r = cli({"bench", "attention", "--precision", "bf16"});
    QCOMPARE(r.code, 2);
    QVERIFY(r.err.contains("--precision applies to --device cuda"));
    r = cli({"bench", "attention", "--device", "cuda", "--precision", "fp8"});
    QCOMPARE(r.code, 2);
    QVERIFY(r.err.contains("--precision"));
    std::string why;
    if (cuda_available(&why).is_ok()) {
      qInfo("a CUDA device answers (%s): the device benchmark is not run in a test", why.c_str());
      return;
    }
    r = cli({"bench", "attention", "--device", "cuda"});
    QCOMPARE(r.code, 1);
    QVERIFY2(r.err.contains("CUDA"), r.err.constData());
  }

  void generateOnDevice() {
    // --device cuda never fails for want of a device: the CPU runs the model and one stderr
    // line says which backend ran and why. Without a device the image is the CPU's, byte for
    // byte; with one, the device's (same size, its own rounding).
    const QString model = init_image("device.safetensors", "sparse", {"--logits", "random"});
    Run cpu = cli({"generate", "--model", model, "--seed", "7", "--out", path("cpu.png")});
    QVERIFY2(cpu.code == 0, cpu.err.constData());
    QVERIFY(!cpu.err.contains("backend:"));
    Run dev = cli({"generate", "--model", model, "--device", "cuda", "--seed", "7", "--out",
                   path("dev.png")});
    QVERIFY2(dev.code == 0, dev.err.constData());
    QCOMPARE(dev.err.count("backend: "), 1);
    std::string why;
    if (cuda_available(&why).is_ok()) {
      QVERIFY2(dev.err.contains("backend: cuda ("), dev.err.constData());
      QCOMPARE(png_size(read_all(path("dev.png"))), QSize(8, 8));
    } else {
      QVERIFY2(dev.err.contains(QByteArray("backend: cpu (") + QByteArray(why.c_str())),
               dev.err.constData());
      QCOMPARE(read_all(path("dev.png")), read_all(path("cpu.png")));
    }
    // The Reformer's decode has no device kernel: always the CPU, and the line says so.
    const QString reformer = init_image("device-reformer.safetensors", "reformer");
    Run ref = cli({"generate", "--model", reformer, "--device", "cuda", "--precision", "bf16",
                   "--seed", "1", "--out", path("ref.png")});
    QVERIFY2(ref.code == 0, ref.err.constData());
    QVERIFY2(ref.err.contains("backend: cpu ("), ref.err.constData());

    Run bad = cli({"generate", "--model", model, "--device", "gpu", "--seed", "1", "--out",
                   path("refused.png")});
    QCOMPARE(bad.code, 2);
    QVERIFY(bad.err.contains("--device must be cpu or cuda"));
    QVERIFY(!QFileInfo::exists(path("refused.png")));
    bad = cli({"generate", "--model", model, "--precision", "tf32", "--seed", "1", "--out",
               path("refused.png")});
    QCOMPARE(bad.code, 2);
    QVERIFY(bad.err.contains("--precision applies to --device cuda"));

    // bench generate --device cuda: a usage error for a bad precision; without a device,
    // exit 1 with the reason.
    bad = cli({"bench", "generate", "--device", "cuda", "--precision", "fp8"});
    QCOMPARE(bad.code, 2);
    if (cuda_available(&why).is_ok()) return;  // the benchmark itself is not a test
    bad = cli({"bench", "generate", "--device", "cuda"});
    QCOMPARE(bad.code, 1);
    QVERIFY2(bad.err.contains("CUDA"), bad.err.constData());
  }
};

QTEST_GUILESS_MAIN(TestCli)
#include "test_cli.moc"
