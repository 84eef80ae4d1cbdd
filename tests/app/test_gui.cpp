// The attnscope window driven as a user under Xvfb (xcb): open a model and a prompt image,
// generate, read the canvas back and compare pixels, hover for the inspector's distribution,
// Stop within 200 ms, error dialogs for corrupt files, Ctrl+S export, the colormap table
// shared by C++ and the shader; an audio model with a WAV prompt (audio view, WAV export), a
// text model with a typed prompt, four image samples in a grid, and a mask painted on the
// prompt preview that regenerates only the painted pixels.
#include <QAction>
#include <QApplication>
#include <QCheckBox>
#include <QComboBox>
#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QFileDialog>
#include <QGroupBox>
#include <QLabel>
#include <QMessageBox>
#include <QMimeData>
#include <QMouseEvent>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QRegularExpression>
#include <QSettings>
#include <QSignalSpy>
#include <QSpinBox>
#include <QStatusBar>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QTimer>
#include <QtTest>
#include <cstdio>

#include "attnscope/audio.h"
#include "attnscope/generate.h"
#include "attnscope/inspect.h"
#include "attnscope/safetensors.h"
#include "model_files.h"
#include "render/canvas.h"
#include "render/colormap.h"
#include "render/field_view.h"
#include "render/guides.h"
#include "render/palette.h"
#include "ui/attention_track.h"
#include "ui/attention_view.h"
#include "ui/audio_view.h"
#include "ui/compare_view.h"
#include "ui/export.h"
#include "ui/lsh_view.h"
#include "ui/main_window.h"
#include "ui/memory_view.h"
#include "ui/pattern_view.h"
#include "ui/prompt_panel.h"
#include "ui/sampling_panel.h"
#include "ui/step_view.h"
#include "ui/text_view.h"

using namespace attnscope;
using session::RunState;

namespace {

QString make_model(const QTemporaryDir& dir, const QString& name, const std::string& modality,
                   int layers, int dim) {
  return write_test_model(dir, name, Family::kDense, modality, layers, dim, 5);
}

// A model of any family, 2 layers of width 32.
QString make_family_model(const QTemporaryDir& dir, const QString& name, Family family,
                          const std::string& modality) {
  return write_test_model(dir, name, family, modality, 2, 32, 5);
}

// Closes the next QMessageBox that appears and keeps its text.
class MessageBoxCloser : public QObject {
 public:
  MessageBoxCloser() {
    timer_.setInterval(20);
    connect(&timer_, &QTimer::timeout, this, [this] {
      if (auto* box = qobject_cast<QMessageBox*>(QApplication::activeModalWidget())) {
        text = box->text();
        box->close();
        timer_.stop();
      }
    });
    timer_.start();
  }
  QString text;

 private:
  QTimer timer_;
};

QColor canvas_color(const QImage& frame, const render::Canvas* canvas, int x, int y) {
  const QPointF c = canvas->pixel_rect(x, y).center();
  return frame.pixelColor(static_cast<int>(c.x()), static_cast<int>(c.y()));
}

}  // namespace

class TestGui : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() {
    QVERIFY(dir_.isValid());
    window_ = std::make_unique<ui::MainWindow>();
    window_->resize(1400, 900);
    window_->show();
    QVERIFY(QTest::qWaitForWindowExposed(window_.get()));
    tiny_ = make_model(dir_, QStringLiteral("tiny.safetensors"), "image:8x8x3", 2, 32);
    QVERIFY(!tiny_.isEmpty());
    // The prompt: pixel (x, y) = (32x, 32y, 200), an 8x8 PNG.
    QImage prompt(8, 8, QImage::Format_RGB888);
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x) prompt.setPixelColor(x, y, QColor(32 * x, 32 * y, 200));
    prompt_ = dir_.filePath(QStringLiteral("prompt.png"));
    QVERIFY(prompt.save(prompt_));
  }

  void cleanupTestCase() { window_.reset(); }

  void starts_empty_with_a_hint() {
    QVERIFY(!window_->session()->snapshot()->model);
    QVERIFY(!window_->sampling_panel()->generate_button()->isEnabled());
    QVERIFY(window_->canvas()->upload_path().startsWith(QStringLiteral("host")));
  }

  void generate_and_read_the_canvas_back() {
    QSignalSpy loaded(window_->session(), &session::Session::model_loaded);
    window_->open_model(tiny_);
    QVERIFY(loaded.wait(10000));
    QVERIFY(window_->open_prompt(prompt_));
    window_->prompt_panel()->set_keep_rows(4);
    QTRY_VERIFY(window_->session()->snapshot()->run &&
                window_->session()->snapshot()->run->prompt_length() == 4 * 8 * 3);
    QTRY_VERIFY(window_->sampling_panel()->generate_button()->isEnabled());

    QSignalSpy ended(window_->session(), &session::Session::run_ended);
    QTest::mouseClick(window_->sampling_panel()->generate_button(), Qt::LeftButton);
    QVERIFY(ended.wait(30000));
    QCOMPARE(ended.at(0).at(0).value<RunState>(), RunState::kFinished);
    QTRY_COMPARE(window_->sampling_panel()->progress()->value(), 1000);

    // Plain pixels: no prompt tint, no overlay over the image.
    window_->findChild<QAction*>(QStringLiteral("action-mark-prompt"))->setChecked(false);
    window_->findChild<QAction*>(QStringLiteral("action-overlay"))->setChecked(false);
    render::Canvas* canvas = window_->canvas();
    QVERIFY(canvas->zoom() >= 8);  // an 8x8 image is shown big, whole-number zoom
    const QImage frame = canvas->grabFramebuffer();
    QCOMPARE(frame.size(), canvas->size() * canvas->devicePixelRatio());
    const auto s = window_->session()->snapshot();
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x) {
        const QColor got = canvas_color(frame, canvas, x, y);
        const int64_t p = (y * 8 + x) * 3;
        const QColor want =
            y < 4 ? QColor(32 * x, 32 * y, 200)
                  : QColor(s->run->token(p), s->run->token(p + 1), s->run->token(p + 2));
        if (got != want)
          QFAIL(qPrintable(QStringLiteral("pixel (%1, %2) is %3, expected %4")
                               .arg(x)
                               .arg(y)
                               .arg(got.name(), want.name())));
      }
    // The generated rows are not the pending checkerboard (greys 41 and 56) nor the clear colour.
    int background = 0;
    for (int y = 4; y < 8; ++y)
      for (int x = 0; x < 8; ++x) {
        const QColor c = canvas_color(frame, canvas, x, y);
        if ((c.red() == c.green() && c.green() == c.blue() && (c.red() == 41 || c.red() == 56)) ||
            c == QColor(28, 28, 31))
          ++background;
      }
    QCOMPARE(background, 0);
    window_->findChild<QAction*>(QStringLiteral("action-overlay"))->setChecked(true);
    window_->findChild<QAction*>(QStringLiteral("action-mark-prompt"))->setChecked(true);
  }

  void hover_shows_the_distribution() {
    render::Canvas* canvas = window_->canvas();
    const QPointF at = canvas->pixel_rect(5, 5).center();
    QMouseEvent move(QEvent::MouseMove, at, canvas->mapToGlobal(at), Qt::NoButton, Qt::NoButton,
                     Qt::NoModifier);
    QApplication::sendEvent(canvas, &move);
    canvas->grabFramebuffer();  // renders one frame, as the display would
    const overlay::Inspection& in = canvas->inspection();
    QCOMPARE(in.pixel, QPoint(5, 5));
    QCOMPARE(in.channels, 3);
    QVERIFY(!in.prompt);
    const auto s = window_->session()->snapshot();
    for (int c = 0; c < 3; ++c) {
      const int64_t p = (5 * 8 + 5) * 3 + c;
      QVERIFY(in.has_distribution[static_cast<size_t>(c)]);
      QCOMPARE(in.value[static_cast<size_t>(c)], int(s->run->token(p)));
      QCOMPARE(in.entropy_bits[static_cast<size_t>(c)], s->run->entropy_bits(p));
      // Random logits: a spread distribution, neither one certain token nor beyond 8 bits.
      QVERIFY(in.entropy_bits[static_cast<size_t>(c)] > 0.5f);
      QVERIFY(in.entropy_bits[static_cast<size_t>(c)] <= 8.0001f);
    }
  }

  void wheel_zooms_and_drag_pans() {
    render::Canvas* canvas = window_->canvas();
    // The overlay's first frames settle its bands (which a fit keeps clear): fit after them.
    QTest::qWait(100);
    canvas->fit();
    const double zoom = canvas->zoom();
    const QRectF before = canvas->pixel_rect(4, 4);
    const QPointF at = before.center();
    QWheelEvent wheel(at, canvas->mapToGlobal(at), QPoint(), QPoint(0, 240), Qt::NoButton,
                      Qt::NoModifier, Qt::NoScrollPhase, false);
    QApplication::sendEvent(canvas, &wheel);
    // Two notches zoom in by 2, about the point under the mouse.
    QCOMPARE(canvas->zoom(), zoom * 2);
    QCOMPARE(canvas->pixel_at(at), QPoint(4, 4));
    QCOMPARE(canvas->pixel_rect(4, 4).width(), before.width() * 2);
    // A drag moves the image with the mouse.
    const QRectF zoomed = canvas->pixel_rect(4, 4);
    const QPoint from = zoomed.center().toPoint(), to = from + QPoint(-40, 25);
    QTest::mousePress(canvas, Qt::LeftButton, Qt::NoModifier, from);
    QMouseEvent drag(QEvent::MouseMove, QPointF(to), canvas->mapToGlobal(QPointF(to)), Qt::NoButton,
                     Qt::LeftButton, Qt::NoModifier);
    QApplication::sendEvent(canvas, &drag);
    QTest::mouseRelease(canvas, Qt::LeftButton, Qt::NoModifier, to);
    QCOMPARE(canvas->pixel_rect(4, 4), zoomed.translated(-40, 25));
    canvas->fit();
    QCOMPARE(canvas->zoom(), zoom);
    QCOMPARE(canvas->pixel_rect(4, 4), before);
  }

  void export_with_ctrl_s() {
    const QString out_dir = dir_.filePath(QStringLiteral("export"));
    QVERIFY(QDir().mkpath(out_dir));
    const QString target = out_dir + QStringLiteral("/completion.png");
    QString suggested;
    QTimer dialog_driver;
    dialog_driver.setInterval(20);
    connect(&dialog_driver, &QTimer::timeout, this, [&] {
      if (auto* d = qobject_cast<QFileDialog*>(QApplication::activeModalWidget())) {
        dialog_driver.stop();
        suggested = d->selectedFiles().value(0);
        d->selectFile(target);
        QMetaObject::invokeMethod(d, "accept", Qt::QueuedConnection);
      }
    });
    dialog_driver.start();
    window_->activateWindow();
    QVERIFY(QTest::qWaitForWindowActive(window_.get()));
    QTest::keyClick(window_.get(), Qt::Key_S, Qt::ControlModifier);
    QTRY_VERIFY(QFile::exists(target));
    // The default seed is 1 (the README's headless command uses the same).
    QVERIFY2(suggested.endsWith(QStringLiteral("tiny-prompt-seed1.png")), qPrintable(suggested));
    QImage native(target);
    QCOMPARE(native.size(), QSize(8, 8));
    QCOMPARE(native.pixelColor(3, 2), QColor(96, 64, 200));  // a kept prompt pixel
    const auto s = window_->session()->snapshot();
    QCOMPARE(native.pixelColor(2, 6),
             QColor(s->run->token(150), s->run->token(151), s->run->token(152)));
    QImage big(out_dir + QStringLiteral("/completion-8x.png"));
    QCOMPARE(big.size(), QSize(64, 64));
    QCOMPARE(big.pixelColor(2 * 8 + 7, 6 * 8), native.pixelColor(2, 6));
    const QStringList left = QDir(out_dir).entryList(QDir::Files | QDir::Hidden);
    QCOMPARE(left,
             QStringList({QStringLiteral("completion-8x.png"), QStringLiteral("completion.png")}));
  }

  void stop_within_200_ms() {
    const QString big =
        make_model(dir_, QStringLiteral("big.safetensors"), "image:32x32x3", 4, 128);
    QVERIFY(!big.isEmpty());
    QSignalSpy loaded(window_->session(), &session::Session::model_loaded);
    window_->open_model(big);
    QVERIFY(loaded.wait(10000));
    QTRY_VERIFY(window_->sampling_panel()->generate_button()->isEnabled());
    // The behaviour the issue promises: Stop takes effect within 200 ms. The engine checks the
    // cancel flag between tokens (< 1 ms each here); what can stretch one measurement is this
    // shared 2-core machine descheduling the test. So take up to three runs and require one
    // within 200 ms: a Stop that really waits (say, checks every 1,000 tokens) fails all three.
    QStringList timings;
    bool in_time = false;
    for (int attempt = 0; attempt < 3 && !in_time; ++attempt) {
      QTRY_VERIFY(window_->sampling_panel()->generate_button()->isEnabled());
      QSignalSpy ended(window_->session(), &session::Session::run_ended);
      QTest::mouseClick(window_->sampling_panel()->generate_button(), Qt::LeftButton);
      QTRY_VERIFY(window_->session()->snapshot()->filled > 200);
      QTRY_VERIFY(window_->sampling_panel()->stop_button()->isEnabled());
      QElapsedTimer clock;
      clock.start();
      QTest::mouseClick(window_->sampling_panel()->stop_button(), Qt::LeftButton);
      while (ended.isEmpty() && clock.elapsed() < 5000) QCoreApplication::processEvents();
      const qint64 ms = clock.elapsed();
      QCOMPARE(ended.count(), 1);
      QCOMPARE(ended.at(0).at(0).value<RunState>(), RunState::kStopped);
      const auto s = window_->session()->snapshot();
      QVERIFY(s->filled < s->run->length());
      QVERIFY(!window_->sampling_panel()->stop_button()->isEnabled());
      timings << QStringLiteral("%1 ms").arg(ms);
      in_time = ms < 200;
    }
    QVERIFY2(in_time, qPrintable(QStringLiteral("stopped after ") + timings.join(", ")));
  }

  void corrupt_model_shows_a_message() {
    const QString bad = dir_.filePath(QStringLiteral("broken.safetensors"));
    QFile f(bad);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write(QByteArray(64, '\x7f'));
    f.close();
    const std::string open_before = window_->session()->snapshot()->model->path;
    MessageBoxCloser closer;
    window_->open_model(bad);
    QTRY_VERIFY(!closer.text.isEmpty());
    QVERIFY2(closer.text.contains(QStringLiteral("broken.safetensors")), qPrintable(closer.text));
    QCOMPARE(window_->session()->snapshot()->model->path, open_before);
    QVERIFY(window_->isVisible());
  }

  void corrupt_image_shows_a_message() {
    const QString bad = dir_.filePath(QStringLiteral("broken.png"));
    QFile f(bad);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write("\x89PNG\r\n\x1a\n but then nothing a decoder wants");
    f.close();
    MessageBoxCloser closer;
    QVERIFY(!window_->open_prompt(bad));
    QVERIFY2(closer.text.contains(QStringLiteral("broken.png")), qPrintable(closer.text));
    QVERIFY2(closer.text.contains(QStringLiteral("cannot read as an image")),
             qPrintable(closer.text));
    QVERIFY(window_->isVisible());
  }

  void dropping_a_model_file_opens_it() {
    QMimeData mime;
    mime.setUrls({QUrl::fromLocalFile(tiny_)});
    QDragEnterEvent enter(QPoint(400, 300), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
    QApplication::sendEvent(window_.get(), &enter);
    QVERIFY(enter.isAccepted());
    QSignalSpy loaded(window_->session(), &session::Session::model_loaded);
    QDropEvent drop(QPointF(400, 300), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
    QApplication::sendEvent(window_.get(), &drop);
    QVERIFY(loaded.wait(10000));
    QCOMPARE(QString::fromStdString(window_->session()->snapshot()->model->path), tiny_);
  }

  void recent_files_persist() {
    const QStringList recent = window_->recent_files();
    QCOMPARE(recent.size(), 2);
    QCOMPARE(recent[0], tiny_);
    QVERIFY(recent[1].endsWith(QStringLiteral("big.safetensors")));
    // A second window (a later start) reads the same list from QSettings.
    ui::MainWindow later;
    QCOMPARE(later.recent_files(), recent);
  }

  // Remembered knobs reach an interactive start (and are said in the status bar), never a
  // scripted run, and File > Reset settings puts them back to the defaults.
  void remembered_sampling_is_said_and_never_reaches_a_scripted_run() {
    {
      QSettings s;
      s.setValue(QStringLiteral("sampling/top_p"), 0.9);
      s.setValue(QStringLiteral("sampling/seed"), 7);
    }
    const attnscope::SamplingParams d = ui::MainWindow::default_sampling();
    QCOMPARE(d.seed, uint64_t{1});
    {
      ui::MainWindow later;
      QCOMPARE(later.sampling_panel()->params().top_p, 0.9f);
      QCOMPARE(later.sampling_panel()->params().seed, uint64_t{7});
      QTRY_VERIFY(!later.statusBar()->currentMessage().isEmpty());
      const QString msg = later.statusBar()->currentMessage();
      QVERIFY2(msg.contains(QStringLiteral("top-p 0.9")) &&
                   msg.contains(QStringLiteral("seed 7")) &&
                   msg.contains(QStringLiteral("Reset settings")),
               qPrintable(msg));
    }
    {
      ui::MainWindow scripted;
      scripted.set_script_mode(true);
      QCOMPARE(scripted.sampling_panel()->params().top_p, d.top_p);
      QCOMPARE(scripted.sampling_panel()->params().seed, d.seed);
      QCOMPARE(scripted.sampling_panel()->params().temperature, d.temperature);
      // A command-line option applied after it is what the run uses...
      attnscope::SamplingParams p = scripted.sampling_panel()->params();
      p.temperature = 0.5f;
      scripted.sampling_panel()->set_params(p);
      scripted.close();
    }
    // ...and the scripted run wrote nothing back.
    QCOMPARE(QSettings().value(QStringLiteral("sampling/top_p")).toDouble(), 0.9);
    {
      ui::MainWindow later;
      QAction* reset = later.findChild<QAction*>(QStringLiteral("action-reset-settings"));
      QVERIFY(reset);
      reset->trigger();
      QCOMPARE(later.sampling_panel()->params().top_p, d.top_p);
      QCOMPARE(later.sampling_panel()->params().seed, d.seed);
      QVERIFY(!QSettings().contains(QStringLiteral("sampling/top_p")));
      QVERIFY(!QSettings().contains(QStringLiteral("sampling/seed")));
      QCOMPARE(later.recent_files(), window_->recent_files());  // recent files are kept
    }
    // The next start is at the defaults, with nothing to say.
    ui::MainWindow fresh;
    QCOMPARE(fresh.sampling_panel()->params().top_p, d.top_p);
    QTest::qWait(50);
    QVERIFY(fresh.statusBar()->currentMessage().isEmpty());
  }

  void inspection_views_render_after_a_run() {
    QSignalSpy loaded(window_->session(), &session::Session::model_loaded);
    window_->open_model(tiny_);
    QVERIFY(loaded.wait(10000));
    QTRY_VERIFY(window_->sampling_panel()->generate_button()->isEnabled());
    QSignalSpy ended(window_->session(), &session::Session::run_ended);
    window_->generate();
    QVERIFY(ended.wait(30000));
    for (const QString& name :
         {QStringLiteral("attention"), QStringLiteral("pattern"), QStringLiteral("memory")}) {
      QVERIFY(window_->show_view(name));
      ui::InspectView* v = window_->inspect_view(name);
      QTRY_VERIFY_WITH_TIMEOUT(v->result() && !window_->views_pending(), 60000);
      QVERIFY2(v->result()->error.empty(), qPrintable(QString::fromStdString(v->result()->error)));
      const QImage img = v->grab().toImage();
      QSet<QRgb> colours;
      for (int y = 0; y < img.height(); y += 2)
        for (int x = 0; x < img.width(); x += 2) colours.insert(img.pixel(x, y));
      // Content, not a blank panel: many distinct colours.
      QVERIFY2(colours.size() > 8, qPrintable(name));
    }
  }

  void attention_heatmap_is_brightest_where_the_engine_attends_most() {
    QVERIFY(window_->show_view(QStringLiteral("attention")));
    auto* v = static_cast<ui::AttentionView*>(window_->inspect_view(QStringLiteral("attention")));
    v->set_layer(1);
    v->set_head(2);
    const int64_t query = 100;
    v->set_query(query);
    QTRY_VERIFY_WITH_TIMEOUT(v->result() && v->result()->request.query == query &&
                                 v->result()->request.layer == 1 && !window_->views_pending(),
                             30000);
    // The engine's row for the same query, computed here.
    const auto snap = window_->session()->snapshot();
    auto loaded = safetensors_load(tiny_.toStdString());
    QVERIFY(loaded.has_value());
    auto model = model_create(loaded->cfg, std::move(loaded->weights));
    QVERIFY(model.has_value() && *model);
    AttnRow row;
    QVERIFY(inspect_attention_row(**model, snap->run->tokens(), snap->run->known(snap->filled), 1,
                                  query, &row));
    // Dense, 3 channels: key j is pixel j / 3; head 2's weight summed per pixel.
    std::vector<double> per_pixel(64, 0.0);
    for (int64_t j = 0; j < row.keys; ++j)
      per_pixel[static_cast<size_t>(j / 3)] += row.weights[static_cast<size_t>(2 * row.keys + j)];
    const int top =
        static_cast<int>(std::max_element(per_pixel.begin(), per_pixel.end()) - per_pixel.begin());
    const QPoint want(top % 8, top / 8);
    const render::Field& f = v->field_view()->field();
    QCOMPARE(f.values[static_cast<size_t>(top)], 1.0f);
    // On screen: the top pixel has viridis(1), the colour of the largest weight (the shader
    // works in floats, C++ in doubles: 2/255 apart at most).
    const QImage frame = v->field_view()->grabFramebuffer();
    const QPointF c = v->field_view()->pixel_rect(want.x(), want.y()).center();
    const QColor got = frame.pixelColor(static_cast<int>(c.x()), static_cast<int>(c.y()));
    const render::Rgb8 hi = render::viridis(1.0);
    QVERIFY2(std::abs(got.red() - hi.r) <= 2 && std::abs(got.green() - hi.g) <= 2 &&
                 std::abs(got.blue() - hi.b) <= 2,
             qPrintable(got.name()));
    // The heat is the engine's row mapped per pixel: the positions after the query get none.
    QCOMPARE(f.values[static_cast<size_t>(query / 3 + 1)], 0.0f);
  }

  void attention_heat_spreads_pooled_keys() {
    // Hourglass at factor 3: key j pools positions 3j - 2 .. 3j (clipped at 0); four keys of
    // weight 1/4 over 3-channel pixels of a 4-pixel row.
    AttnRow row;
    row.heads = 1;
    row.keys = 4;
    row.key_offset = -2;
    row.key_stride = 3;
    row.weights = {0.25f, 0.25f, 0.25f, 0.25f};
    ui::PixelMap map;
    map.w = 4;
    map.h = 1;
    map.channels = 3;
    const std::vector<float> heat = ui::attention_heat(row, -1, map);
    const double third = 0.25 / 3;
    // Tolerance: float sums of a few terms.
    QVERIFY(std::abs(heat[0] - (0.25 + 2 * third)) < 1e-6);
    QVERIFY(std::abs(heat[1] - 3 * third) < 1e-6);
    QVERIFY(std::abs(heat[2] - 3 * third) < 1e-6);
    QVERIFY(std::abs(heat[3] - third) < 1e-6);
  }

  void attention_and_pattern_export_pngs() {
    for (const QString& name : {QStringLiteral("attention"), QStringLiteral("pattern")}) {
      QVERIFY(window_->show_view(name));
      ui::InspectView* v = window_->inspect_view(name);
      QTRY_VERIFY_WITH_TIMEOUT(v->result() && !window_->views_pending(), 30000);
      QVERIFY(v->export_name().endsWith(QStringLiteral(".png")));
      QVERIFY(v->export_name().startsWith(QStringLiteral("tiny-") + name));
      const QString path = dir_.filePath(v->export_name());
      QVERIFY(window_->export_view_to(path));
      QImage img(path);
      QVERIFY(!img.isNull());
      QVERIFY(img.width() >= 256 && img.width() == img.height());
      QSet<QRgb> colours;
      for (int y = 0; y < img.height(); y += 4)
        for (int x = 0; x < img.width(); x += 4) colours.insert(img.pixel(x, y));
      QVERIFY(colours.size() >= 2);
    }
  }

  void ctrl_e_exports_the_view_on_show() {
    QVERIFY(window_->show_view(QStringLiteral("pattern")));
    ui::InspectView* v = window_->inspect_view(QStringLiteral("pattern"));
    QTRY_VERIFY_WITH_TIMEOUT(v->result() && !window_->views_pending(), 30000);
    const QString target = dir_.filePath(QStringLiteral("pattern-by-ctrl-e.png"));
    QString suggested;
    QTimer dialog_driver;
    dialog_driver.setInterval(20);
    connect(&dialog_driver, &QTimer::timeout, this, [&] {
      if (auto* d = qobject_cast<QFileDialog*>(QApplication::activeModalWidget())) {
        dialog_driver.stop();
        suggested = d->selectedFiles().value(0);
        d->selectFile(target);
        QMetaObject::invokeMethod(d, "accept", Qt::QueuedConnection);
      }
    });
    dialog_driver.start();
    window_->activateWindow();
    QVERIFY(QTest::qWaitForWindowActive(window_.get()));
    QTest::keyClick(window_.get(), Qt::Key_E, Qt::ControlModifier);
    QTRY_VERIFY(QFile::exists(target));
    QVERIFY2(suggested.endsWith(v->export_name()), qPrintable(suggested));
    QVERIFY(!QImage(target).isNull());
  }

  void pattern_density_label_matches_the_engine() {
    QVERIFY(window_->show_view(QStringLiteral("pattern")));
    auto* v = static_cast<ui::PatternView*>(window_->inspect_view(QStringLiteral("pattern")));
    QTRY_VERIFY_WITH_TIMEOUT(v->result() && !window_->views_pending(), 30000);
    const ModelConfig cfg = window_->session()->snapshot()->model->config;
    PatternImage p;
    QVERIFY(inspect_pattern(cfg, 0, 0, cfg.seq_len(), 256, &p));
    QCOMPARE(v->density_label()->text(), ui::pattern_density_text(p.density));
    // Future cells are drawn apart from pruned ones: the top-right cell (first queries, last
    // keys) is not causal, flat grey; the bottom-left (last queries, first keys) fully attended.
    const render::FieldView* fv = v->field_view();
    const int g = p.grid;
    QCOMPARE(fv->field().values[static_cast<size_t>(g - 1)], render::kFieldFuture);
    const QImage frame = const_cast<render::FieldView*>(fv)->grabFramebuffer();
    auto near = [&](QPoint cell, render::Rgb8 want) {
      const QPointF c = fv->pixel_rect(cell.x(), cell.y()).center();
      const QColor got = frame.pixelColor(static_cast<int>(c.x()), static_cast<int>(c.y()));
      return std::abs(got.red() - want.r) <= 2 && std::abs(got.green() - want.g) <= 2 &&
             std::abs(got.blue() - want.b) <= 2;
    };
    QVERIFY(near({g - 1, 0}, render::kFutureColor));
    QVERIFY(near({0, g - 1}, render::viridis(1.0)));
    QVERIFY(v->cell_text({g - 1, 0}).contains(QStringLiteral("future")));
    QVERIFY2(v->cell_text({0, g - 1}).contains(QStringLiteral("100.0% of the cell's causal")),
             qPrintable(v->cell_text({0, g - 1})));
    // The axes span the positions, and the colour bar explains the cells.
    QCOMPARE(fv->guides().x.hi, static_cast<double>(cfg.seq_len()));
    QCOMPARE(fv->guides().y.hi, static_cast<double>(cfg.seq_len()));
    QVERIFY(fv->guides().bar.shown);
    QCOMPARE(fv->guides().bar.swatches.size(), size_t{2});
  }

  // The 20 bucket colours stay apart: every pair at least 20 apart in CIELAB (CIE76), and
  // from the grey of the other buckets and the view's dark background.
  void bucket_colours_are_told_apart() {
    auto lab = [](render::Rgb8 c) {
      auto lin = [](double v) {
        v /= 255.0;
        return v <= 0.04045 ? v / 12.92 : std::pow((v + 0.055) / 1.055, 2.4);
      };
      const double r = lin(c.r), g = lin(c.g), b = lin(c.b);
      const double x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
      const double y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
      const double z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
      auto f = [](double t) { return t > 0.008856 ? std::cbrt(t) : 7.787 * t + 16.0 / 116; };
      return std::array<double, 3>{116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))};
    };
    auto dist = [&](render::Rgb8 a, render::Rgb8 b) {
      const auto p = lab(a), q = lab(b);
      return std::sqrt((p[0] - q[0]) * (p[0] - q[0]) + (p[1] - q[1]) * (p[1] - q[1]) +
                       (p[2] - q[2]) * (p[2] - q[2]));
    };
    std::vector<render::Rgb8> all;
    for (int k = 0; k < render::kDistinctColors; ++k) all.push_back(render::distinct_color(k));
    all.push_back(render::kOtherCategoryColor);
    all.push_back({28, 28, 31});  // the FieldView background
    double worst = 1e9;
    for (size_t i = 0; i < all.size(); ++i)
      for (size_t j = i + 1; j < all.size(); ++j) worst = std::min(worst, dist(all[i], all[j]));
    QVERIFY2(worst >= 20, qPrintable(QStringLiteral("closest pair %1 apart").arg(worst)));
    // Ranked by count, ties by id; absent buckets rank -1.
    const render::CategoryPalette pal({5, 0, 9, 5});
    QCOMPARE(pal.rank(2), 0);
    QCOMPARE(pal.rank(0), 1);
    QCOMPARE(pal.rank(3), 2);
    QCOMPARE(pal.rank(1), -1);
  }

  // Ticks fall on 1, 2, 5 x 10^k steps inside the range and never exceed the count asked for.
  void axis_ticks_are_round_numbers() {
    double step = 0;
    QCOMPARE(render::nice_ticks(0, 3072, 8, &step),
             (std::vector<double>{0, 500, 1000, 1500, 2000, 2500, 3000}));
    QCOMPARE(step, 500.0);
    QCOMPARE(render::nice_ticks(0, 2.0, 5, &step), (std::vector<double>{0, 0.5, 1.0, 1.5, 2.0}));
    QCOMPARE(render::tick_label(0.5, step), QStringLiteral("0.5"));
    QCOMPARE(render::nice_ticks(56, 96, 5, &step), (std::vector<double>{60, 70, 80, 90}));
    for (int n = 2; n <= 12; ++n)
      for (double hi : {1.0, 7.0, 32.0, 1e-3, 8000.0, 16384.0}) {
        const auto t = render::nice_ticks(0, hi, n, &step);
        QVERIFY(t.size() >= 2 && static_cast<int>(t.size()) <= n);
        QVERIFY(t.front() >= 0 && t.back() <= hi * (1 + 1e-9));
      }
    QVERIFY(render::nice_ticks(1, 1, 5).empty());
  }

  // Step-through: the timeline spans the known positions; at a step, one cell per layer x
  // head holds the engine's row of that query computed on positions 0..query; a dense layer
  // keeps all of the dense mass; moving the slider asks for that position.
  void step_through_shows_every_layer_and_head() {
    QVERIFY(window_->show_view(QStringLiteral("step")));
    auto* v = static_cast<ui::StepView*>(window_->inspect_view(QStringLiteral("step")));
    QTRY_VERIFY_WITH_TIMEOUT(v->result() && !window_->views_pending(), 30000);
    const auto snap = window_->session()->snapshot();
    const ModelConfig cfg = snap->model->config;
    const int64_t known = snap->run->known(snap->filled);
    QCOMPARE(v->slider()->maximum(), static_cast<int>(known - 1));
    const int64_t q = known / 2;
    v->slider()->setValue(static_cast<int>(q));
    QTRY_VERIFY_WITH_TIMEOUT(v->result()->request.query == q && !window_->views_pending(), 30000);
    const session::InspectResult& r = *v->result();
    QVERIFY2(r.error.empty(), r.error.c_str());
    QCOMPARE(static_cast<int>(r.rows.size()), attnscope::inspect_layer_count(cfg));
    QCOMPARE(r.n, q + 1);
    auto file = safetensors_load(snap->model->path);
    QVERIFY(file.has_value());
    auto made = model_create(file->cfg, std::move(file->weights));
    QVERIFY(made.has_value());
    const Model& mref = **made;
    for (int l = 0; l < static_cast<int>(r.rows.size()); ++l) {
      AttnRow want;
      QVERIFY(inspect_attention_row(mref, snap->run->tokens(), q + 1, l, q, &want).is_ok());
      QCOMPARE(r.rows[static_cast<size_t>(l)].weights, want.weights);
      for (int h = 0; h < cfg.heads; ++h) {
        QVERIFY(!v->grid()->cell_rect(l, h).isEmpty());
        QVERIFY(v->grid()->cell_text(l, h).contains(QStringLiteral("kept 100.0%")));
      }
    }
    // The cell image: the pixel after the query's is grey (the future), its own is coloured.
    const QImage cell = v->grid()->cell_image(0, 0);
    const ui::PixelMap map = ui::pixel_map(cfg.modality);
    QCOMPARE(cell.size(), QSize(map.w, map.h));
    const int64_t next = (q / map.channels + 1);
    QCOMPARE(cell.pixelColor(static_cast<int>(next % map.w), static_cast<int>(next / map.w)),
             QColor(52, 52, 58));
    QVERIFY(v->info_label()->text().contains(QStringLiteral("Position %1").arg(q)));
  }

  void lsh_view_explains_itself_on_a_dense_model() {
    QVERIFY(window_->show_view(QStringLiteral("lsh")));
    auto* v = static_cast<ui::LshView*>(window_->inspect_view(QStringLiteral("lsh")));
    QTRY_VERIFY(v->message()->isVisible());
    QVERIFY(v->message()->text().contains(QStringLiteral("needs a Reformer model")));
    QVERIFY(!v->field_view()->isVisible());
  }

  // The hash-rounds knob shows for a Reformer model only; each run adds a table row whose
  // prompt bits/dim and tokens are the engine's with the edited configuration.
  void hash_rounds_knob_applies_to_the_next_run() {
    ui::SamplingPanel* sp = window_->sampling_panel();
    QVERIFY(!sp->knobs_box()->isVisible());  // the dense model has no knobs
    const QString path = make_family_model(dir_, QStringLiteral("knob-reformer.safetensors"),
                                           Family::kReformer, "image:8x8x3");
    QVERIFY(!path.isEmpty());
    QSignalSpy loaded(window_->session(), &session::Session::model_loaded);
    window_->open_model(path);
    QVERIFY(loaded.wait(10000));
    QVERIFY(window_->open_prompt(prompt_));
    window_->prompt_panel()->set_keep_rows(3);
    QTRY_VERIFY(window_->session()->snapshot()->run &&
                window_->session()->snapshot()->run->prompt_length() == 3 * 8 * 3);
    QTRY_VERIFY(sp->knobs_box()->isVisible());
    QVERIFY(sp->hashes_box()->isVisible() && !sp->latents_box()->isVisible());
    QCOMPARE(sp->hashes_box()->value(), 2);
    auto loaded_file = safetensors_load(path.toStdString());
    QVERIFY(loaded_file.has_value());
    for (int hashes : {4, 1}) {
      sp->hashes_box()->setValue(hashes);
      QSignalSpy ended(window_->session(), &session::Session::run_ended);
      window_->generate();
      QVERIFY(ended.wait(30000));
      const auto s = window_->session()->snapshot();
      QCOMPARE(s->model->config.lsh.n_hashes, hashes);
      ModelConfig cfg = loaded_file->cfg;
      cfg.lsh.n_hashes = hashes;
      auto m = model_create(cfg, loaded_file->weights);
      QVERIFY(m.has_value() && *m);
      const std::vector<uint8_t> prompt(s->run->tokens(), s->run->tokens() + 72);
      const auto bpd = model_bits_per_dim(**m, prompt.data(), 72);
      QVERIFY(bpd.has_value());
      QCOMPARE(s->knob_rows.back().prompt_bits_per_dim, *bpd);
      GenerateRequest req;
      req.prompt = prompt;
      req.sampling = sp->params();
      auto want = generate(**m, req);
      QVERIFY(want.has_value());
      QCOMPARE(std::vector<uint8_t>(s->run->tokens(), s->run->tokens() + 192), *want);
      QTableWidget* table = sp->knob_table();
      const int row = static_cast<int>(s->knob_rows.size()) - 1;
      QTRY_COMPARE(table->rowCount(), row + 1);
      QCOMPARE(table->item(row, 0)->text(), QString::number(hashes));
      QCOMPARE(table->item(row, 2)->text(), QString::number(*bpd, 'f', 3));
    }
    QCOMPARE(sp->knob_table()->rowCount(), 2);  // the rows accumulate
  }

  // Perceiver AR shows the latents and the latent-cache choice; a cached run's tokens and
  // prompt bits/dim are the engine's under that decode, and its table row says which.
  void latent_cache_knob_applies_to_the_next_run() {
    ui::SamplingPanel* sp = window_->sampling_panel();
    const QString path = make_family_model(dir_, QStringLiteral("knob-perceiver.safetensors"),
                                           Family::kPerceiverAR, "image:8x8x3");
    QVERIFY(!path.isEmpty());
    QSignalSpy loaded(window_->session(), &session::Session::model_loaded);
    window_->open_model(path);
    QVERIFY(loaded.wait(10000));
    QVERIFY(window_->open_prompt(prompt_));
    window_->prompt_panel()->set_keep_rows(3);
    QTRY_VERIFY(window_->session()->snapshot()->run &&
                window_->session()->snapshot()->model->config.family == Family::kPerceiverAR &&
                window_->session()->snapshot()->run->prompt_length() == 3 * 8 * 3);
    QTRY_VERIFY(sp->knobs_box()->isVisible());
    QVERIFY(sp->latents_box()->isVisible() && sp->latent_cache_box()->isVisible() &&
            !sp->hashes_box()->isVisible());
    QCOMPARE(sp->latent_cache_box()->currentText(), QStringLiteral("exact"));
    auto loaded_file = safetensors_load(path.toStdString());
    QVERIFY(loaded_file.has_value());
    sp->latents_box()->setValue(10);
    sp->latent_cache_box()->setCurrentIndex(sp->latent_cache_box()->findText("cached"));
    QSignalSpy ended(window_->session(), &session::Session::run_ended);
    window_->generate();
    QVERIFY(ended.wait(30000));
    const auto s = window_->session()->snapshot();
    QCOMPARE(s->model->config.perceiver.decode, PerceiverDecode::kCached);
    ModelConfig cfg = loaded_file->cfg;
    cfg.perceiver.latents = 10;
    cfg.perceiver.decode = PerceiverDecode::kCached;
    auto m = model_create(cfg, loaded_file->weights);
    QVERIFY(m.has_value() && *m);
    const std::vector<uint8_t> prompt(s->run->tokens(), s->run->tokens() + 72);
    const auto bpd = model_bits_per_dim(**m, prompt.data(), 72);
    QVERIFY(bpd.has_value());
    QCOMPARE(s->knob_rows.back().prompt_bits_per_dim, *bpd);
    GenerateRequest req;
    req.prompt = prompt;
    req.sampling = sp->params();
    auto want = generate(**m, req);
    QVERIFY(want.has_value());
    QCOMPARE(std::vector<uint8_t>(s->run->tokens(), s->run->tokens() + 192), *want);
    // The exact decode with 10 latents samples another image from the same prompt.
    cfg.perceiver.decode = PerceiverDecode::kExact;
    auto exact = model_create(cfg, loaded_file->weights);
    QVERIFY(exact.has_value() && *exact);
    auto other = generate(**exact, req);
    QVERIFY(other.has_value() && *other != *want);
    QTRY_COMPARE(sp->knob_table()->rowCount(), 1);
    QCOMPARE(sp->knob_table()->item(0, 0)->text(), QStringLiteral("10 cached"));
    QCOMPARE(sp->knob_table()->item(0, 2)->text(), QString::number(*bpd, 'f', 3));
  }

  void compare_tab_shows_the_grid() {
    QSignalSpy loaded(window_->session(), &session::Session::model_loaded);
    window_->open_model(tiny_);
    QVERIFY(loaded.wait(10000));
    QVERIFY(window_->open_prompt(prompt_));
    window_->prompt_panel()->set_keep_rows(4);
    QTRY_VERIFY(window_->session()->snapshot()->run &&
                window_->session()->snapshot()->run->prompt_length() == 4 * 8 * 3);
    QVERIFY(window_->show_view(QStringLiteral("compare")));
    ui::CompareView* cv = window_->compare_view();
    QVERIFY(cv->isVisible() && !cv->compare_button()->isEnabled());
    QVERIFY(cv->setup_label()->text().contains(QStringLiteral("add at least one")));
    const QString second = make_family_model(dir_, QStringLiteral("second-sparse.safetensors"),
                                             Family::kSparse, "image:8x8x3");
    QSignalSpy compare_loaded(window_->session(), &session::Session::compare_loaded);
    window_->open_compare_model(second);
    QVERIFY(compare_loaded.wait(10000));
    QTRY_VERIFY(cv->compare_button()->isEnabled());
    // A second prompt read from a file as the prompt panel reads one: a flat orange image.
    QImage orange(8, 8, QImage::Format_RGB888);
    orange.fill(QColor(240, 140, 20));
    const QString orange_path = dir_.filePath(QStringLiteral("orange.png"));
    QVERIFY(orange.save(orange_path));
    QVERIFY(window_->set_compare_prompts({orange_path}));
    QTRY_VERIFY(cv->setup_label()->text().contains(QStringLiteral("orange.png")));
    cv->seeds_box()->setValue(2);
    QSignalSpy ended(window_->session(), &session::Session::compare_ended);
    QTest::mouseClick(cv->compare_button(), Qt::LeftButton);
    QVERIFY(ended.wait(60000));
    QVERIFY(ended.at(0).at(0).toBool());
    QTRY_VERIFY(cv->result() && cv->result()->rows.size() == 2 && cv->result()->rows[1].done());
    QCOMPARE(cv->progress()->value(), 1000);
    const session::CompareResult& r = *cv->result();
    QCOMPARE(r.prompts.size(), size_t{2});
    QCOMPARE(r.seeds.size(), size_t{2});
    QCOMPARE(r.prompts[1].truth.size(), size_t{192});
    QCOMPARE(QColor(r.prompts[1].truth[0], r.prompts[1].truth[1], r.prompts[1].truth[2]),
             QColor(240, 140, 20));
    // Every cell is the engine's completion of its prompt with its seed.
    const QString paths[2] = {tiny_, second};
    for (size_t i = 0; i < 2; ++i) {
      auto file = safetensors_load(paths[i].toStdString());
      QVERIFY(file.has_value());
      auto m = model_create(file->cfg, file->weights);
      QVERIFY(m.has_value() && *m);
      for (size_t p = 0; p < 2; ++p)
        for (size_t k = 0; k < 2; ++k) {
          GenerateRequest req;
          req.prompt = r.prompts[p].prompt;
          req.sampling = window_->sampling_panel()->params();
          req.sampling.seed = r.seeds[k];
          auto want = generate(**m, req);
          QVERIFY(want.has_value());
          QCOMPARE(r.cell(i, p, k).tokens, *want);
        }
    }
    QCOMPARE(r.seeds[1], r.seeds[0] + 1);
    // The table: one row per model with its measured figures, as the result holds them.
    QTableWidget* t = cv->table();
    QCOMPARE(t->rowCount(), 2);
    for (int i = 0; i < 2; ++i) {
      const session::CompareRow& row = r.rows[static_cast<size_t>(i)];
      QCOMPARE(t->item(i, 0)->text(), QString::fromStdString(row.name));
      QCOMPARE(t->item(i, 3)->text(), QString::number(row.tokens_per_s(), 'f', 0));
      QVERIFY(row.peak_bytes > 0);
      QCOMPARE(t->item(i, 4)->text(),
               QString::fromStdString(mem_format_bytes(static_cast<double>(row.peak_bytes))));
      QCOMPARE(t->item(i, 5)->text(),
               QString::number(r.truth_bits_mean(static_cast<int>(i)), 'f', 3));
      QVERIFY(!std::isnan(r.truth_bits_mean(static_cast<size_t>(i))));
    }
    QCOMPARE(t->item(1, 0)->text(), QStringLiteral("second-sparse.safetensors"));
    // The grid draws each cell's tokens: the completed bottom-right pixel of model 1, prompt 1,
    // seed 1 read back from the widget.
    ui::CompareGrid* g = cv->grid();
    const QImage shot = g->grab().toImage();
    for (int row = 0; row < 2; ++row)
      for (int p = 0; p < 2; ++p)
        for (int k = 0; k < 2; ++k) {
          const QRect box = g->cell_rect(row, p, k);
          QVERIFY(!box.isEmpty() && shot.rect().contains(box));
          const std::vector<uint8_t>& tok =
              r.cell(static_cast<size_t>(row), static_cast<size_t>(p), static_cast<size_t>(k))
                  .tokens;
          // The image is centred in the box at a whole scale: its last pixel's centre.
          const int scale = std::min(box.width(), box.height()) / 8;
          const QPoint at(box.left() + (box.width() - 8 * scale) / 2 + 7 * scale + scale / 2,
                          box.top() + (box.height() - 8 * scale) / 2 + 7 * scale + scale / 2);
          QCOMPARE(QColor(shot.pixel(at)), QColor(tok[189], tok[190], tok[191]));
        }
    // The real-data row shows each prompt's real image over its first seed column.
    const QRect truth_box = g->cell_rect(-1, 1, 0);
    QVERIFY(!truth_box.isEmpty());
    QCOMPARE(QColor(shot.pixel(truth_box.center())), QColor(240, 140, 20));
    // Hovering a cell names it with its figures.
    const QString hover = g->cell_text(g->cell_rect(1, 1, 1).center());
    QVERIFY2(
        hover.contains(
            QStringLiteral("second-sparse.safetensors on orange.png, seed %1").arg(r.seeds[1])) &&
            hover.contains(QString::number(r.rows[1].truth_bits_per_dim[1], 'f', 3)),
        qPrintable(hover));
    // The surprise overlay recolours the model rows (viridis of each pixel's mean surprise) and
    // shows its colour bar.
    auto* surprise = cv->findChild<QCheckBox*>(QStringLiteral("compare-surprise"));
    QVERIFY(surprise);
    surprise->setChecked(true);
    const QImage overlay = g->grab().toImage();
    QVERIFY(overlay != shot);
    {
      const std::vector<float>& bits = r.rows[0].surprise_bits[0];
      const double mean = (bits[189] + bits[190] + bits[191]) / 3 / 8;
      const render::Rgb8 v = render::viridis(mean);
      const QRect box = g->cell_rect(0, 0, 0);
      const int scale = std::min(box.width(), box.height()) / 8;
      const QPoint at(box.left() + (box.width() - 8 * scale) / 2 + 7 * scale + scale / 2,
                      box.top() + (box.height() - 8 * scale) / 2 + 7 * scale + scale / 2);
      QCOMPARE(QColor(overlay.pixel(at)), QColor(v.r, v.g, v.b));
    }
    // Ctrl+E's export on this tab: the table and grid as PNG...
    const QString png = dir_.filePath(QStringLiteral("compare.png"));
    QVERIFY(window_->export_view_to(png));
    const QImage img(png);
    QVERIFY(!img.isNull() && img.height() >= g->height() + t->height());
    QCOMPARE(cv->export_name(), QStringLiteral("tiny-vs-second-sparse-compare.png"));
    // ...and every cell's figures as CSV beside it: 2 models x 2 prompts x 2 seeds.
    QFile csv(dir_.filePath(QStringLiteral("compare.csv")));
    QVERIFY(csv.open(QIODevice::ReadOnly));
    const QStringList rows = QString::fromUtf8(csv.readAll()).split('\n', Qt::SkipEmptyParts);
    QCOMPARE(rows.size(), 9);
    QVERIFY(rows[0].contains(QStringLiteral("true_data_bits_per_dim")));
    QVERIFY2(rows[8].startsWith(QStringLiteral("\"second-sparse.safetensors\"")) &&
                 rows[8].contains(QStringLiteral("\"orange.png\",%1").arg(r.seeds[1])) &&
                 rows[8].contains(QString::number(r.rows[1].truth_bits_per_dim[1], 'f', 4)),
             qPrintable(rows[8]));
    surprise->setChecked(false);
    cv->seeds_box()->setValue(1);
    QVERIFY(window_->set_compare_prompts({}));
  }

  void mismatched_second_model_is_refused() {
    ui::CompareView* cv = window_->compare_view();
    const QString other =
        make_model(dir_, QStringLiteral("other-size.safetensors"), "image:16x16x3", 1, 16);
    MessageBoxCloser closer;
    window_->open_compare_model(other);
    QTRY_VERIFY(!closer.text.isEmpty());
    QVERIFY2(closer.text.contains(QStringLiteral("image:16x16x3")) &&
                 closer.text.contains(QStringLiteral("same modality and size")),
             qPrintable(closer.text));
    QVERIFY(cv->message_label()->isVisible());
    QCOMPARE(cv->message_label()->text(), closer.text);
    // The second model loaded before stays.
    QCOMPARE(window_->session()->snapshot()->compare_models,
             std::vector<std::string>{"second-sparse.safetensors"});
    QVERIFY(window_->isVisible());
    window_->show_view(QStringLiteral("canvas"));
  }

  void lsh_view_shows_buckets_on_a_reformer_model() {
    const QString path = make_family_model(dir_, QStringLiteral("lsh.safetensors"),
                                           Family::kReformer, "image:8x8x3");
    QVERIFY(!path.isEmpty());
    QSignalSpy loaded(window_->session(), &session::Session::model_loaded);
    window_->open_model(path);
    QVERIFY(loaded.wait(10000));
    QTRY_VERIFY(window_->sampling_panel()->generate_button()->isEnabled());
    QSignalSpy ended(window_->session(), &session::Session::run_ended);
    window_->generate();
    QVERIFY(ended.wait(30000));
    QVERIFY(window_->show_view(QStringLiteral("lsh")));
    auto* v = static_cast<ui::LshView*>(window_->inspect_view(QStringLiteral("lsh")));
    QTRY_VERIFY_WITH_TIMEOUT(v->result() && v->result()->model &&
                                 v->result()->model->path == path.toStdString() &&
                                 !window_->views_pending(),
                             30000);
    QVERIFY2(v->result()->error.empty(), v->result()->error.c_str());
    QVERIFY(!v->message()->isVisible());
    QVERIFY(v->field_view()->isVisible());
    const LshInspect& l = v->result()->lsh;
    QCOMPARE(l.n, int64_t(192));
    // Head 0, round 0: pixel i shows the bucket of its first channel, in the palette colour.
    const QImage frame = v->field_view()->grabFramebuffer();
    QSet<int> buckets;
    for (int i = 0; i < 64; ++i) {
      const int b = l.buckets[static_cast<size_t>(i * 3)];
      buckets.insert(b);
      QCOMPARE(v->field_view()->field().values[static_cast<size_t>(i)], float(b));
      const QPointF c = v->field_view()->pixel_rect(i % 8, i / 8).center();
      const QColor got = frame.pixelColor(static_cast<int>(c.x()), static_cast<int>(c.y()));
      const render::Rgb8 want = v->palette().color(b);
      QVERIFY2(std::abs(got.red() - want.r) <= 2 && std::abs(got.green() - want.g) <= 2 &&
                   std::abs(got.blue() - want.b) <= 2,
               qPrintable(QStringLiteral("pixel %1: %2, bucket %3").arg(i).arg(got.name()).arg(b)));
    }
    QVERIFY(buckets.size() > 1);
    // The most used bucket of head 0, round 0 gets the first distinct colour, and hovering a
    // pixel names its bucket.
    std::vector<int64_t> counts(static_cast<size_t>(l.n_buckets), 0);
    for (int64_t t = 0; t < l.n; ++t)
      ++counts[static_cast<size_t>(l.buckets[static_cast<size_t>(t)])];
    const int top =
        static_cast<int>(std::max_element(counts.begin(), counts.end()) - counts.begin());
    QCOMPARE(v->palette().rank(top), 0);
    QVERIFY(v->legend()->text().contains(QStringLiteral("&nbsp;%1&nbsp;").arg(top)));
    const QString hover = v->pixel_text(QPoint(0, 0));
    QVERIFY2(hover.contains(QStringLiteral("bucket %1 ").arg(l.buckets[0])), qPrintable(hover));
    QCOMPARE(static_cast<int>(l.kept_mass.size()), 4);
    for (double k : l.kept_mass) QVERIFY(k > 0 && k <= 1.0 + 1e-9);
  }

  // The LSH view follows a run under way: answers computed on a part of the image arrive
  // before the run ends, each on more positions than the last; after Stop it shows what was
  // generated. A model of the bundled size (4 blocks, width 128), so the run lasts seconds.
  void lsh_view_follows_generation() {
    // Wide and deep enough that a whole image takes several seconds even with the Reformer's
    // cached keys and values (4 layers of width 128 finished before three answers came).
    const QString path = write_test_model(dir_, QStringLiteral("lsh-live.safetensors"),
                                          Family::kReformer, "image:32x32x3", 8, 256, 5);
    QVERIFY(!path.isEmpty());
    QSignalSpy loaded(window_->session(), &session::Session::model_loaded);
    window_->open_model(path);
    QVERIFY(loaded.wait(10000));
    QVERIFY(window_->show_view(QStringLiteral("lsh")));
    auto* v = static_cast<ui::LshView*>(window_->inspect_view(QStringLiteral("lsh")));
    QTRY_VERIFY(window_->sampling_panel()->generate_button()->isEnabled());
    std::vector<int64_t> live;  // n of each answer that came while the run went on
    QMetaObject::Connection c =
        connect(window_->session(), &session::Session::inspected, this,
                [&](std::shared_ptr<const session::InspectResult> r) {
                  if (r->request.kind == session::InspectKind::kLsh && r->error.empty() && r->run &&
                      r->n < r->run->length() &&
                      window_->session()->snapshot()->state == session::RunState::kRunning)
                    live.push_back(r->n);
                });
    QSignalSpy ended(window_->session(), &session::Session::run_ended);
    window_->generate();
    // The first answers may all read the prompt's length: the model reads the prompt in
    // before it writes the first new token.
    QTRY_VERIFY_WITH_TIMEOUT((live.size() >= 3 && live.back() > live.front()) || !ended.isEmpty(),
                             120000);
    if (ended.isEmpty())
      QTest::mouseClick(window_->sampling_panel()->stop_button(), Qt::LeftButton);
    QVERIFY(!ended.isEmpty() || ended.wait(10000));
    disconnect(c);
    QVERIFY2(live.size() >= 3, qPrintable(QStringLiteral("%1 live answers").arg(live.size())));
    QString seen;
    for (int64_t n : live) seen += QString::number(n) + QLatin1Char(' ');
    QVERIFY2(std::is_sorted(live.begin(), live.end()) && live.front() < live.back(),
             qPrintable(seen));
    QCOMPARE(ended.takeFirst().at(0).value<session::RunState>(), session::RunState::kStopped);
    // After Stop the view shows every position generated, and says it is a part.
    const int64_t filled = window_->session()->snapshot()->filled;
    QTRY_VERIFY_WITH_TIMEOUT(v->result() && v->result()->n == filled && !window_->views_pending(),
                             30000);
    QVERIFY(v->legend()->text().contains(QStringLiteral("on the first %1 of 3072").arg(filled)));
  }

  void memory_export_writes_png_and_csv() {
    QVERIFY(window_->show_view(QStringLiteral("memory")));
    auto* v = window_->inspect_view(QStringLiteral("memory"));
    QTRY_VERIFY_WITH_TIMEOUT(v->result() && !window_->views_pending(), 60000);
    const QString png = dir_.filePath(QStringLiteral("memory.png"));
    QVERIFY(window_->export_view_to(png));
    QImage img(png);
    QCOMPARE(img.size(), QSize(1400, 800));
    QFile csv(dir_.filePath(QStringLiteral("memory.csv")));
    QVERIFY(csv.open(QIODevice::ReadOnly));
    const QStringList lines =
        QString::fromUtf8(csv.readAll()).split(QLatin1Char('\n'), Qt::SkipEmptyParts);
    QCOMPARE(lines.value(0),
             QStringLiteral("family,length,category,estimate_bytes,measured_bytes"));
    int measured = 0, dense_rows = 0;
    for (int i = 1; i < lines.size(); ++i) {
      const QStringList f = lines[i].split(QLatin1Char(','));
      QCOMPARE(f.size(), 5);
      bool ok = false;
      QVERIFY(f[1].toLongLong(&ok) > 0 && ok);
      QVERIFY(f[3].toDouble(&ok) >= 0 && ok);
      if (!f[4].isEmpty()) ++measured;
      if (f[0] == QLatin1String("dense")) ++dense_rows;
    }
    QVERIFY(measured > 0);
    QVERIFY(dense_rows > 0);
  }

  void colormap_matches_the_shader() {
    QFile f(QStringLiteral(":/shaders/colormap.glsl"));
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QString text = QString::fromUtf8(f.readAll());
    QRegularExpression row(
        QStringLiteral(R"(vec3\(\s*([-0-9.e]+),\s*([-0-9.e]+),\s*([-0-9.e]+)\))"));
    int k = 0;
    for (auto it = row.globalMatch(text); it.hasNext(); ++k) {
      const auto m = it.next();
      QVERIFY(k < 7);
      for (int c = 0; c < 3; ++c)
        QCOMPARE(m.captured(c + 1).toDouble(),
                 render::kViridisCoefficients[static_cast<size_t>(k)][static_cast<size_t>(c)]);
    }
    QCOMPARE(k, 7);
    // The fit stays within 5/255 of matplotlib's table at its ends (#440154 and #fde725).
    const render::Rgb8 lo = render::viridis(0), hi = render::viridis(1);
    QVERIFY(std::abs(lo.r - 68) <= 5 && std::abs(lo.g - 1) <= 5 && std::abs(lo.b - 84) <= 5);
    QVERIFY(std::abs(hi.r - 253) <= 5 && std::abs(hi.g - 231) <= 5 && std::abs(hi.b - 37) <= 5);
  }

  void audio_model_with_a_wav_prompt() {
    const QString model =
        make_model(dir_, QStringLiteral("audio.safetensors"), "audio:8000:0.25", 2, 32);
    QVERIFY(!model.isEmpty());
    // The prompt: 0.5 s of a 440 Hz sine at 16 kHz, so it is resampled to the model's 8 kHz.
    AudioClip clip;
    clip.rate = 16000;
    for (int i = 0; i < 8000; ++i)
      clip.samples.push_back(0.5f * static_cast<float>(std::sin(2 * M_PI * 440 * i / 16000.0)));
    const QString wav = dir_.filePath(QStringLiteral("sine.wav"));
    QVERIFY(audio_wav_write(wav.toStdString(), clip));
    // The file's samples (16-bit, as written), resampled and mu-law coded.
    auto written = audio_wav_read(wav.toStdString());
    QVERIFY(written.has_value());
    const std::vector<uint8_t> coded =
        audio_mulaw_encode(audio_resample_linear(written->samples, 16000, 8000));

    QSignalSpy loaded(window_->session(), &session::Session::model_loaded);
    window_->open_model(model);
    QVERIFY(loaded.wait(10000));
    QCOMPARE(window_->current_view(), static_cast<QWidget*>(window_->audio_view()));
    QVERIFY(window_->open_prompt(wav));
    QVERIFY2(window_->prompt_panel()->message().contains(QStringLiteral("resampled")),
             qPrintable(window_->prompt_panel()->message()));
    QCOMPARE(window_->prompt_panel()->keep_seconds(), 0.125);  // half the model's length
    window_->prompt_panel()->set_keep_seconds(0.1);
    QTRY_VERIFY(window_->session()->snapshot()->run->prompt_length() == 800);
    window_->sampling_panel()->set_samples(1);

    QSignalSpy ended(window_->session(), &session::Session::run_ended);
    QTest::mouseClick(window_->sampling_panel()->generate_button(), Qt::LeftButton);
    QVERIFY(ended.wait(30000));
    QCOMPARE(ended.at(0).at(0).value<RunState>(), RunState::kFinished);
    const auto s = window_->session()->snapshot();
    QCOMPARE(s->run->length(), int64_t(2000));
    QVERIFY(std::equal(coded.begin(), coded.begin() + 800, s->run->tokens()));

    // The view holds every sample, decoded; its waveform has the prompt's colour left of the
    // cut and the generation's right of it; the spectrogram has more than a few colours.
    ui::AudioView* view = window_->audio_view();
    QTRY_COMPARE(view->samples().size(), size_t(2000));
    QCOMPARE(view->prompt_samples(), int64_t(800));
    QCOMPARE(view->playhead(), int64_t(-1));
    QCOMPARE(view->samples()[100], audio_mulaw_decode(coded[100]));
    QVERIFY(!view->spectrogram().isNull());
    QSet<QRgb> colours;
    for (int x = 0; x < view->spectrogram().width(); ++x)
      for (int y = 0; y < view->spectrogram().height(); ++y)
        colours.insert(view->spectrogram().pixel(x, y));
    QVERIFY2(colours.size() > 20, qPrintable(QString::number(colours.size())));
    // The info line: the sine prompt is voiced in both of its 40 ms frames.
    QVERIFY2(view->info_label()->text().contains(QStringLiteral("voiced: prompt 100 %")),
             qPrintable(view->info_label()->text()));
    const QImage plot = view->plot()->grab().toImage();
    const QRect wave = view->waveform_rect();
    int prompt_px = 0, generated_px = 0;
    for (int x = wave.left(); x <= wave.right(); ++x)
      for (int y = wave.top(); y <= wave.bottom(); ++y) {
        const QColor c = plot.pixelColor(x, y);
        const bool left = x < wave.left() + wave.width() * 2 / 5;  // the prompt: 0.1 of 0.25 s
        if (c == QColor(90, 160, 255) && left) ++prompt_px;
        if (c == QColor(255, 170, 60) && !left) ++generated_px;
      }
    QVERIFY2(
        prompt_px > 100 && generated_px > 100,
        qPrintable(QStringLiteral("%1 prompt, %2 generated").arg(prompt_px).arg(generated_px)));
    // Play is on, or off with the reason in its tooltip and a visible label.
    if (!view->play_button()->isEnabled()) {
      QVERIFY(!view->play_button()->toolTip().isEmpty());
      QVERIFY(view->play_note()->isVisibleTo(view));
      QVERIFY(!view->play_note()->text().isEmpty());
    }

    // Export: a 16-bit WAV of all 2000 samples at the model's rate, named after the seed.
    QVERIFY(ui::export_default_name(*s, wav, 0).endsWith(QStringLiteral("-sine-seed0.wav")));
    const QString out = dir_.filePath(QStringLiteral("audio-out.wav"));
    QVERIFY(window_->export_to(out));
    auto back = audio_wav_read(out.toStdString());
    QVERIFY(back.has_value());
    QCOMPARE(back->rate, 8000);
    QCOMPARE(back->samples.size(), size_t(2000));
    for (size_t i = 0; i < 2000; i += 97)  // 16-bit PCM: within one step of 1/32767
      QVERIFY(std::abs(back->samples[i] -
                       audio_mulaw_decode(s->run->token(static_cast<int64_t>(i)))) < 1.5f / 32767);
  }

  // Audio attention is a track over time, not a square "image" of samples: the track holds
  // the engine's weights of the query's row per position, the time axis spans the clip's
  // seconds, and hovering the track moves the query to the position under the mouse.
  void audio_attention_is_a_time_track() {
    // The audio model and run of audio_model_with_a_wav_prompt (0.25 s at 8 kHz).
    QCOMPARE(window_->session()->snapshot()->model->config.modality.kind,
             attnscope::ModalityKind::kAudio);
    QVERIFY(window_->show_view(QStringLiteral("attention")));
    auto* v = static_cast<ui::AttentionView*>(window_->inspect_view(QStringLiteral("attention")));
    QTRY_VERIFY_WITH_TIMEOUT(v->result() && !window_->views_pending(), 30000);
    v->set_head(-1);  // the mean over heads (an earlier test may have chosen one head)
    QVERIFY(v->track()->isVisible());
    QVERIFY(!v->field_view()->isVisible());
    const session::InspectResult& r = *v->result();
    QVERIFY2(r.error.empty(), r.error.c_str());
    const std::vector<double> want = ui::attention_per_position(r.row, -1, r.n);
    QCOMPARE(v->track()->weights().size(), want.size());
    double sum = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      QVERIFY2(v->track()->weights()[i] == want[i],
               qPrintable(QStringLiteral("%1: %2 vs %3, query %4, n %5")
                              .arg(i)
                              .arg(v->track()->weights()[i])
                              .arg(want[i])
                              .arg(r.request.query)
                              .arg(r.n)));
      sum += want[i];
      if (static_cast<int64_t>(i) > r.request.query) QCOMPARE(want[i], 0.0);  // causal
    }
    QVERIFY(std::abs(sum - 1.0) < 1e-4);  // one query's attention sums to 1
    // Hover at a quarter of the track: the query becomes that position (0.25 of 2000).
    const QRect wr = v->track()->weights_rect();
    const double x = wr.left() + wr.width() * 0.25;
    QCOMPARE(v->track()->position_at(x), int64_t(500));
    QTest::mouseMove(v->track(), QPoint(static_cast<int>(x), wr.center().y()));
    QTRY_COMPARE(v->query(), v->track()->position_at(static_cast<int>(x)));
    QTRY_VERIFY_WITH_TIMEOUT(v->result()->request.query == v->query() && !window_->views_pending(),
                             30000);
    QVERIFY(v->info_label()->text().contains(QStringLiteral("t = 0.06")));
  }

  void text_model_with_a_typed_prompt() {
    const QString model = make_model(dir_, QStringLiteral("text.safetensors"), "text:64", 2, 32);
    QVERIFY(!model.isEmpty());
    QSignalSpy loaded(window_->session(), &session::Session::model_loaded);
    window_->open_model(model);
    QVERIFY(loaded.wait(10000));
    QCOMPARE(window_->current_view(), static_cast<QWidget*>(window_->text_view()));
    const QString typed = QStringLiteral("héllo, ");
    window_->prompt_panel()->set_text(typed);
    QTRY_VERIFY(window_->session()->snapshot()->run->prompt_length() == typed.toUtf8().size());
    QSignalSpy ended(window_->session(), &session::Session::run_ended);
    QTest::mouseClick(window_->sampling_panel()->generate_button(), Qt::LeftButton);
    QVERIFY(ended.wait(30000));
    ui::TextView* view = window_->text_view();
    QTRY_VERIFY(view->editor()->toPlainText().size() > typed.size());
    QVERIFY(view->editor()->toPlainText().startsWith(typed));
    QCOMPARE(view->prompt_chars(), typed.size());
    // Invalid UTF-8 shows as U+FFFD; control bytes as their pictures.
    const uint8_t odd[] = {'a', 0xFF, 0x01, 'b'};
    QCOMPARE(ui::text_view_decode(odd, 4), QStringLiteral("a\uFFFD\u2401b"));
    // A prompt longer than the model is cut to it, with a message.
    window_->prompt_panel()->set_text(QString(100, QLatin1Char('x')));
    QVERIFY(window_->prompt_panel()->message().contains(QStringLiteral("cut")));
    QTRY_VERIFY(window_->session()->snapshot()->run->prompt_length() == 64);
    window_->prompt_panel()->set_text(typed);
    QTRY_VERIFY(window_->session()->snapshot()->run->prompt_length() == typed.toUtf8().size());
    QTest::mouseClick(window_->sampling_panel()->generate_button(), Qt::LeftButton);
    QVERIFY(ended.wait(30000));
    const QString out = dir_.filePath(QStringLiteral("text-out.txt"));
    QVERIFY(window_->export_to(out));
    QFile f(out);
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QByteArray bytes = f.readAll();
    QCOMPARE(bytes.size(), 64);
    QVERIFY(bytes.startsWith(typed.toUtf8()));
  }

  // View > Show surprise: the open model's -log2 P(true value) of the whole loaded image, as
  // the engine computes it, drawn in viridis (mean of a pixel's channels / 8 bits), with the
  // image's bits/dim; pending pixels too (the surprise is of the real image).
  void surprise_view_scores_the_true_image() {
    QSignalSpy loaded(window_->session(), &session::Session::model_loaded);
    window_->open_model(tiny_);
    QVERIFY(loaded.wait(10000));
    QVERIFY(window_->open_prompt(prompt_));
    window_->prompt_panel()->set_keep_rows(4);
    QTRY_VERIFY(window_->session()->snapshot()->has_truth &&
                window_->session()->snapshot()->run->prompt_length() == 4 * 8 * 3);
    QAction* surprise = window_->findChild<QAction*>(QStringLiteral("action-surprise"));
    QVERIFY(surprise);
    surprise->trigger();
    QTRY_VERIFY_WITH_TIMEOUT(window_->session()->snapshot()->truth, 20000);
    const auto s = window_->session()->snapshot();
    const std::vector<uint8_t>& truth = window_->prompt_panel()->tokens();
    auto file = safetensors_load(tiny_.toStdString());
    QVERIFY(file.has_value());
    auto model = model_create(file->cfg, std::move(file->weights));
    QVERIFY(model.has_value());
    Tensor lp;
    QVERIFY(model_log_probs(**model, truth.data(), 192, &lp));
    QCOMPARE(s->truth->surprise_bits.size(), size_t{192});
    double sum = 0;
    for (int p = 0; p < 192; ++p) {
      const double bits = -lp.data()[p * 256 + truth[p]] / std::log(2.0);
      QVERIFY(std::abs(s->truth->surprise_bits[p] - bits) < 1e-4);
      sum += bits;
    }
    QVERIFY(std::abs(s->truth->bits_per_dim - sum / 192) < 1e-5);

    window_->findChild<QAction*>(QStringLiteral("action-mark-prompt"))->setChecked(false);
    window_->findChild<QAction*>(QStringLiteral("action-overlay"))->setChecked(false);
    render::Canvas* canvas = window_->canvas();
    canvas->fit();
    QCOMPARE(canvas->mode(), render::Canvas::Mode::kSurprise);
    const QImage frame = canvas->grabFramebuffer();
    // A kept pixel (row 1) and a pending one (row 6).
    for (const QPoint px : {QPoint(2, 1), QPoint(5, 6)}) {
      const int first = (px.y() * 8 + px.x()) * 3;
      const double mean = (s->truth->surprise_bits[first] + s->truth->surprise_bits[first + 1] +
                           s->truth->surprise_bits[first + 2]) /
                          3;
      const double t = std::round(std::clamp(mean / 8, 0.0, 1.0) * 255) / 255;
      const render::Rgb8 want = render::viridis(t);
      const QColor got = canvas_color(frame, canvas, px.x(), px.y());
      QVERIFY2(std::abs(got.red() - want.r) <= 3 && std::abs(got.green() - want.g) <= 3 &&
                   std::abs(got.blue() - want.b) <= 3,
               qPrintable(QStringLiteral("pixel (%1, %2): got %3, want (%4, %5, %6)")
                              .arg(px.x())
                              .arg(px.y())
                              .arg(got.name())
                              .arg(want.r)
                              .arg(want.g)
                              .arg(want.b)));
    }
    // A new prompt is a new true image: the score goes and is asked for again.
    window_->prompt_panel()->set_keep_rows(2);
    QTRY_VERIFY_WITH_TIMEOUT(window_->session()->snapshot()->run->prompt_length() == 2 * 8 * 3 &&
                                 window_->session()->snapshot()->truth,
                             20000);
    window_->findChild<QAction*>(QStringLiteral("action-overlay"))->setChecked(true);
    window_->findChild<QAction*>(QStringLiteral("action-mark-prompt"))->setChecked(true);
    window_->findChild<QAction*>(QStringLiteral("action-image"))->trigger();
    QCOMPARE(canvas->mode(), render::Canvas::Mode::kImage);
  }

  void four_image_samples_in_a_grid() {
    QSignalSpy loaded(window_->session(), &session::Session::model_loaded);
    window_->open_model(tiny_);
    QVERIFY(loaded.wait(10000));
    QCOMPARE(window_->current_view(), static_cast<QWidget*>(window_->canvas()));
    QVERIFY(window_->open_prompt(prompt_));
    window_->prompt_panel()->set_keep_rows(4);
    QTRY_VERIFY(window_->session()->snapshot()->run->prompt_length() == 4 * 8 * 3);
    attnscope::SamplingParams p = window_->sampling_panel()->params();
    p.seed = 21;
    window_->sampling_panel()->set_params(p);
    window_->sampling_panel()->set_samples(4);
    QSignalSpy ended(window_->session(), &session::Session::run_ended);
    QTest::mouseClick(window_->sampling_panel()->generate_button(), Qt::LeftButton);
    QVERIFY(ended.wait(30000));
    QCOMPARE(ended.at(0).at(0).value<RunState>(), RunState::kFinished);
    const auto s = window_->session()->snapshot();
    QCOMPARE(s->samples.size(), size_t(4));
    // ceil(sqrt 4) = 2 columns of 8 pixels with a 2-pixel gap.
    QCOMPARE(render::Canvas::grid_size(*s), QSize(18, 18));

    auto file = safetensors_load(tiny_.toStdString());
    QVERIFY(file.has_value());
    auto model = model_create(file->cfg, std::move(file->weights));
    QVERIFY(model.has_value());
    window_->findChild<QAction*>(QStringLiteral("action-mark-prompt"))->setChecked(false);
    window_->findChild<QAction*>(QStringLiteral("action-overlay"))->setChecked(false);
    render::Canvas* canvas = window_->canvas();
    canvas->fit();
    const QImage frame = canvas->grabFramebuffer();
    for (int k = 0; k < 4; ++k) {
      GenerateRequest req;
      req.prompt.assign(s->run->tokens(), s->run->tokens() + 96);
      req.sampling = p;
      req.sampling.seed = 21 + static_cast<uint64_t>(k);
      auto expected = generate(**model, req);
      QVERIFY(expected.has_value());
      const auto& run = s->samples[static_cast<size_t>(k)];
      QVERIFY2(std::equal(expected->begin(), expected->end(), run->tokens()),
               qPrintable(QStringLiteral("sample %1 is not seed %2").arg(k).arg(21 + k)));
      // Its pixel (3, 6) on the canvas, in its grid cell.
      const int x = (k % 2) * 10 + 3, y = (k / 2) * 10 + 6;
      const int64_t at = (6 * 8 + 3) * 3;
      QCOMPARE(canvas_color(frame, canvas, x, y),
               QColor(run->token(at), run->token(at + 1), run->token(at + 2)));
    }
    QCOMPARE(canvas_color(frame, canvas, 8, 3), QColor(0, 0, 0));  // the gap
    window_->findChild<QAction*>(QStringLiteral("action-overlay"))->setChecked(true);
    window_->findChild<QAction*>(QStringLiteral("action-mark-prompt"))->setChecked(true);

    // The export is the grid, as attnscope-cli generate --samples writes it.
    QVERIFY(ui::export_default_name(*s, prompt_, 21).endsWith(QStringLiteral("-seeds21-24.png")));
    const QString out = dir_.filePath(QStringLiteral("grid.png"));
    QVERIFY(window_->export_to(out));
    const QImage grid(out);
    QCOMPARE(grid.size(), QSize(18, 18));
    const auto& last = s->samples[3];
    QCOMPARE(grid.pixelColor(13, 16), QColor(last->token(153), last->token(154), last->token(155)));
    QCOMPARE(QImage(dir_.filePath(QStringLiteral("grid-8x.png"))).size(), QSize(144, 144));
    window_->sampling_panel()->set_samples(1);
  }

  // Paint pixels on the prompt preview with the mouse; only they are regenerated.
  void painted_mask_regenerates_only_painted_pixels() {
    QSignalSpy loaded(window_->session(), &session::Session::model_loaded);
    window_->open_model(tiny_);
    QVERIFY(loaded.wait(10000));
    QVERIFY(window_->open_prompt(prompt_));
    ui::PromptPanel* panel = window_->prompt_panel();
    QWidget* preview = panel->preview();
    QVERIFY(preview->isVisible());
    auto* paint_mode = panel->findChild<QPushButton*>(QStringLiteral("paint-mask"));
    QVERIFY(paint_mode && paint_mode->isEnabled());
    QTest::mouseClick(paint_mode, Qt::LeftButton);
    QVERIFY(paint_mode->isChecked());
    auto drag_to = [&](int x, int y) {
      QMouseEvent move(QEvent::MouseMove, QPointF(panel->preview_point(x, y)),
                       preview->mapToGlobal(QPointF(panel->preview_point(x, y))), Qt::NoButton,
                       Qt::LeftButton, Qt::NoModifier);
      QApplication::sendEvent(preview, &move);
    };
    // A drag over (2..4, 1) with a 1-pixel brush.
    QTest::mousePress(preview, Qt::LeftButton, {}, panel->preview_point(2, 1));
    drag_to(3, 1);
    drag_to(4, 1);
    QTest::mouseRelease(preview, Qt::LeftButton, {}, panel->preview_point(4, 1));
    // A 2-pixel brush at (5, 5) paints (5..6, 5..6); the right button erases (6, 6).
    panel->findChild<QSpinBox*>(QStringLiteral("paint-brush"))->setValue(2);
    QTest::mouseClick(preview, Qt::LeftButton, {}, panel->preview_point(5, 5));
    panel->findChild<QSpinBox*>(QStringLiteral("paint-brush"))->setValue(1);
    QTest::mouseClick(preview, Qt::RightButton, {}, panel->preview_point(6, 6));
    QVERIFY(panel->painted_mode());
    QCOMPARE(panel->painted_pixels(), 6);
    const std::vector<uint8_t> keep = panel->keep_mask();
    QCOMPARE(keep.size(), size_t(8 * 8 * 3));
    const std::vector<std::pair<int, int>> painted = {{2, 1}, {3, 1}, {4, 1},
                                                      {5, 5}, {6, 5}, {5, 6}};
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x) {
        const bool is_painted =
            std::find(painted.begin(), painted.end(), std::pair(x, y)) != painted.end();
        for (int ch = 0; ch < 3; ++ch)
          QCOMPARE(keep[static_cast<size_t>((y * 8 + x) * 3 + ch)], uint8_t(is_painted ? 0 : 1));
      }
    QTRY_VERIFY(window_->session()->snapshot()->run->has_keep_mask() &&
                window_->session()->snapshot()->run->prompt_length() == (8 + 2) * 3);

    // Before the run the canvas shows the painted pixels pending, every other pixel kept.
    window_->findChild<QAction*>(QStringLiteral("action-mark-prompt"))->setChecked(false);
    window_->findChild<QAction*>(QStringLiteral("action-overlay"))->setChecked(false);
    render::Canvas* canvas = window_->canvas();
    canvas->fit();
    QImage frame = canvas->grabFramebuffer();
    for (const auto& [x, y] : painted) {
      const QColor c = canvas_color(frame, canvas, x, y);
      QVERIFY(c.red() == c.green() && c.green() == c.blue() && (c.red() == 41 || c.red() == 56));
    }
    QCOMPARE(canvas_color(frame, canvas, 7, 7), QColor(224, 224, 200));

    attnscope::SamplingParams p = window_->sampling_panel()->params();
    p.seed = 33;
    window_->sampling_panel()->set_params(p);
    QSignalSpy ended(window_->session(), &session::Session::run_ended);
    QTest::mouseClick(window_->sampling_panel()->generate_button(), Qt::LeftButton);
    QVERIFY(ended.wait(30000));
    QCOMPARE(ended.at(0).at(0).value<RunState>(), RunState::kFinished);
    const auto s = window_->session()->snapshot();
    const std::vector<uint8_t>& image = panel->tokens();
    for (size_t i = 0; i < keep.size(); ++i)
      if (keep[i]) QCOMPARE(s->run->token(static_cast<int64_t>(i)), image[i]);

    auto file = safetensors_load(tiny_.toStdString());
    QVERIFY(file.has_value());
    auto model = model_create(file->cfg, std::move(file->weights));
    QVERIFY(model.has_value());
    GenerateRequest req;
    req.prompt = image;
    req.keep = keep;
    req.length = 8 * 8 * 3;
    req.sampling = p;
    auto expected = generate(**model, req);
    QVERIFY(expected.has_value());
    QVERIFY(std::equal(expected->begin(), expected->end(), s->run->tokens()));
    frame = canvas->grabFramebuffer();
    QCOMPARE(canvas_color(frame, canvas, 2, 1),
             QColor(s->run->token(30), s->run->token(31), s->run->token(32)));
    if (const QString dir = qEnvironmentVariable("ATTNSCOPE_VIEW_DIR"); !dir.isEmpty()) {
      QVERIFY(window_->grab().save(QDir(dir).filePath(QStringLiteral("view-mask.png"))));
      QVERIFY(panel->grab().save(QDir(dir).filePath(QStringLiteral("view-mask-panel.png"))));
    }
    window_->findChild<QAction*>(QStringLiteral("action-overlay"))->setChecked(true);
    window_->findChild<QAction*>(QStringLiteral("action-mark-prompt"))->setChecked(true);

    // Clear mask: back to the rows to keep.
    QTest::mouseClick(panel->findChild<QPushButton*>(QStringLiteral("clear-mask")), Qt::LeftButton);
    QVERIFY(!panel->painted_mode());
    QCOMPARE(panel->painted_pixels(), 0);
    QVERIFY(panel->keep_mask().empty());
    const int64_t rows = panel->keep_rows();
    QTRY_VERIFY(!window_->session()->snapshot()->run->has_keep_mask() &&
                window_->session()->snapshot()->run->prompt_length() == rows * 8 * 3);
    QTest::mouseClick(paint_mode, Qt::LeftButton);
    QVERIFY(!paint_mode->isChecked());
  }

 private:
  QTemporaryDir dir_;
  std::unique_ptr<ui::MainWindow> window_;
  QString tiny_, prompt_;
};

int main(int argc, char** argv) {
  if (qEnvironmentVariableIsSet("ATTNSCOPE_NO_XVFB") || qEnvironmentVariableIsEmpty("DISPLAY")) {
    std::printf("SKIP: test_gui needs an X display (install xvfb for xvfb-run)\n");
    return 0;
  }
  // Settings of this run stay in a throw-away folder.
  QTemporaryDir config;
  qputenv("XDG_CONFIG_HOME", config.path().toLocal8Bit());
  render::canvas_set_default_surface_format();
  QApplication app(argc, argv);
  QApplication::setOrganizationName(QStringLiteral("attnscope-test"));
  QApplication::setApplicationName(QStringLiteral("test_gui"));
  TestGui tc;
  return QTest::qExec(&tc, argc, argv);
}

#include "test_gui.moc"
