// Inputs that declare far more than they hold, or models that would need more memory than the
// process may take: each is refused before anything that size is allocated, with a message
// naming the limit, in bounded time, and no run's peak resident memory exceeds kMaxRssMiB.
// Every child runs under a 4 GiB address-space limit, so a regression fails here instead of
// taking the machine's memory.
#include <sys/resource.h>

#include <QElapsedTimer>
#include <QFile>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>
#include <array>

#include "attnscope/config.h"
#include "attnscope/model.h"
#include "attnscope/safetensors.h"

// AddressSanitizer reserves terabytes of address space for its shadow memory, so an ASan
// build cannot run under an address-space limit; there the resident-memory bound (and the
// refusal before allocating) is what the test checks, with room for ASan's own overhead.
#if defined(__SANITIZE_ADDRESS__)
#define ATTNSCOPE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ATTNSCOPE_ASAN 1
#endif
#endif

namespace {

// The largest child's peak resident set. A bare `attnscope-cli --help` already peaks at about
// 230 MiB in the development machine's CUDA build, before reading any input.
#ifdef ATTNSCOPE_ASAN
constexpr long kMaxRssMiB = 1024;
#else
constexpr long kMaxRssMiB = 512;
#endif
constexpr int kMaxSeconds = 30;  // each refusal, on a shared 2-core machine
constexpr rlim_t kChildAddressSpace = rlim_t{4} << 30;

struct Run {
  int code = -1;
  QByteArray err;
  qint64 ms = 0;
};

Run cli_limited(const QStringList& args) {
  QProcess p;
#ifndef ATTNSCOPE_ASAN
  p.setChildProcessModifier([] {
    const rlimit r{kChildAddressSpace, kChildAddressSpace};
    ::setrlimit(RLIMIT_AS, &r);
  });
#endif
  QElapsedTimer t;
  t.start();
  p.start(QStringLiteral(ATTNSCOPE_CLI), args);
  Run r;
  if (!p.waitForFinished(kMaxSeconds * 1000)) {
    p.kill();
    p.waitForFinished();
    r.err = "timed out";
    return r;
  }
  r.ms = t.elapsed();
  r.code = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
  r.err = p.readAllStandardError();
  return r;
}

long children_peak_rss_mib() {
  rusage u{};
  ::getrusage(RUSAGE_CHILDREN, &u);
  return u.ru_maxrss / 1024;  // Linux reports KiB
}

void put_u32be(QByteArray& b, quint32 v) {
  for (int s = 24; s >= 0; s -= 8) b.append(static_cast<char>((v >> s) & 0xff));
}
void put_u32le(QByteArray& b, quint32 v) {
  for (int s = 0; s <= 24; s += 8) b.append(static_cast<char>((v >> s) & 0xff));
}
void put_u16le(QByteArray& b, quint16 v) {
  b.append(static_cast<char>(v & 0xff));
  b.append(static_cast<char>(v >> 8));
}

quint32 crc32(const QByteArray& b) {  // PNG's CRC (ISO 3309), bit by bit: a few hundred bytes
  quint32 c = 0xffffffffu;
  for (char ch : b) {
    c ^= static_cast<quint8>(ch);
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
  }
  return c ^ 0xffffffffu;
}

void png_chunk(QByteArray& out, const char* type, const QByteArray& data) {
  put_u32be(out, static_cast<quint32>(data.size()));
  const QByteArray body = QByteArray(type, 4) + data;
  out += body;
  put_u32be(out, crc32(body));
}

// A valid PNG signature and header declaring side x side RGB pixels, with one tiny IDAT.
QByteArray png_declaring(quint32 side) {
  QByteArray png("\x89PNG\r\n\x1a\n", 8), ihdr;
  put_u32be(ihdr, side);
  put_u32be(ihdr, side);
  ihdr += QByteArray("\x08\x02\x00\x00\x00", 5);  // 8-bit RGB, deflate, no filter, no interlace
  png_chunk(png, "IHDR", ihdr);
  png_chunk(png, "IDAT", QByteArray("\x78\x9c\x63\x00\x00\x00\x01\x00\x01", 9));
  png_chunk(png, "IEND", {});
  return png;
}

// A BMP whose header declares side x side 24-bit pixels and holds none.
QByteArray bmp_declaring(qint32 side) {
  QByteArray b("BM", 2);
  put_u32le(b, 54u + static_cast<quint32>(side) * static_cast<quint32>(side) * 3u);  // declared
  put_u32le(b, 0);
  put_u32le(b, 54);  // pixel data offset
  put_u32le(b, 40);  // BITMAPINFOHEADER
  put_u32le(b, static_cast<quint32>(side));
  put_u32le(b, static_cast<quint32>(side));
  put_u16le(b, 1);
  put_u16le(b, 24);
  put_u32le(b, 0);
  put_u32le(b, static_cast<quint32>(side) * static_cast<quint32>(side) * 3u);
  for (int i = 0; i < 4; ++i) put_u32le(b, 0);
  return b;
}

// A WAV whose RIFF and data chunk declare about 4 GB; the file is 52 bytes.
QByteArray wav_declaring_gigabytes() {
  QByteArray w("RIFF", 4);
  put_u32le(w, 0xfffffff0u);
  w += "WAVEfmt ";
  put_u32le(w, 16);
  put_u16le(w, 1);  // PCM
  put_u16le(w, 1);  // mono
  put_u32le(w, 8000);
  put_u32le(w, 16000);
  put_u16le(w, 2);
  put_u16le(w, 16);
  w += "data";
  put_u32le(w, 0xffffff00u);
  w += QByteArray(8, '\0');
  return w;
}

}  // namespace

class TestBombs : public QObject {
  Q_OBJECT

  QTemporaryDir dir_;
  QString path(const QString& name) const { return dir_.filePath(name); }
  void write(const QString& name, const QByteArray& bytes) {
    QFile f(path(name));
    QVERIFY(f.open(QIODevice::WriteOnly));
    QCOMPARE(f.write(bytes), bytes.size());
  }
  static QString asset(const char* rel) {
    return QStringLiteral(ATTNSCOPE_TEST_DATA) + "/../../assets/" + rel;
  }

 private slots:
  void initTestCase() {
    QVERIFY(dir_.isValid());
    write("bomb.png", png_declaring(30000));
    write("bomb.bmp", bmp_declaring(30000));
    write("bomb.wav", wav_declaring_gigabytes());
    // A 16 MB model whose decode caches at its full 2,097,152 positions would take 16 GiB and
    // one forward about 22 GiB: over the children's 4 GiB limit on any machine.
    // Written here, not by a child, so that the children's peak below is the refusals' alone.
    auto cfg = attnscope::config_from_json(
        R"({"family":"dense","modality":"text:2097152","layers":4,"dim":256,"heads":4})");
    QVERIFY2(cfg.has_value(), cfg.status().message().c_str());
    QVERIFY(attnscope::config_resolve(*cfg).is_ok());
    const attnscope::Status st = attnscope::safetensors_save(
        path("huge-context.safetensors").toStdString(), *cfg,
        attnscope::model_init_weights(*cfg, {.seed = 1, .zero_logits = true}));
    QVERIFY2(st.is_ok(), st.message().c_str());
  }

  void refusedBeforeAllocating_data() {
    QTest::addColumn<QStringList>("args");
    QTest::addColumn<QString>("message");
    const QString icons = asset("models/icons.safetensors");
    const QString ocarina = asset("models/ocarina-sparse.safetensors");
    QTest::newRow("PNG 30000x30000 prompt")
        << QStringList{"generate", "--model", icons,   "--prompt",     path("bomb.png"),
                       "--seed",   "1",       "--out", path("out.png")}
        << "declares 30000x30000 pixels; at most";
    // Qt's BMP reader itself will not read a header whose pixels the file lacks, so no size
    // reaches our check; the refusal still comes before any pixel buffer exists.
    QTest::newRow("BMP 30000x30000 prompt")
        << QStringList{"generate", "--model", icons,   "--prompt",     path("bomb.bmp"),
                       "--seed",   "1",       "--out", path("out.png")}
        << "bomb.bmp: cannot read as an image";
    QTest::newRow("PNG 30000x30000 eval")
        << QStringList{"eval", "--model", icons, "--input", path("bomb.png")}
        << "declares 30000x30000 pixels; at most";
    QTest::newRow("WAV declaring 4 GB prompt")
        << QStringList{"generate", "--model", ocarina, "--prompt",     path("bomb.wav"),
                       "--seed",   "1",       "--out", path("out.wav")}
        << "WAV is truncated (the header says 4294967288 bytes, the file has 52)";
    QTest::newRow("WAV declaring 4 GB eval")
        << QStringList{"eval", "--model", ocarina, "--input", path("bomb.wav")}
        << "WAV is truncated";
    QTest::newRow("decode caches over the memory limit")
        << QStringList{"generate", "--model",      path("huge-context.safetensors"), "--seed", "1",
                       "--out",    path("out.txt")}
        << "would need about 16.0 GiB (weights 0.0 GiB, decode caches 16.0 GiB), over the limit";
    QTest::newRow("forward over the memory limit")
        << QStringList{"eval", "--model", path("huge-context.safetensors"), "--input",
                       asset("../README.md")}
        << "evaluating this model would need about";
  }

  void refusedBeforeAllocating() {
    QFETCH(QStringList, args);
    QFETCH(QString, message);
#ifdef ATTNSCOPE_ASAN
    // These models fit this machine's physical memory; only the 4 GiB address-space limit,
    // which ASan cannot run under, makes them too large. The release build runs them.
    if (QString(QTest::currentDataTag()).contains(QLatin1String("memory limit")))
      QSKIP("needs an address-space limit, which an ASan build cannot run under");
#endif
    const Run r = cli_limited(args);
    QVERIFY2(r.code == 2, qPrintable(QString("exit %1: %2").arg(r.code).arg(r.err)));
    QVERIFY2(QString::fromUtf8(r.err).contains(message), r.err.constData());
    QVERIFY(!QFile::exists(path("out.png")) && !QFile::exists(path("out.wav")) &&
            !QFile::exists(path("out.txt")));
    QVERIFY2(r.ms < kMaxSeconds * 1000, qPrintable(QString("%1 ms").arg(r.ms)));
    const long rss = children_peak_rss_mib();
    qInfo("%s: refused in %lld ms; largest child so far: %ld MiB resident", QTest::currentDataTag(),
          static_cast<long long>(r.ms), rss);
    QVERIFY2(rss < kMaxRssMiB, qPrintable(QString("peak RSS %1 MiB").arg(rss)));
  }
};

QTEST_GUILESS_MAIN(TestBombs)
#include "test_bombs.moc"
