// Backend selection: asking for CUDA on a machine without a device or driver gives the CPU
// and one line saying why, never a crash; asking for the CPU gives the CPU.
#include <QtTest>

#include "attnscope/backend.h"

using namespace attnscope;

class TestBackend : public QObject {
  Q_OBJECT
 private slots:
  void cpu_when_asked() {
    auto c = backend_select(false);
    QCOMPARE(c.kind, BackendKind::kCpu);
    QCOMPARE(QString::fromStdString(c.note), QString("backend: cpu"));
  }
  void cuda_only_with_a_device() {
    std::string why;
    const int devices = backend_cuda_device_count(&why);
    auto c = backend_select(true);
    if (devices == 0) {
      QCOMPARE(c.kind, BackendKind::kCpu);
      QVERIFY2(!why.empty(), "no device must come with a reason");
      QVERIFY(c.note.find(why) != std::string::npos);
      QVERIFY(c.note.find('\n') == std::string::npos);
      qInfo("SKIP: no CUDA device here (%s); checked the CPU fallback", why.c_str());
    } else {
      QCOMPARE(c.kind, BackendKind::kCuda);
    }
  }
};

QTEST_APPLESS_MAIN(TestBackend)
#include "test_backend.moc"
