// attnscope: the GUI. Parses the scriptable start (--model, --prompt, --keep-rows, --seed,
// --autorun, --view, --screenshot), opens the main window and, when asked, runs the
// generation to its end, writes a screenshot of the whole window and exits.
#include <QApplication>
#include <QDir>
#include <QFileInfo>
#include <QTimer>
#include <cstdio>
#include <optional>

#include "render/canvas.h"
#include "ui/main_window.h"
#include "ui/prompt_panel.h"
#include "ui/sampling_panel.h"

namespace {

constexpr const char* kUsage =
    "usage: attnscope [--model M] [--prompt P] [--keep-rows K] [--seed S] [--autorun] "
    "[--view canvas] [--screenshot FILE]";

struct Options {
  QString model, prompt, view = QStringLiteral("canvas"), screenshot;
  std::optional<int> keep_rows;
  std::optional<qulonglong> seed;
  bool autorun = false;
};

// Parses argv; on a bad argument, the one-line message in *error.
std::optional<Options> parse(const QStringList& args, QString* error) {
  Options o;
  for (int i = 1; i < args.size(); ++i) {
    const QString& a = args[i];
    auto value = [&](QString* out) {
      if (i + 1 >= args.size()) {
        *error = a + QStringLiteral(" needs a value");
        return false;
      }
      *out = args[++i];
      return true;
    };
    QString v;
    bool ok = true;
    if (a == QLatin1String("--model")) {
      if (!value(&o.model)) return std::nullopt;
    } else if (a == QLatin1String("--prompt")) {
      if (!value(&o.prompt)) return std::nullopt;
    } else if (a == QLatin1String("--screenshot")) {
      if (!value(&o.screenshot)) return std::nullopt;
    } else if (a == QLatin1String("--view")) {
      if (!value(&o.view)) return std::nullopt;
    } else if (a == QLatin1String("--keep-rows")) {
      if (!value(&v)) return std::nullopt;
      const int k = v.toInt(&ok);
      if (!ok || k < 0) {
        *error = QStringLiteral("--keep-rows takes a whole number >= 0, not '%1'").arg(v);
        return std::nullopt;
      }
      o.keep_rows = k;
    } else if (a == QLatin1String("--seed")) {
      if (!value(&v)) return std::nullopt;
      const qulonglong s = v.toULongLong(&ok);
      if (!ok || s > static_cast<qulonglong>(std::numeric_limits<int>::max())) {
        *error = QStringLiteral("--seed takes a whole number 0..2147483647, not '%1'").arg(v);
        return std::nullopt;
      }
      o.seed = s;
    } else if (a == QLatin1String("--autorun")) {
      o.autorun = true;
    } else if (a == QLatin1String("--help") || a == QLatin1String("-h")) {
      *error = QString::fromLatin1(kUsage);
      return std::nullopt;
    } else {
      *error = QStringLiteral("unknown argument '%1' (%2)").arg(a, QString::fromLatin1(kUsage));
      return std::nullopt;
    }
  }
  if (o.view != QLatin1String("canvas")) {
    *error = QStringLiteral("--view '%1' is not available; this build has: canvas").arg(o.view);
    return std::nullopt;
  }
  if (o.autorun && o.model.isEmpty()) {
    *error = QStringLiteral("--autorun needs --model");
    return std::nullopt;
  }
  if (o.keep_rows && o.prompt.isEmpty()) {
    *error = QStringLiteral("--keep-rows needs --prompt");
    return std::nullopt;
  }
  if (!o.screenshot.isEmpty()) {
    const QFileInfo f(o.screenshot);
    if (!f.absoluteDir().exists()) {
      *error = QStringLiteral("--screenshot: folder '%1' does not exist").arg(f.absolutePath());
      return std::nullopt;
    }
    const QStringList formats = {QStringLiteral("png"), QStringLiteral("jpg"),
                                 QStringLiteral("jpeg"), QStringLiteral("bmp"),
                                 QStringLiteral("ppm")};
    if (!formats.contains(f.suffix().toLower())) {
      *error = QStringLiteral("--screenshot '%1': use .png, .jpg, .bmp or .ppm").arg(o.screenshot);
      return std::nullopt;
    }
  }
  return o;
}

// The bundled model, when the install or the source tree has one.
QString default_model() {
  const QStringList candidates = {
      QCoreApplication::applicationDirPath() + QStringLiteral("/assets/models/default.safetensors"),
      QStringLiteral(ATTNSCOPE_ASSETS_DIR "/models/default.safetensors")};
  for (const QString& c : candidates)
    if (QFileInfo::exists(c)) return c;
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  // Arguments first, so that a bad one is one line and exit 2 even without a display.
  QStringList args;
  for (int i = 0; i < argc; ++i) args << QString::fromLocal8Bit(argv[i]);
  QString error;
  const std::optional<Options> opt = parse(args, &error);
  if (!opt) {
    std::fprintf(stderr, "attnscope: %s\n", qPrintable(error));
    return 2;
  }
  render::canvas_set_default_surface_format();
  QApplication app(argc, argv);
  QApplication::setOrganizationName(QStringLiteral("attnscope"));
  QApplication::setApplicationName(QStringLiteral("attnscope"));
  const bool scripted = !opt->screenshot.isEmpty();

  ui::MainWindow window;
  window.set_script_mode(scripted);
  QObject::connect(&window, &ui::MainWindow::script_error, &app, [](const QString& message) {
    std::fprintf(stderr, "attnscope: %s\n", qPrintable(message));
    QCoreApplication::exit(1);
  });
  if (opt->seed) {
    attnscope::SamplingParams p = window.sampling_panel()->params();
    p.seed = *opt->seed;
    window.sampling_panel()->set_params(p);
  }
  if (scripted) window.resize(1600, 1000);
  window.show();

  auto take_screenshot = [&] {
    // Let the last snapshot reach every view, then grab (which renders the GL canvas too).
    QTimer::singleShot(100, &window, [&] {
      if (window.grab().save(opt->screenshot)) {
        QCoreApplication::exit(0);
      } else {
        std::fprintf(stderr, "attnscope: cannot write the screenshot %s\n",
                     qPrintable(opt->screenshot));
        QCoreApplication::exit(1);
      }
    });
  };

  auto* s = window.session();
  QObject::connect(s, &session::Session::model_loaded, &window, [&] {
    // A prompt that cannot be read has been reported; nothing is generated without it.
    if (!opt->prompt.isEmpty() && !window.open_prompt(opt->prompt)) return;
    if (opt->keep_rows) window.prompt_panel()->set_keep_rows(*opt->keep_rows);
    if (opt->autorun)
      window.generate();
    else if (scripted)
      take_screenshot();
  });
  if (scripted) QObject::connect(s, &session::Session::run_ended, &window, take_screenshot);

  const QString model = opt->model.isEmpty() ? default_model() : opt->model;
  if (!model.isEmpty()) {
    window.open_model(model);
  } else {
    if (!opt->prompt.isEmpty()) window.open_prompt(opt->prompt);
    if (scripted) take_screenshot();
  }
  return app.exec();
}
