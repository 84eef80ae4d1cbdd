// The window on a small and a large screen (run by CTest under Xvfb at 1280x720 and 1920x1080):
// it opens inside the screen's available geometry, Generate, Stop and the status bar lie inside
// it, and a long status line after a run does not widen it. ATTNSCOPE_SHOT (a PNG path) keeps a
// grab of the window for a person to look at.
#include <QApplication>
#include <QProgressBar>
#include <QPushButton>
#include <QScreen>
#include <QStatusBar>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QtTest>
#include <cstdio>

#include "imgui/overlay.h"
#include "render/canvas.h"
#include "session/session.h"
#include "ui/main_window.h"
#include "ui/model_panel.h"
#include "ui/sampling_panel.h"

using namespace attnscope;

namespace {

// w's rectangle in the window's coordinates.
QRect in_window(const QWidget* w, const QWidget* window) {
  return QRect(w->mapTo(window, QPoint(0, 0)), w->size());
}

}  // namespace

class TestGuiFit : public QObject {
  Q_OBJECT

 private slots:
  void window_fits_the_screen() {
    ui::MainWindow window;
    window.show();
    QVERIFY(QTest::qWaitForWindowExposed(&window));
    const QRect avail = window.screen()->availableGeometry();
    qInfo("screen %dx%d, window %dx%d", avail.width(), avail.height(), window.width(),
          window.height());
    QVERIFY2(avail.contains(window.geometry()),
             qPrintable(QString("window %1x%2 at %3,%4 outside the screen %5x%6")
                            .arg(window.width())
                            .arg(window.height())
                            .arg(window.x())
                            .arg(window.y())
                            .arg(avail.width())
                            .arg(avail.height())));
    const QRect inside = window.rect();
    QVERIFY(inside.contains(in_window(window.sampling_panel()->generate_button(), &window)));
    QVERIFY(inside.contains(in_window(window.sampling_panel()->stop_button(), &window)));
    QVERIFY(window.statusBar()->isVisible());
    QVERIFY(inside.contains(in_window(window.statusBar(), &window)));

    // A run of the bundled model: the status line grows long, the window keeps its width.
    const int width = window.width();
    window.open_model(QStringLiteral(ATTNSCOPE_ASSETS "/models/icons.safetensors"));
    QTRY_VERIFY_WITH_TIMEOUT(window.sampling_panel()->generate_button()->isEnabled(), 20000);
    window.sampling_panel()->set_samples(4);  // a 2 x 2 grid, the largest picture
    window.sampling_panel()->generate_button()->click();
    QTRY_VERIFY_WITH_TIMEOUT(!window.sampling_panel()->generate_button()->isEnabled(), 10000);
    QTRY_VERIFY_WITH_TIMEOUT(window.sampling_panel()->generate_button()->isEnabled(), 60000);
    QTest::qWait(200);
    QCOMPARE(window.width(), width);
    QVERIFY(avail.contains(window.geometry()));
    // No overlay window (inspector; statistics with the legend) covers a sample of the grid,
    // nor one another.
    const render::Canvas* canvas = window.canvas();
    const QSize grid = render::Canvas::grid_size(*window.session()->snapshot());
    QCOMPARE(grid, QSize(66, 66));
    const QRectF image =
        canvas->pixel_rect(0, 0).united(canvas->pixel_rect(grid.width() - 1, grid.height() - 1));
    QCOMPARE(canvas->overlay_rects().size(), size_t{2});
    qInfo("image %.0fx%.0f at zoom %.0f in a %dx%d canvas", image.width(), image.height(),
          canvas->zoom(), canvas->width(), canvas->height());
    QVERIFY(canvas->zoom() >= 3);  // still a picture, not a thumbnail
    for (const QRectF& r : canvas->overlay_rects())
      QVERIFY2(!r.intersects(image),
               qPrintable(QString("overlay %1x%2 at %3,%4 covers the image %5x%6 at %7,%8")
                              .arg(r.width())
                              .arg(r.height())
                              .arg(r.x())
                              .arg(r.y())
                              .arg(image.width())
                              .arg(image.height())
                              .arg(image.x())
                              .arg(image.y())));
    QVERIFY(!canvas->overlay_rects()[0].intersects(canvas->overlay_rects()[1]));
    // The overlays move: dragging the statistics window's title bar takes it along and it
    // stays there; its "Back to the corner" button pins it back to its corner.
    {
      auto* c = const_cast<render::Canvas*>(canvas);
      const QRectF before = canvas->overlay_rects()[1];
      QPoint at(static_cast<int>(before.left()) + 40, static_cast<int>(before.top()) + 6);
      const QPoint delta(120, -80);
      QTest::mouseMove(c, at);
      QTest::qWait(50);
      QTest::mousePress(c, Qt::LeftButton, Qt::NoModifier, at);
      QTest::qWait(50);
      for (int i = 1; i <= 8; ++i) {
        QTest::mouseMove(c, at + delta * i / 8);
        QTest::qWait(30);
      }
      QTest::mouseRelease(c, Qt::LeftButton, Qt::NoModifier, at + delta);
      QTest::qWait(100);
      QVERIFY(overlay::moved(1));
      const QRectF after = canvas->overlay_rects()[1];
      QVERIFY2((after.topLeft() - before.topLeft() - QPointF(delta)).manhattanLength() < 6,
               qPrintable(QString("from %1,%2 to %3,%4")
                              .arg(before.left())
                              .arg(before.top())
                              .arg(after.left())
                              .arg(after.top())));
      QTest::qWait(200);  // still there a while later
      // ATTNSCOPE_TEST_SHOTS=DIR keeps a picture of the moved window, to look at.
      if (const QString dir = qEnvironmentVariable("ATTNSCOPE_TEST_SHOTS"); !dir.isEmpty())
        window.grab().save(dir + QStringLiteral("/overlay-moved.png"));
      QVERIFY((canvas->overlay_rects()[1].topLeft() - after.topLeft()).manhattanLength() < 1);
      // The button "Back to the corner" is the moved window's first line: below the title
      // bar (font 13 + frame padding 2 x 3) and the window padding (8), ImGui's defaults.
      const QPoint button(static_cast<int>(after.left()) + 8 + 30,
                          static_cast<int>(after.top()) + 19 + 8 + 6);
      QTest::mouseMove(c, button);
      QTest::qWait(40);
      QTest::mousePress(c, Qt::LeftButton, Qt::NoModifier, button);
      QTest::qWait(40);
      QTest::mouseRelease(c, Qt::LeftButton, Qt::NoModifier, button);
      QTest::qWait(100);
      QVERIFY(!overlay::moved(1));
      // Its corner is the bottom-left one (its height follows its contents).
      QTRY_VERIFY2(
          (canvas->overlay_rects()[1].bottomLeft() - before.bottomLeft()).manhattanLength() < 2,
          qPrintable(QString("at %1,%2, pinned at %3,%4")
                         .arg(canvas->overlay_rects()[1].left())
                         .arg(canvas->overlay_rects()[1].bottom())
                         .arg(before.left())
                         .arg(before.bottom())));
    }
    // Every figure of the Model panel's memory table fits its column on one line.
    const QTableWidget* mem = window.model_panel()->memory_table();
    const QFontMetrics fm(mem->font());
    for (int r = 0; r < mem->rowCount(); ++r)
      for (int c = 0; c < mem->columnCount(); ++c) {
        const QString text = mem->item(r, c)->text();
        QVERIFY2(fm.horizontalAdvance(text) + 6 <= mem->columnWidth(c),
                 qPrintable(QString("'%1' (%2 px) in a %3 px column")
                                .arg(text)
                                .arg(fm.horizontalAdvance(text))
                                .arg(mem->columnWidth(c))));
      }
    if (const QByteArray shot = qgetenv("ATTNSCOPE_SHOT"); !shot.isEmpty())
      QVERIFY(window.grab().save(QString::fromLocal8Bit(shot)));
  }
};

int main(int argc, char** argv) {
  if (qEnvironmentVariableIsSet("ATTNSCOPE_NO_XVFB") || qEnvironmentVariableIsEmpty("DISPLAY")) {
    std::printf("SKIP: test_gui_fit needs an X display (install xvfb for xvfb-run)\n");
    return 77;
  }
  QTemporaryDir config;  // no remembered geometry: the first start
  qputenv("XDG_CONFIG_HOME", config.path().toLocal8Bit());
  render::canvas_set_default_surface_format();
  QApplication app(argc, argv);
  QApplication::setOrganizationName(QStringLiteral("attnscope-test"));
  QApplication::setApplicationName(QStringLiteral("test_gui_fit"));
  TestGuiFit tc;
  return QTest::qExec(&tc, argc, argv);
}

#include "test_gui_fit.moc"
