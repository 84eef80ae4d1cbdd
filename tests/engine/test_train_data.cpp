// Training data loading: text windows and WAV clips of exactly the model's length, the
// deterministic held-out split by source file, skipped corrupt files, refusals, and images
// through the caller's decoder.
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "attnscope/audio.h"
#include "attnscope/train.h"

using namespace attnscope;

namespace {

void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// Bytes of file i: a pattern that differs by file and by position.
std::vector<uint8_t> text_bytes(int i, size_t size) {
  std::vector<uint8_t> b(size);
  for (size_t k = 0; k < size; ++k)
    b[k] = static_cast<uint8_t>((k * 7 + static_cast<size_t>(i) * 31) % 251);
  return b;
}

Modality text_modality(int length) {
  Modality m;
  m.kind = ModalityKind::kText;
  m.length = length;
  return m;
}

Modality audio_modality(int rate, double seconds) {
  Modality m;
  m.kind = ModalityKind::kAudio;
  m.rate = rate;
  m.seconds = seconds;
  return m;
}

Modality image_modality() {
  Modality m;
  m.kind = ModalityKind::kImage;
  m.width = 4;
  m.height = 3;
  m.channels = 3;
  return m;
}

// The file a window name ("a/b.txt@128") came from.
std::string source_of(const std::string& name) {
  return name.substr(0, name.rfind('@'));
}

// A decoder that reads nothing from disk: the bytes are the file name's length and index,
// and a file named "bad*" fails as a real decoder would on a corrupt image.
Expected<std::vector<uint8_t>> fake_decoder(const std::string& path, const Modality& m,
                                            const DataOptions&) {
  const std::string name = std::filesystem::path(path).filename().string();
  if (name.rfind("bad", 0) == 0) return invalid_argument(path + ": not an image");
  std::vector<uint8_t> t(static_cast<size_t>(m.seq_len()));
  for (size_t k = 0; k < t.size(); ++k) t[k] = static_cast<uint8_t>(name.size() + k);
  return t;
}

// n empty image files img000.png ... in dir (the fake decoder does not read them).
void make_images(const QString& dir, int n) {
  for (int i = 0; i < n; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "/img%03d.png", i);
    write_bytes(dir.toStdString() + name, {});
  }
}

}  // namespace

class TestTrainData : public QObject {
  Q_OBJECT

 private slots:
  // Every window is exactly the model's length and equals the file's bytes at its offset;
  // the remainder of each file is dropped; a file shorter than one window is skipped and
  // counted; folders are walked recursively.
  void textWindowsExact() {
    QTemporaryDir dir;
    const std::string root = dir.path().toStdString();
    const int n = 64;
    int64_t expected = 0;
    for (int i = 0; i < 10; ++i) {
      const size_t size = static_cast<size_t>((i + 2) * n + 5 * i);
      write_bytes(root + (i % 2 ? "/sub/f" : "/f") + std::to_string(i) + ".txt",
                  text_bytes(i, size));
      expected += static_cast<int64_t>(size) / n;
    }
    write_bytes(root + "/short.txt", text_bytes(99, n - 1));
    DataOptions opt;
    opt.heldout_share = 0.2;
    auto d = dataset_load(root, text_modality(n), opt);
    QVERIFY2(d.has_value(), d.status().message().c_str());
    QCOMPARE(static_cast<int64_t>(d->train.size() + d->heldout.size()), expected);
    QCOMPARE(d->train.size(), d->train_names.size());
    QCOMPARE(d->heldout.size(), d->heldout_names.size());
    for (int part = 0; part < 2; ++part) {
      const auto& ex = part ? d->heldout : d->train;
      const auto& names = part ? d->heldout_names : d->train_names;
      for (size_t k = 0; k < ex.size(); ++k) {
        QCOMPARE(static_cast<int>(ex[k].size()), n);
        // "sub/f3.txt@128" -> file 3, offset 128.
        const std::string& nm = names[k];
        const size_t at = nm.rfind('@');
        const int file = std::stoi(nm.substr(nm.rfind('f') + 1));
        const size_t off = std::stoul(nm.substr(at + 1));
        QCOMPARE(off % n, size_t{0});
        const auto want = text_bytes(file, off + n);
        QVERIFY(std::equal(ex[k].begin(), ex[k].end(), want.begin() + static_cast<long>(off)));
      }
    }
    QVERIFY2(d->describe.find("1 shorter than one window skipped") != std::string::npos,
             d->describe.c_str());
    QVERIFY2(d->describe.find(std::to_string(expected) + " windows of 64 bytes from 10 files") !=
                 std::string::npos,
             d->describe.c_str());
  }

  // Windows of one file are never split between training and held-out data, and the held-out
  // share is the nearest whole number of windows when files are of equal size.
  void textSplitByFile() {
    QTemporaryDir dir;
    const std::string root = dir.path().toStdString();
    for (int i = 0; i < 20; ++i)
      write_bytes(root + "/t" + std::to_string(i), text_bytes(i, 3 * 32));
    DataOptions opt;
    opt.heldout_share = 0.1;
    auto d = dataset_load(root, text_modality(32), opt);
    QVERIFY2(d.has_value(), d.status().message().c_str());
    QCOMPARE(d->heldout.size(), size_t{6});  // 10% of 60 windows = 2 whole files
    std::set<std::string> train_src, held_src;
    for (const auto& nm : d->train_names) train_src.insert(source_of(nm));
    for (const auto& nm : d->heldout_names) held_src.insert(source_of(nm));
    QCOMPARE(held_src.size(), size_t{2});
    QCOMPARE(train_src.size(), size_t{18});
    for (const auto& s : held_src) QVERIFY(!train_src.count(s));
  }

  // One text file: the held-out windows are its last ones, after every training window.
  void textOneFileHoldsOutTail() {
    QTemporaryDir dir;
    const std::string file = dir.path().toStdString() + "/book.txt";
    write_bytes(file, text_bytes(1, 100 * 16 + 7));
    DataOptions opt;
    opt.heldout_share = 0.05;
    auto d = dataset_load(file, text_modality(16), opt);
    QVERIFY2(d.has_value(), d.status().message().c_str());
    QCOMPARE(d->train.size(), size_t{95});
    QCOMPARE(d->heldout.size(), size_t{5});
    QCOMPARE(d->heldout_names.front(), std::string("book.txt@1520"));
    QCOMPARE(d->train_names.back(), std::string("book.txt@1504"));
  }

  // WAV files are resampled to the model's rate, mu-law coded and cut into clips of exactly
  // seq_len samples; a file shorter than one clip is skipped and counted.
  void audioClips() {
    QTemporaryDir dir;
    const std::string root = dir.path().toStdString();
    const Modality m = audio_modality(8000, 0.25);  // 2000 samples per clip
    // At the model's rate: 8800 samples = 4 clips (800 dropped); values -1, 0, 1 and a sine.
    AudioClip a;
    a.rate = 8000;
    a.samples.resize(8800);
    for (size_t k = 0; k < a.samples.size(); ++k)
      a.samples[k] = k < 3 ? static_cast<float>(k) - 1.0f
                           : static_cast<float>(0.8 * std::sin(0.01 * static_cast<double>(k)));
    QVERIFY(audio_wav_write(root + "/a.wav", a).is_ok());
    // At 16 kHz for 1 s: resampled to 8000 samples = 4 clips.
    AudioClip b;
    b.rate = 16000;
    b.samples.assign(16000, 0.25f);
    QVERIFY(audio_wav_write(root + "/b.wav", b).is_ok());
    // 0.2 s: shorter than one clip.
    AudioClip c;
    c.rate = 8000;
    c.samples.assign(1600, 0.1f);
    QVERIFY(audio_wav_write(root + "/c.wav", c).is_ok());
    write_bytes(root + "/notes.txt", {1, 2, 3});  // not a .wav: ignored

    DataOptions opt;
    opt.heldout_share = 0;
    auto d = dataset_load(root, m, opt);
    QVERIFY2(d.has_value(), d.status().message().c_str());
    QCOMPARE(d->train.size(), size_t{8});
    QVERIFY(d->heldout.empty());
    for (const auto& ex : d->train) QCOMPARE(ex.size(), size_t{2000});
    QCOMPARE(d->train_names[0], std::string("a.wav@0"));
    QCOMPARE(d->train_names[3], std::string("a.wav@6000"));
    QCOMPARE(d->train_names[4], std::string("b.wav@0"));
    // Mu-law codes: -1 -> 0, 0 -> 128, 1 -> 255; the sine within one code of its exact coding
    // (the WAV holds 16-bit samples, an error of 2^-15 that can cross a code boundary).
    QCOMPARE(int(d->train[0][0]), 0);
    QCOMPARE(int(d->train[0][1]), 128);
    QCOMPARE(int(d->train[0][2]), 255);
    for (size_t k = 3; k < 2000; ++k)
      QVERIFY(std::abs(int(d->train[1][k]) - int(audio_mulaw_encode(a.samples[2000 + k]))) <= 1);
    const int quarter = audio_mulaw_encode(0.25f);
    for (size_t k = 0; k < 2000; k += 97) QVERIFY(std::abs(int(d->train[5][k]) - quarter) <= 1);
    QVERIFY2(d->describe.find("8 clips of 2000 samples (0.25 s at 8000 Hz) from 2 files") !=
                 std::string::npos,
             d->describe.c_str());
    QVERIFY2(d->describe.find("1 shorter than one clip skipped") != std::string::npos,
             d->describe.c_str());
    QVERIFY2(d->describe.find("resampled (linear) from 16000 Hz") != std::string::npos,
             d->describe.c_str());
  }

  // A corrupt WAV among good ones is skipped and counted; its clips are simply absent.
  void corruptWavSkipped() {
    QTemporaryDir dir;
    const std::string root = dir.path().toStdString();
    AudioClip a;
    a.rate = 8000;
    a.samples.assign(4000, 0.5f);
    for (int i = 0; i < 3; ++i)
      QVERIFY(audio_wav_write(root + "/g" + std::to_string(i) + ".wav", a).is_ok());
    write_bytes(root + "/bad.wav", {'R', 'I', 'F', 'F', 9, 9, 9});
    DataOptions opt;
    auto d = dataset_load(root, audio_modality(8000, 0.5), opt);
    QVERIFY2(d.has_value(), d.status().message().c_str());
    QCOMPARE(d->train.size() + d->heldout.size(), size_t{3});
    QCOMPARE(d->heldout.size(), size_t{1});  // 5% of 3 rounds to 0; at least 1 is held out
    QVERIFY2(d->describe.find("1 unreadable skipped") != std::string::npos, d->describe.c_str());
  }

  // Nothing usable: the error names the path and why; a missing path is kNotFound.
  void nothingUsable() {
    QTemporaryDir dir;
    const std::string root = dir.path().toStdString();
    write_bytes(root + "/bad.wav", {'n', 'o', 'p', 'e'});
    auto d = dataset_load(root, audio_modality(8000, 0.5), DataOptions{});
    QVERIFY(!d.has_value());
    QCOMPARE(d.status().code(), StatusCode::kInvalidArgument);
    const std::string msg = d.status().message();
    QVERIFY2(msg.find(root + ": nothing usable") == 0, msg.c_str());
    QVERIFY2(msg.find("1 file unreadable") != std::string::npos, msg.c_str());
    QVERIFY2(msg.find("bad.wav") != std::string::npos, msg.c_str());

    QTemporaryDir empty;
    auto e = dataset_load(empty.path().toStdString(), audio_modality(8000, 0.5), DataOptions{});
    QVERIFY(!e.has_value());
    QVERIFY2(e.status().message().find("no .wav files found") != std::string::npos,
             e.status().message().c_str());

    auto t = dataset_load(root + "/bad.wav", text_modality(64), DataOptions{});
    QVERIFY(!t.has_value());
    QVERIFY2(t.status().message().find("shorter than one window") != std::string::npos,
             t.status().message().c_str());

    auto missing = dataset_load(root + "/nope", text_modality(8), DataOptions{});
    QCOMPARE(missing.status().code(), StatusCode::kNotFound);
    QVERIFY(missing.status().message().find(root + "/nope") != std::string::npos);
  }

  // Images without a decoder are refused with a message that says so.
  void imagesNeedDecoder() {
    QTemporaryDir dir;
    make_images(dir.path(), 3);
    auto d = dataset_load(dir.path().toStdString(), image_modality(), DataOptions{});
    QVERIFY(!d.has_value());
    QCOMPARE(d.status().code(), StatusCode::kUnsupported);
    QVERIFY2(d.status().message().find("image decoder") != std::string::npos,
             d.status().message().c_str());
  }

  // With a decoder: one example of W*H*C bytes per .png/.jpg/.jpeg (any case), other files
  // ignored, a failing decode skipped and counted.
  void imagesWithDecoder() {
    QTemporaryDir dir;
    const std::string root = dir.path().toStdString();
    make_images(dir.path(), 5);
    write_bytes(root + "/deep/x.JPG", {});
    write_bytes(root + "/y.jpeg", {});
    write_bytes(root + "/readme.txt", {});
    write_bytes(root + "/bad.png", {});
    DataOptions opt;
    opt.image_decoder = fake_decoder;
    auto d = dataset_load(root, image_modality(), opt);
    QVERIFY2(d.has_value(), d.status().message().c_str());
    QCOMPARE(d->train.size() + d->heldout.size(), size_t{7});
    QCOMPARE(d->heldout.size(), size_t{1});  // llround(0.05 * 7) = 0, at least 1
    for (const auto& ex : d->train) QCOMPARE(ex.size(), size_t{4 * 3 * 3});
    std::set<std::string> all(d->train_names.begin(), d->train_names.end());
    all.insert(d->heldout_names.begin(), d->heldout_names.end());
    QVERIFY(all.count("deep/x.JPG"));
    QVERIFY(all.count("y.jpeg"));
    QVERIFY(!all.count("readme.txt"));
    QVERIFY2(d->describe.find("7 images from " + root + "; 1 held out; 1 unreadable skipped") == 0,
             d->describe.c_str());
  }

  // The split is a function of names and seed: the same twice, another for another seed,
  // disjoint, covering everything, and exactly the share of examples.
  void heldoutDeterministic() {
    QTemporaryDir dir;
    make_images(dir.path(), 200);
    DataOptions opt;
    opt.image_decoder = fake_decoder;
    opt.heldout_share = 0.1;
    auto a = dataset_load(dir.path().toStdString(), image_modality(), opt);
    auto b = dataset_load(dir.path().toStdString(), image_modality(), opt);
    opt.split_seed = 7;
    auto c = dataset_load(dir.path().toStdString(), image_modality(), opt);
    QVERIFY(a.has_value() && b.has_value() && c.has_value());
    QCOMPARE(a->heldout.size(), size_t{20});
    QCOMPARE(a->train.size(), size_t{180});
    QCOMPARE(a->heldout_names, b->heldout_names);
    QVERIFY(a->heldout_names != c->heldout_names);
    QCOMPARE(c->heldout.size(), size_t{20});
    std::set<std::string> train(a->train_names.begin(), a->train_names.end());
    std::set<std::string> held(a->heldout_names.begin(), a->heldout_names.end());
    QCOMPARE(train.size() + held.size(), size_t{200});
    for (const auto& h : held) QVERIFY(!train.count(h));
    // Two examples: one is held out; one example: none.
    QTemporaryDir two, one;
    make_images(two.path(), 2);
    make_images(one.path(), 1);
    opt.heldout_share = 0.05;
    auto t = dataset_load(two.path().toStdString(), image_modality(), opt);
    auto o = dataset_load(one.path().toStdString(), image_modality(), opt);
    QVERIFY(t.has_value() && o.has_value());
    QCOMPARE(t->heldout.size(), size_t{1});
    QCOMPARE(t->train.size(), size_t{1});
    QCOMPARE(o->heldout.size(), size_t{0});
    QCOMPARE(o->train.size(), size_t{1});
  }
};

QTEST_APPLESS_MAIN(TestTrainData)
#include "test_train_data.moc"
