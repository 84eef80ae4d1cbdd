// The window under a long session, under Xvfb: 1,000 Generate / Stop / Generate-again cycles
// through the Sampling panel's buttons and 200 model and prompt switches, each Stop honoured
// (the run ends as stopped, short of its length, and the buttons come back), no crash, and
// resident memory after the cycles within a stated bound of what it was after a warm-up.
// Prints its figures (tests/RELIABILITY.md records a run).
#include <QApplication>
#include <QElapsedTimer>
#include <QFile>
#include <QImage>
#include <QPushButton>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QtTest>
#include <cstdio>

#include "attnscope/tensor.h"
#include "model_files.h"
#include "render/canvas.h"
#include "session/session.h"
#include "ui/main_window.h"
#include "ui/prompt_panel.h"
#include "ui/sampling_panel.h"

using attnscope::Family;
using session::RunState;

namespace {

// Resident set size of this process in MiB (Linux /proc), or -1 where it cannot be read.
double rss_mib() {
  QFile f(QStringLiteral("/proc/self/status"));
  if (!f.open(QIODevice::ReadOnly)) return -1;
  for (const QByteArray& line : f.readAll().split('\n'))
    if (line.startsWith("VmRSS:"))
      return line.mid(6).trimmed().split(' ').first().toDouble() / 1024;
  return -1;
}

// The bound on growth of resident memory across the 1,000 cycles and 200 switches, after a
// warm-up that has touched every code path once (first allocations of Mesa, Qt, the engine).
// A run kept alive per cycle (its 3,072 x 256 probabilities alone are 3 MiB) would exceed it
// in a few cycles, and so would anything over 13 KiB per cycle.
constexpr double kGrowthBoundMiB = 12;

// Waits for pred with the event loop running, checking every millisecond (QTRY_* polls every
// 50 ms, which would make 1,000 cycles minutes long and let short runs finish before Stop).
template <class Pred>
bool wait_for(Pred pred, int timeout_ms) {
  QElapsedTimer clock;
  clock.start();
  while (!pred()) {
    if (clock.elapsed() > timeout_ms) return false;
    QCoreApplication::processEvents(QEventLoop::AllEvents, 1);
  }
  return true;
}

}  // namespace

class TestGuiSoak : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() {
    QVERIFY(dir_.isValid());
    // Three families, one modality, so that prompts apply to every model: small ones for the
    // cycles, and the bundled models' size (4 blocks of width 128) for the switches, whose runs
    // must still be under way when Stop comes after a model load on a busy machine.
    for (auto [family, name] :
         {std::pair{Family::kDense, "dense"}, std::pair{Family::kSparse, "sparse"},
          std::pair{Family::kReformer, "reformer"}}) {
      const QString small = write_test_model(dir_, QStringLiteral("%1-small.safetensors").arg(name),
                                             family, "image:32x32x3", 2, 32, 5);
      const QString big = write_test_model(dir_, QStringLiteral("%1.safetensors").arg(name), family,
                                           "image:32x32x3", 4, 128, 5);
      QVERIFY(!small.isEmpty() && !big.isEmpty());
      models_ << big;
      if (small_.isEmpty()) small_ = small;
    }
    for (int k = 0; k < 2; ++k) {
      QImage img(32, 32, QImage::Format_RGB888);
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x)
          img.setPixelColor(x, y, k ? QColor(8 * x, 255 - 8 * y, 90) : QColor(200, 8 * y, 8 * x));
      prompts_ << dir_.filePath(QStringLiteral("prompt%1.png").arg(k));
      QVERIFY(img.save(prompts_.back()));
    }
    window_ = std::make_unique<ui::MainWindow>();
    window_->resize(1280, 720);
    window_->show();
    QVERIFY(QTest::qWaitForWindowExposed(window_.get()));
    QVERIFY(open_model(small_));
    QVERIFY(window_->open_prompt(prompts_[0]));
    window_->prompt_panel()->set_keep_rows(8);
  }

  void cleanupTestCase() { window_.reset(); }

  // One cycle: Generate by its button, Stop by its button once `after` positions are drawn
  // (0: at once, before the first token), and check what the user sees.
  void generate_stop_cycles() {
    auto* generate = window_->sampling_panel()->generate_button();
    auto* stop = window_->sampling_panel()->stop_button();
    const int cycles = 1000, warmup = 50;
    double rss_warm = 0;
    QElapsedTimer clock;
    clock.start();
    int64_t stopped_at_sum = 0;
    for (int i = 0; i < cycles; ++i) {
      if (i == warmup) rss_warm = rss_mib();
      QVERIFY(wait_for([&] { return generate->isEnabled(); }, 10000));
      QSignalSpy ended(window_->session(), &session::Session::run_ended);
      QTest::mouseClick(generate, Qt::LeftButton);
      const int64_t prompt = window_->session()->snapshot()->run->prompt_length();
      const int64_t after = (i % 4 == 0) ? 0 : prompt + 1 + (i * 37) % 200;
      QVERIFY(wait_for([&] { return stop->isEnabled(); }, 10000));
      if (after > 0)
        QVERIFY(wait_for(
            [&] { return window_->session()->snapshot()->filled >= after || !ended.isEmpty(); },
            10000));
      QTest::mouseClick(stop, Qt::LeftButton);
      QVERIFY(wait_for([&] { return !ended.isEmpty(); }, 5000));
      QCOMPARE(ended.count(), 1);
      QVERIFY2(ended.at(0).at(0).value<RunState>() == RunState::kStopped,
               qPrintable(QStringLiteral("cycle %1 did not end as stopped").arg(i)));
      const auto s = window_->session()->snapshot();
      QVERIFY(s->filled < s->run->length());
      stopped_at_sum += s->filled;
      QVERIFY(wait_for([&] { return !stop->isEnabled(); }, 5000));
    }
    const double rss_end = rss_mib();
    std::printf(
        "soak: %d Generate/Stop cycles in %.1f s (mean stop at position %.0f of %lld); "
        "resident memory %.1f MiB after %d cycles, %.1f MiB after %d (growth %.1f MiB, "
        "bound %.0f)\n",
        cycles, clock.elapsed() / 1000.0, double(stopped_at_sum) / cycles,
        static_cast<long long>(window_->session()->snapshot()->run->length()), rss_warm, warmup,
        rss_end, cycles, rss_end - rss_warm, kGrowthBoundMiB);
    std::fflush(stdout);
    QVERIFY2(rss_end - rss_warm < kGrowthBoundMiB,
             qPrintable(QStringLiteral("resident memory grew %1 MiB").arg(rss_end - rss_warm)));
  }

  // 200 switches: the model (three families in turn) or the prompt (two images), every tenth
  // followed by a short run that is stopped; each switch shows the new model or prompt.
  void model_and_prompt_switches() {
    const int switches = 200, warmup = 20;
    double rss_warm = 0;
    QElapsedTimer clock;
    clock.start();
    for (int i = 0; i < switches; ++i) {
      if (i == warmup) rss_warm = rss_mib();
      QVERIFY(wait_for([&] { return window_->sampling_panel()->generate_button()->isEnabled(); },
                       10000));
      if (i % 2 == 0) {
        const QString& m = models_[(i / 2) % models_.size()];
        QVERIFY(open_model(m));
        QCOMPARE(QString::fromStdString(window_->session()->snapshot()->model->path), m);
      } else {
        const QString& p = prompts_[(i / 2) % prompts_.size()];
        QVERIFY(window_->open_prompt(p));
        QCOMPARE(window_->prompt_panel()->path(), p);
      }
      if (i % 10 == 9) {
        QVERIFY(wait_for([&] { return window_->sampling_panel()->generate_button()->isEnabled(); },
                         10000));
        QSignalSpy ended(window_->session(), &session::Session::run_ended);
        QTest::mouseClick(window_->sampling_panel()->generate_button(), Qt::LeftButton);
        QVERIFY(
            wait_for([&] { return window_->sampling_panel()->stop_button()->isEnabled(); }, 10000));
        QTest::mouseClick(window_->sampling_panel()->stop_button(), Qt::LeftButton);
        QVERIFY(wait_for([&] { return !ended.isEmpty(); }, 5000));
        const auto s = window_->session()->snapshot();
        QVERIFY2(ended.at(0).at(0).value<RunState>() == RunState::kStopped,
                 qPrintable(QStringLiteral("switch %1: the run ended as %2 at %3 / %4")
                                .arg(i)
                                .arg(session::run_state_name(ended.at(0).at(0).value<RunState>()))
                                .arg(s->filled)
                                .arg(s->run->length())));
      }
    }
    const double rss_end = rss_mib();
    std::printf(
        "soak: %d model/prompt switches in %.1f s; resident memory %.1f MiB after %d, "
        "%.1f MiB after %d (growth %.1f MiB, bound %.0f)\n",
        switches, clock.elapsed() / 1000.0, rss_warm, warmup, rss_end, switches, rss_end - rss_warm,
        kGrowthBoundMiB);
    std::fflush(stdout);
    QVERIFY2(rss_end - rss_warm < kGrowthBoundMiB,
             qPrintable(QStringLiteral("resident memory grew %1 MiB").arg(rss_end - rss_warm)));
  }

 private:
  bool open_model(const QString& path) {
    QSignalSpy loaded(window_->session(), &session::Session::model_loaded);
    window_->open_model(path);
    return loaded.wait(10000);
  }

  QTemporaryDir dir_;
  std::unique_ptr<ui::MainWindow> window_;
  QStringList models_, prompts_;
  QString small_;
};

int main(int argc, char** argv) {
  if (qEnvironmentVariableIsSet("ATTNSCOPE_NO_XVFB") || qEnvironmentVariableIsEmpty("DISPLAY")) {
    std::printf("SKIP: test_gui_soak needs an X display (install xvfb for xvfb-run)\n");
    return 77;
  }
  QTemporaryDir config;
  qputenv("XDG_CONFIG_HOME", config.path().toLocal8Bit());
  attnscope::mem_retain_freed_blocks();  // as the app does at start-up
  render::canvas_set_default_surface_format();
  QApplication app(argc, argv);
  QApplication::setOrganizationName(QStringLiteral("attnscope-test"));
  QApplication::setApplicationName(QStringLiteral("test_gui_soak"));
  TestGuiSoak tc;
  return QTest::qExec(&tc, argc, argv);
}

#include "test_gui_soak.moc"
