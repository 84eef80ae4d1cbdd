// Audio tokens: mu-law codes and error bounds, the WAV reader on every supported layout, the
// writer's round trip, refusal of truncated and hostile files, and linear resampling.
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>
#include <cstring>
#include <random>

#include "attnscope/audio.h"

using namespace attnscope;

namespace {

void put16(std::vector<uint8_t>& b, uint32_t v) {
  b.push_back(v & 0xFF);
  b.push_back((v >> 8) & 0xFF);
}
void put32(std::vector<uint8_t>& b, uint32_t v) {
  put16(b, v & 0xFFFF);
  put16(b, v >> 16);
}

// A WAV file with one fmt chunk (16 bytes, or 40 for WAVE_FORMAT_EXTENSIBLE) and one data chunk.
std::vector<uint8_t> make_wav(uint16_t format, int channels, int rate, int bits,
                              const std::vector<uint8_t>& payload, bool extensible = false) {
  std::vector<uint8_t> fmt;
  put16(fmt, extensible ? 0xFFFE : format);
  put16(fmt, channels);
  put32(fmt, rate);
  put32(fmt, rate * channels * bits / 8);
  put16(fmt, channels * bits / 8);
  put16(fmt, bits);
  if (extensible) {
    put16(fmt, 22);
    put16(fmt, bits);
    put32(fmt, 0);
    put16(fmt, format);
    for (int i = 0; i < 14; ++i) fmt.push_back(0);
  }
  std::vector<uint8_t> b = {'R', 'I', 'F', 'F'};
  put32(b, static_cast<uint32_t>(4 + 8 + fmt.size() + 8 + payload.size()));
  b.insert(b.end(), {'W', 'A', 'V', 'E', 'f', 'm', 't', ' '});
  put32(b, static_cast<uint32_t>(fmt.size()));
  b.insert(b.end(), fmt.begin(), fmt.end());
  b.insert(b.end(), {'d', 'a', 't', 'a'});
  put32(b, static_cast<uint32_t>(payload.size()));
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

Expected<AudioClip> parse(const std::vector<uint8_t>& b) {
  return audio_wav_parse(b.data(), b.size(), "test.wav");
}

}  // namespace

class TestAudio : public QObject {
  Q_OBJECT

 private slots:
  void mulawKnownCodes() {
    // f(-1) = -1 -> floor(0.5) = 0; f(0) = 0 -> floor(128) = 128; f(1) = 1 -> floor(255.5) = 255.
    QCOMPARE(int(audio_mulaw_encode(-1.0f)), 0);
    QCOMPARE(int(audio_mulaw_encode(0.0f)), 128);
    QCOMPARE(int(audio_mulaw_encode(1.0f)), 255);
    QCOMPARE(int(audio_mulaw_encode(-7.0f)), 0);  // clipped
    QCOMPARE(int(audio_mulaw_encode(7.0f)), 255);
    QCOMPARE(int(audio_mulaw_encode(std::nanf(""))), 128);
    QCOMPARE(audio_mulaw_decode(0), -1.0f);
    QCOMPARE(audio_mulaw_decode(255), 1.0f);
    // Code 128 sits at f = 1/255: ((256)^(1/255) - 1) / 255 = 8.6212e-5.
    QVERIFY(std::fabs(audio_mulaw_decode(128) - 8.6212e-5f) < 1e-9f);
  }

  void mulawCodesAreFixedPointsAndMonotonic() {
    for (int q = 0; q < 256; ++q)
      QCOMPARE(int(audio_mulaw_encode(audio_mulaw_decode(static_cast<uint8_t>(q)))), q);
    int last = 0;
    for (int i = -10000; i <= 10000; ++i) {
      const int q = audio_mulaw_encode(i / 10000.0f);
      QVERIFY(q >= last);
      last = q;
    }
  }

  void mulawRoundTripError() {
    // Rounding moves f by at most half a step, 1/255; dx/df = ln(256) 256^|f| / 255, and
    // 256^|f| = 1 + 255|x| at the input, so |x' - x| <= ln(256) (1 + 255|x|) 256^(1/255) / 255^2
    // = 8.72e-5 (1 + 255|x|). Bound: 8.8e-5 (1 + 255|x|), plus 1e-6 for float rounding.
    double worst_ratio = 0;
    for (int i = -20000; i <= 20000; ++i) {
      const float x = i / 20000.0f;
      const double err = std::fabs(audio_mulaw_decode(audio_mulaw_encode(x)) - x);
      const double bound = 8.8e-5 * (1 + 255 * std::fabs(x)) + 1e-6;
      if (err > bound)
        QFAIL(qPrintable(QString("x = %1: error %2 > %3").arg(x).arg(err).arg(bound)));
      worst_ratio = std::max(worst_ratio, err / bound);
    }
    QVERIFY(worst_ratio > 0.5);  // the bound is tight, not vacuous
  }

  // The voicing measure: a 150 Hz tone is voiced in every frame at its pitch, noise and
  // low-passed noise in none (though they sound), silence does not sound; a clip half tone, half
  // noise is half voiced; skip drops the first seconds.
  void voicingOfToneNoiseAndSilence() {
    const int rate = 8000;
    AudioClip tone{rate, {}}, noise{rate, {}}, silence{rate, std::vector<float>(rate, 0.0f)};
    uint64_t s = 12345;
    for (int i = 0; i < rate; ++i) {
      tone.samples.push_back(0.3f * static_cast<float>(std::sin(2 * M_PI * 150.0 * i / rate)));
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      noise.samples.push_back(0.6f * (static_cast<float>(s >> 40) / 16777216.0f - 0.5f));
    }
    const Voicing vt = audio_voicing(tone);
    QCOMPARE(vt.frames, int64_t{25});
    QCOMPARE(vt.voiced, int64_t{25});
    QVERIFY2(std::abs(vt.pitch_hz - 150.0) < 3.0, qPrintable(QString::number(vt.pitch_hz)));
    const Voicing vn = audio_voicing(noise);
    QCOMPARE(vn.sounding, int64_t{25});
    QCOMPARE(vn.voiced, int64_t{0});
    QCOMPARE(vn.share(), 0.0);
    // Noise through a one-pole low-pass: its correlation is high at every short lag but
    // falls steadily, with no peak, so it is not voiced either.
    AudioClip red{rate, {}};
    float y = 0;
    for (float v : noise.samples) red.samples.push_back(y = 0.97f * y + 0.03f * v);
    const Voicing vr = audio_voicing(red);
    QCOMPARE(vr.sounding, int64_t{25});
    QCOMPARE(vr.voiced, int64_t{0});
    const Voicing vs = audio_voicing(silence);
    QCOMPARE(vs.frames, int64_t{25});
    QCOMPARE(vs.sounding, int64_t{0});
    AudioClip half = tone;
    half.samples.insert(half.samples.end(), noise.samples.begin(), noise.samples.end());
    QCOMPARE(audio_voicing(half).share(), 0.5);
    const Voicing skipped = audio_voicing(half, 1.0);
    QCOMPARE(skipped.frames, int64_t{25});
    QCOMPARE(skipped.voiced, int64_t{0});
    QCOMPARE(audio_voicing(half, 5.0).frames, int64_t{0});
  }

  void wavWriteReadRoundTrip() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    AudioClip clip;
    clip.rate = 8000;
    for (int i = 0; i < 1001; ++i) clip.samples.push_back(0.9f * std::sin(i * 0.05f));
    clip.samples.push_back(1.0f);
    clip.samples.push_back(-1.0f);
    const std::string path = dir.filePath("clip.wav").toStdString();
    QVERIFY(audio_wav_write(path, clip).is_ok());
    QCOMPARE(QDir(dir.path()).entryList(QDir::Files | QDir::Hidden).size(), 1);  // no temp left
    auto back = audio_wav_read(path);
    QVERIFY2(back.has_value(), back.status().message().c_str());
    QCOMPARE(back->rate, 8000);
    QCOMPARE(back->samples.size(), clip.samples.size());
    // 16-bit PCM: rounding to the nearest of 32768 steps per unit, and +1 clips to 32767.
    for (size_t i = 0; i < clip.samples.size(); ++i)
      QVERIFY(std::fabs(back->samples[i] - clip.samples[i]) <= 1.0f / 32768 + 1e-7f);
    QCOMPARE(QFileInfo(QString::fromStdString(path)).size(), qint64(44 + 2 * clip.samples.size()));
  }

  void wavWriteIntoMissingFolderFails() {
    QTemporaryDir dir;
    AudioClip clip;
    clip.samples = {0.0f};
    const std::string path = dir.filePath("no/such/folder/x.wav").toStdString();
    QVERIFY(!audio_wav_write(path, clip).is_ok());
    QCOMPARE(
        QDir(dir.path()).entryList(QDir::AllEntries | QDir::Hidden | QDir::NoDotAndDotDot).size(),
        0);
  }

  void wavLayouts() {
    {  // 8-bit unsigned: 0 -> -1, 128 -> 0, 255 -> 127/128
      auto c = parse(make_wav(1, 1, 8000, 8, {0, 128, 255}));
      QVERIFY2(c.has_value(), c.status().message().c_str());
      QCOMPARE(c->samples.size(), size_t{3});
      QCOMPARE(c->samples[0], -1.0f);
      QCOMPARE(c->samples[1], 0.0f);
      QCOMPARE(c->samples[2], 127.0f / 128.0f);
    }
    {  // 16-bit stereo mixed to mono: (16384, 0) -> 0.25, (-32768, -32768) -> -1
      std::vector<uint8_t> p;
      put16(p, 16384);
      put16(p, 0);
      put16(p, 0x8000);
      put16(p, 0x8000);
      auto c = parse(make_wav(1, 2, 44100, 16, p));
      QVERIFY2(c.has_value(), c.status().message().c_str());
      QCOMPARE(c->rate, 44100);
      QCOMPARE(c->samples.size(), size_t{2});
      QCOMPARE(c->samples[0], 0.25f);
      QCOMPARE(c->samples[1], -1.0f);
    }
    {  // 24-bit: 0x400000 -> 0.5, 0xC00000 -> -0.5
      auto c = parse(make_wav(1, 1, 16000, 24, {0x00, 0x00, 0x40, 0x00, 0x00, 0xC0}));
      QVERIFY2(c.has_value(), c.status().message().c_str());
      QCOMPARE(c->samples[0], 0.5f);
      QCOMPARE(c->samples[1], -0.5f);
    }
    {  // 32-bit integer through WAVE_FORMAT_EXTENSIBLE: 0x20000000 -> 0.25
      std::vector<uint8_t> p;
      put32(p, 0x20000000);
      auto c = parse(make_wav(1, 1, 16000, 32, p, /*extensible=*/true));
      QVERIFY2(c.has_value(), c.status().message().c_str());
      QCOMPARE(c->samples[0], 0.25f);
    }
    {  // 32-bit float, three channels: mean of (0.5, -0.25, 0.25) = 1/6; 2.0 is clipped to 1
      std::vector<uint8_t> p;
      for (float v : {0.5f, -0.25f, 0.25f, 2.0f, 2.0f, 2.0f}) {
        uint32_t u;
        std::memcpy(&u, &v, 4);
        put32(p, u);
      }
      auto c = parse(make_wav(3, 3, 16000, 32, p));
      QVERIFY2(c.has_value(), c.status().message().c_str());
      QVERIFY(std::fabs(c->samples[0] - 1.0f / 6) < 1e-7f);
      QCOMPARE(c->samples[1], 1.0f);
    }
  }

  void wavRefusesBadFiles_data() {
    QTest::addColumn<QByteArray>("bytes");
    QTest::addColumn<QString>("expect");
    auto add = [](const char* name, const std::vector<uint8_t>& b, const char* expect) {
      QTest::newRow(name) << QByteArray(reinterpret_cast<const char*>(b.data()), int(b.size()))
                          << QString(expect);
    };
    const std::vector<uint8_t> good = make_wav(1, 1, 8000, 16, {1, 0, 2, 0});
    add("empty", {}, "not a WAV");
    add("text", {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '!'}, "not a WAV");
    auto truncated = good;
    truncated.resize(good.size() - 1);
    add("truncated", truncated, "truncated");
    auto huge_chunk = good;
    huge_chunk[4] = huge_chunk[5] = huge_chunk[6] = huge_chunk[7] = 0xFF;  // RIFF size
    add("riff size past end", huge_chunk, "truncated");
    auto data_past = good;
    data_past[40] = 0xFF;  // data chunk size
    add("data past end", data_past, "past the end");
    add("odd frames", make_wav(1, 1, 8000, 16, {1, 0, 2}), "whole number");
    add("12-bit", make_wav(1, 1, 8000, 12, {1, 0, 2, 0}), "not supported");
    add("64-bit float", make_wav(3, 1, 8000, 64, std::vector<uint8_t>(8)), "not supported");
    add("a-law", make_wav(6, 1, 8000, 8, {1, 2}), "not supported");
    add("no channels", make_wav(1, 0, 8000, 16, {}), "channels");
    add("zero rate", make_wav(1, 1, 0, 16, {1, 0}), "sample rate");
    auto align = good;
    align[32] = 3;  // block align
    add("block align", align, "block align");
    std::vector<uint8_t> no_data(good.begin(), good.begin() + 36);
    no_data[4] = 28;
    no_data[5] = no_data[6] = no_data[7] = 0;
    add("no data chunk", no_data, "no 'data'");
    auto short_fmt = good;
    short_fmt[16] = 8;  // fmt size 8: the rest of the fmt reads as a chunk header
    add("short fmt", short_fmt, "");
  }

  void wavRefusesBadFiles() {
    QFETCH(QByteArray, bytes);
    QFETCH(QString, expect);
    auto c = audio_wav_parse(reinterpret_cast<const uint8_t*>(bytes.constData()),
                             static_cast<size_t>(bytes.size()), "bad.wav");
    QVERIFY(!c.has_value());
    QCOMPARE(c.status().code(), StatusCode::kInvalidArgument);
    const QString msg = QString::fromStdString(c.status().message());
    QVERIFY2(msg.startsWith("bad.wav: "), qPrintable(msg));
    QVERIFY2(msg.contains(expect), qPrintable(msg));
  }

  void wavEveryPrefixRefusedAndMutationsNeverCrash() {
    std::vector<uint8_t> p;
    for (int i = 0; i < 64; ++i) put16(p, static_cast<uint32_t>(i * 997));
    const auto good = make_wav(1, 2, 22050, 16, p);
    QVERIFY(parse(good).has_value());
    for (size_t n = 0; n < good.size(); ++n) {
      std::vector<uint8_t> prefix(good.begin(), good.begin() + static_cast<long>(n));
      QVERIFY2(!parse(prefix).has_value(), qPrintable(QString("prefix %1").arg(n)));
    }
    // Random byte changes: each parse must end in a clip or a refusal (run under ASan to see
    // out-of-bounds reads).
    std::mt19937 rng(7);
    for (int trial = 0; trial < 3000; ++trial) {
      auto b = good;
      const int changes = 1 + trial % 4;
      for (int k = 0; k < changes; ++k) b[rng() % 48] = static_cast<uint8_t>(rng());
      auto c = parse(b);
      if (c.has_value())
        for (float s : c->samples) QVERIFY(s >= -1.0f && s <= 1.0f);
    }
  }

  void wavReadMissingFile() {
    auto c = audio_wav_read("/nonexistent/attnscope/clip.wav");
    QVERIFY(!c.has_value());
    QCOMPARE(c.status().code(), StatusCode::kNotFound);
  }

  void resampleLinear() {
    std::vector<float> ramp;
    for (int i = 0; i < 100; ++i) ramp.push_back(i / 100.0f);
    QCOMPARE(audio_resample_linear(ramp, 8000, 8000), ramp);
    auto up = audio_resample_linear(ramp, 8000, 16000);
    QCOMPARE(up.size(), size_t{200});
    // Output i sits at input time i / 2, so a ramp stays a ramp (the last one holds the end).
    for (size_t i = 0; i + 2 < up.size(); ++i) QVERIFY(std::fabs(up[i] - i / 200.0f) < 1e-6f);
    auto down = audio_resample_linear(ramp, 44100, 16000);
    QCOMPARE(down.size(), size_t{36});  // round(100 * 16000 / 44100) = 36
    for (size_t i = 0; i < down.size(); ++i)
      QVERIFY(std::fabs(down[i] - i * 44100.0f / 16000.0f / 100.0f) < 1e-5f);
  }
};

QTEST_APPLESS_MAIN(TestAudio)
#include "test_audio.moc"
