// attnscope: the GUI. Parses the scriptable start (--model, --compare, --prompt, --keep-rows,
// --keep-seconds, --prompt-text, --seed, --samples, --temperature, --top-p, --device,
// --precision, --autorun, --view,
// --screenshot), opens the main window and, when asked, runs the generation (or the comparison) to
// its end, writes a screenshot and exits.
#include <unistd.h>

#include <QApplication>
#include <QBuffer>
#include <QComboBox>
#include <QDir>
#include <QFileInfo>
#include <QOpenGLContext>
#include <QSpinBox>
#include <QStandardPaths>
#include <QTimer>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "attnscope/atomic_file.h"
#include "render/canvas.h"
#include "ui/compare_view.h"
#include "ui/main_window.h"
#include "ui/prompt_panel.h"
#include "ui/sampling_panel.h"

namespace {

constexpr const char* kUsage =
    "usage: attnscope [--model M] [--compare M2 ...] [--compare-prompt P ...] [--seeds K] "
    "[--prompt P] [--keep-rows K | --keep-seconds S] "
    "[--prompt-text T] [--seed S] [--samples N] [--temperature T] [--top-p P] "
    "[--device cpu|cuda] [--precision f32|tf32|bf16] [--latent-cache exact|cached] [--autorun] "
    "[--surprise] [--view "
    "canvas|audio|text|attention|pattern|lsh|memory|step|compare] "
    "[--screenshot FILE]";

const QStringList kViews = {
    QStringLiteral("canvas"),    QStringLiteral("audio"),   QStringLiteral("text"),
    QStringLiteral("attention"), QStringLiteral("pattern"), QStringLiteral("lsh"),
    QStringLiteral("memory"),    QStringLiteral("step"),    QStringLiteral("compare")};

// The view a modality is shown in.
QString view_for(attnscope::ModalityKind kind) {
  switch (kind) {
    case attnscope::ModalityKind::kAudio:
      return QStringLiteral("audio");
    case attnscope::ModalityKind::kText:
      return QStringLiteral("text");
    default:
      return QStringLiteral("canvas");
  }
}

struct Options {
  QString model, prompt, view = QStringLiteral("canvas"), screenshot;
  QString export_path;          // the view's own export (Ctrl+E) once the run ends, beside the shot
  QStringList compare;          // models added to the Compare grid, each --compare once
  QStringList compare_prompts;  // its prompts besides the current one
  std::optional<int> seeds;     // its completions per model and prompt
  std::optional<int> keep_rows;
  std::optional<double> keep_seconds;
  std::optional<QString> prompt_text;
  std::optional<int> samples;
  std::optional<qulonglong> seed;
  std::optional<double> temperature, top_p;
  bool cuda = false;
  std::optional<attnscope::CudaPrecision> precision;
  std::optional<attnscope::PerceiverDecode> latent_cache;  // Perceiver AR models only
  bool autorun = false;
  bool surprise = false;  // Compare: the surprise overlay on
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
    } else if (a == QLatin1String("--compare")) {
      if (!value(&v)) return std::nullopt;
      o.compare << v;
    } else if (a == QLatin1String("--compare-prompt")) {
      if (!value(&v)) return std::nullopt;
      o.compare_prompts << v;
    } else if (a == QLatin1String("--seeds")) {
      if (!value(&v)) return std::nullopt;
      const int k = v.toInt(&ok);
      if (!ok || k < 1 || k > session::Session::kCompareSeedsMax) {
        *error = QStringLiteral("--seeds takes a whole number 1..%1, not '%2'")
                     .arg(session::Session::kCompareSeedsMax)
                     .arg(v);
        return std::nullopt;
      }
      o.seeds = k;
    } else if (a == QLatin1String("--prompt")) {
      if (!value(&o.prompt)) return std::nullopt;
    } else if (a == QLatin1String("--screenshot")) {
      if (!value(&o.screenshot)) return std::nullopt;
    } else if (a == QLatin1String("--export")) {
      if (!value(&o.export_path)) return std::nullopt;
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
    } else if (a == QLatin1String("--keep-seconds")) {
      if (!value(&v)) return std::nullopt;
      const double k = v.toDouble(&ok);
      if (!ok || !(k >= 0)) {
        *error = QStringLiteral("--keep-seconds takes a number of seconds >= 0, not '%1'").arg(v);
        return std::nullopt;
      }
      o.keep_seconds = k;
    } else if (a == QLatin1String("--prompt-text")) {
      if (!value(&v)) return std::nullopt;
      o.prompt_text = v;
    } else if (a == QLatin1String("--samples")) {
      if (!value(&v)) return std::nullopt;
      const int n = v.toInt(&ok);
      if (!ok || n < 1 || n > 64) {
        *error = QStringLiteral("--samples takes a whole number 1..64, not '%1'").arg(v);
        return std::nullopt;
      }
      o.samples = n;
    } else if (a == QLatin1String("--seed")) {
      if (!value(&v)) return std::nullopt;
      const qulonglong s = v.toULongLong(&ok);
      if (!ok || s > static_cast<qulonglong>(std::numeric_limits<int>::max())) {
        *error = QStringLiteral("--seed takes a whole number 0..2147483647, not '%1'").arg(v);
        return std::nullopt;
      }
      o.seed = s;
    } else if (a == QLatin1String("--temperature") || a == QLatin1String("--top-p")) {
      if (!value(&v)) return std::nullopt;
      const double x = v.toDouble(&ok);
      const bool temp = a == QLatin1String("--temperature");
      if (!ok || !(x > 0) || x > (temp ? 10.0 : 1.0)) {
        *error = temp ? QStringLiteral("--temperature takes a number in (0, 10], not '%1'").arg(v)
                      : QStringLiteral("--top-p takes a number in (0, 1], not '%1'").arg(v);
        return std::nullopt;
      }
      (temp ? o.temperature : o.top_p) = x;
    } else if (a == QLatin1String("--device")) {
      if (!value(&v)) return std::nullopt;
      if (v != QLatin1String("cpu") && v != QLatin1String("cuda")) {
        *error = QStringLiteral("--device takes cpu or cuda, not '%1'").arg(v);
        return std::nullopt;
      }
      o.cuda = v == QLatin1String("cuda");
    } else if (a == QLatin1String("--precision")) {
      if (!value(&v)) return std::nullopt;
      auto p = attnscope::cuda_precision_from_name(v.toStdString());
      if (!p) {
        *error =
            QStringLiteral("--precision: %1").arg(QString::fromStdString(p.status().message()));
        return std::nullopt;
      }
      o.precision = *p;
    } else if (a == QLatin1String("--latent-cache")) {
      if (!value(&v)) return std::nullopt;
      auto d = attnscope::perceiver_decode_from_name(v.toStdString());
      if (!d) {
        *error =
            QStringLiteral("--latent-cache: %1").arg(QString::fromStdString(d.status().message()));
        return std::nullopt;
      }
      o.latent_cache = *d;
    } else if (a == QLatin1String("--autorun")) {
      o.autorun = true;
    } else if (a == QLatin1String("--surprise")) {
      o.surprise = true;
    } else {
      *error = QStringLiteral("unknown argument '%1' (%2)").arg(a, QString::fromLatin1(kUsage));
      return std::nullopt;
    }
  }
  if (!kViews.contains(o.view)) {
    *error = QStringLiteral("--view '%1' is not available; this build has: %2")
                 .arg(o.view, kViews.join(QStringLiteral(", ")));
    return std::nullopt;
  }
  if (o.precision && !o.cuda) {
    *error = QStringLiteral("--precision applies to --device cuda");
    return std::nullopt;
  }
  if (o.keep_rows && o.keep_seconds) {
    *error = QStringLiteral("--keep-rows is for image models, --keep-seconds for audio: not both");
    return std::nullopt;
  }
  if (o.keep_seconds && o.prompt.isEmpty()) {
    *error = QStringLiteral("--keep-seconds needs --prompt (a WAV clip)");
    return std::nullopt;
  }
  if (o.autorun && o.model.isEmpty()) {
    *error = QStringLiteral("--autorun needs --model");
    return std::nullopt;
  }
  if (!o.compare.isEmpty() && o.model.isEmpty()) {
    *error = QStringLiteral("--compare needs --model (the model it is compared with)");
    return std::nullopt;
  }
  if (o.compare.size() > session::Session::kCompareModelsMax) {
    *error = QStringLiteral("--compare: at most %1 models besides --model")
                 .arg(session::Session::kCompareModelsMax);
    return std::nullopt;
  }
  if ((!o.compare_prompts.isEmpty() || o.seeds) && o.compare.isEmpty()) {
    *error =
        QStringLiteral("--compare-prompt and --seeds are for the Compare grid: give --compare");
    return std::nullopt;
  }
  if (o.compare_prompts.size() > session::Session::kComparePromptsMax) {
    *error = QStringLiteral("--compare-prompt: at most %1 prompts")
                 .arg(session::Session::kComparePromptsMax);
    return std::nullopt;
  }
  if (!o.export_path.isEmpty()) {
    if (o.screenshot.isEmpty() || o.view == QLatin1String("canvas") ||
        o.view == QLatin1String("audio") || o.view == QLatin1String("text")) {
      *error = QStringLiteral(
          "--export writes an inspection or Compare tab's picture and data (as Ctrl+E) with "
          "--screenshot and --view attention|pattern|lsh|memory|step|compare");
      return std::nullopt;
    }
    if (!QFileInfo(o.export_path).absoluteDir().exists() ||
        !o.export_path.endsWith(QLatin1String(".png"), Qt::CaseInsensitive)) {
      *error = QStringLiteral("--export takes FILE.png in a folder that exists, not '%1'")
                   .arg(o.export_path);
      return std::nullopt;
    }
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

// The canvas is an OpenGL widget: a platform without a display (no DISPLAY or WAYLAND_DISPLAY)
// or without OpenGL (Qt's offscreen and minimal platforms) cannot show it. For a scripted
// screenshot, re-run this program under xvfb-run when it is installed; otherwise say how to
// run it. Returns the exit code to stop with, or -1 to go on.
int ensure_gl_display(int argc, char** argv, bool screenshot) {
  const QByteArray platform = qgetenv("QT_QPA_PLATFORM");
  const bool no_gl_platform = platform.startsWith("offscreen") || platform.startsWith("minimal");
  const bool no_display = platform.isEmpty() && qEnvironmentVariableIsEmpty("DISPLAY") &&
                          qEnvironmentVariableIsEmpty("WAYLAND_DISPLAY");
  if (!no_gl_platform && !no_display) return -1;
  const char* why = no_gl_platform ? "Qt's offscreen and minimal platforms have no OpenGL, "
                                     "which the canvas needs"
                                   : "there is no display (DISPLAY and WAYLAND_DISPLAY are unset)";
  const QString xvfb = QStandardPaths::findExecutable(QStringLiteral("xvfb-run"));
  if (screenshot && !xvfb.isEmpty() && qEnvironmentVariableIsEmpty("ATTNSCOPE_UNDER_XVFB")) {
    std::fprintf(stderr, "attnscope: %s: taking the screenshot under xvfb-run\n", why);
    std::fflush(stderr);
    qputenv("ATTNSCOPE_UNDER_XVFB", "1");
    qputenv("QT_QPA_PLATFORM", "xcb");
    std::vector<std::string> words = {
        xvfb.toStdString(), "-a", "-s", "-screen 0 1920x1080x24",
        QFileInfo(QStringLiteral("/proc/self/exe")).canonicalFilePath().toStdString()};
    for (int i = 1; i < argc; ++i) words.emplace_back(argv[i]);
    std::vector<char*> cargv;
    for (std::string& w : words) cargv.push_back(w.data());
    cargv.push_back(nullptr);
    execv(cargv[0], cargv.data());
    std::fprintf(stderr, "attnscope: could not run xvfb-run: %s\n", std::strerror(errno));
    return 1;
  }
  std::fprintf(stderr,
               "attnscope: %s. Run it on a desktop, or headless under Xvfb: xvfb-run -a "
               "attnscope ...%s (apt-get install xvfb); attnscope-cli generate writes "
               "completions without a window.\n",
               why, screenshot ? "" : " --screenshot FILE");
  return 2;
}

// Why the platform Qt loaded cannot create an OpenGL context, or empty.
QString gl_unavailable() {
  QOpenGLContext probe;
  if (probe.create()) return {};
  return QStringLiteral(
             "the '%1' platform cannot create an OpenGL context, which the canvas "
             "needs; run under Xvfb (xvfb-run -a attnscope ...) or on a desktop")
      .arg(QGuiApplication::platformName());
}

int main(int argc, char** argv) {
  attnscope::mem_retain_freed_blocks();
  // Arguments first, so that a bad one is one line and exit 2 even without a display.
  QStringList args;
  for (int i = 0; i < argc; ++i) args << QString::fromLocal8Bit(argv[i]);
  if (args.contains(QLatin1String("--help")) || args.contains(QLatin1String("-h"))) {
    std::printf("%s\n", kUsage);
    return 0;
  }
  QString error;
  const std::optional<Options> opt = parse(args, &error);
  if (!opt) {
    std::fprintf(stderr, "attnscope: %s\n", qPrintable(error));
    return 2;
  }
  if (const int code = ensure_gl_display(argc, argv, !opt->screenshot.isEmpty()); code >= 0)
    return code;
  render::canvas_set_default_surface_format();
  QApplication app(argc, argv);
  if (const QString why = gl_unavailable(); !why.isEmpty()) {
    std::fprintf(stderr, "attnscope: %s\n", qPrintable(why));
    return 2;
  }
  QApplication::setOrganizationName(QStringLiteral("attnscope"));
  QApplication::setApplicationName(QStringLiteral("attnscope"));
  const bool scripted = !opt->screenshot.isEmpty();

  ui::MainWindow window;
  window.set_script_mode(scripted);
  QObject::connect(&window, &ui::MainWindow::script_error, &app, [](const QString& message) {
    std::fprintf(stderr, "attnscope: %s\n", qPrintable(message));
    QCoreApplication::exit(1);
  });
  if (opt->seed || opt->temperature || opt->top_p) {
    attnscope::SamplingParams p = window.sampling_panel()->params();
    if (opt->seed) p.seed = *opt->seed;
    if (opt->temperature) p.temperature = *opt->temperature;
    if (opt->top_p) p.top_p = *opt->top_p;
    window.sampling_panel()->set_params(p);
  }
  if (opt->samples) window.sampling_panel()->set_samples(*opt->samples);
  if (opt->cuda) window.set_device(true, opt->precision.value_or(attnscope::CudaPrecision::kF32));
  if (scripted) window.resize(1600, 1000);
  window.show();
  // The inspection tabs (attention, pattern, lsh, memory) and Compare are tabs beside the output.
  const bool inspect_view =
      window.inspect_view(opt->view) != nullptr || opt->view == QLatin1String("compare");
  if (inspect_view) window.show_view(opt->view);
  if (opt->surprise) window.show_surprise();

  QTimer settle;
  settle.setInterval(100);
  auto take_screenshot = [&] {
    // Let the last snapshot reach every view and the tab on show get its inspection (the
    // memory curves take seconds), then grab (which renders the GL views too).
    QObject::connect(&settle, &QTimer::timeout, &window, [&] {
      if (window.views_pending()) return;
      settle.stop();
      // The tab's own export first (the whole Compare table and grid, not just what the
      // window shows); a failure has been reported and ends the script.
      if (!opt->export_path.isEmpty() && !window.export_view_to(opt->export_path)) return;
      // Encoded in memory and written atomically: the file is complete or absent.
      QByteArray png;
      QBuffer buffer(&png);
      buffer.open(QIODevice::WriteOnly);
      attnscope::Status st =
          window.grab().save(&buffer, "PNG")
              ? attnscope::atomic_write_file(opt->screenshot.toStdString(),
                                             std::vector<uint8_t>(png.begin(), png.end()))
              : attnscope::internal_error("cannot encode the screenshot as PNG");
      if (st.is_ok()) {
        QCoreApplication::exit(0);
      } else {
        std::fprintf(stderr, "attnscope: cannot write the screenshot %s: %s\n",
                     qPrintable(opt->screenshot), st.message().c_str());
        QCoreApplication::exit(1);
      }
    });
    settle.start();
  };

  auto* s = window.session();
  QObject::connect(s, &session::Session::model_loaded, &window, [&] {
    const auto snap = s->snapshot();
    const attnscope::ModalityKind kind = snap->model->config.modality.kind;
    // --view canvas is the default; an explicit audio or text view needs a model it can show.
    if (!inspect_view && opt->view != QLatin1String("canvas") && opt->view != view_for(kind)) {
      emit window.script_error(
          QStringLiteral("--view %1 needs %2 %1 model; %3 is %4")
              .arg(opt->view,
                   opt->view == QLatin1String("audio") ? QStringLiteral("an") : QStringLiteral("a"),
                   QFileInfo(QString::fromStdString(snap->model->path)).fileName(),
                   QString::fromStdString(snap->model->config_text)));
      return;
    }
    if ((opt->keep_rows && kind != attnscope::ModalityKind::kImage) ||
        (opt->keep_seconds && kind != attnscope::ModalityKind::kAudio) ||
        (opt->prompt_text && kind != attnscope::ModalityKind::kText)) {
      emit window.script_error(
          QStringLiteral("--keep-rows is for image models, --keep-seconds for audio models and "
                         "--prompt-text for text models; this one is %1")
              .arg(QString::fromStdString(snap->model->config_text)));
      return;
    }
    if (opt->latent_cache) {
      if (snap->model->config.family != attnscope::Family::kPerceiverAR) {
        emit window.script_error(
            QStringLiteral("--latent-cache is for Perceiver AR models; %1 is %2")
                .arg(QFileInfo(QString::fromStdString(snap->model->path)).fileName(),
                     QString::fromStdString(snap->model->family)));
        return;
      }
      QComboBox* box = window.sampling_panel()->latent_cache_box();
      box->setCurrentIndex(box->findData(static_cast<int>(*opt->latent_cache)));
    }
    // A prompt that cannot be read has been reported; nothing is generated without it.
    if (!opt->prompt.isEmpty() && !window.open_prompt(opt->prompt)) return;
    if (opt->keep_rows) window.prompt_panel()->set_keep_rows(*opt->keep_rows);
    if (opt->keep_seconds) window.prompt_panel()->set_keep_seconds(*opt->keep_seconds);
    if (opt->prompt_text) window.prompt_panel()->set_text(*opt->prompt_text);
    // With --compare, the grid's models are added next and --autorun runs the comparison
    // once the last is in.
    if (!opt->compare.isEmpty()) {
      if (!opt->compare_prompts.isEmpty() && !window.set_compare_prompts(opt->compare_prompts))
        return;
      if (opt->seeds) window.compare_view()->seeds_box()->setValue(*opt->seeds);
      for (const QString& m : opt->compare) window.open_compare_model(m);
    } else if (opt->autorun)
      window.generate();
    else if (scripted)
      take_screenshot();
  });
  // Counted by signal, not read from the snapshot: the worker may have loaded every model
  // before the first signal arrives, and a second Compare would cancel the first.
  int compare_loaded = 0;
  QObject::connect(s, &session::Session::compare_loaded, &window, [&] {
    if (++compare_loaded != opt->compare.size()) return;
    if (opt->autorun)
      window.run_compare();
    else if (scripted)
      take_screenshot();
  });
  if (scripted) {
    QObject::connect(s, &session::Session::run_ended, &window, take_screenshot);
    // A scripted comparison says how it ended, so a script can tell a finished grid from one
    // that was stopped.
    QObject::connect(s, &session::Session::compare_ended, &window, [&](bool finished) {
      const auto r = s->snapshot()->compare;
      std::printf("attnscope: Compare %s: %zu models x %zu prompts x %zu seeds\n",
                  finished ? "finished" : "stopped", r ? r->rows.size() : size_t{0},
                  r ? r->prompts.size() : size_t{0}, r ? r->seeds.size() : size_t{0});
      std::fflush(stdout);
      take_screenshot();
    });
  }

  const QString model = opt->model.isEmpty() ? default_model() : opt->model;
  if (!model.isEmpty()) {
    window.open_model(model);
  } else {
    if (!opt->prompt.isEmpty()) window.open_prompt(opt->prompt);
    if (scripted) take_screenshot();
  }
  return app.exec();
}
