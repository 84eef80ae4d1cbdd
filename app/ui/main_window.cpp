// Main window wiring: actions and menus, docks, the session's signals into the views, file
// dialogs, drag and drop, and QSettings.
#include "main_window.h"

#include <QAction>
#include <QActionGroup>
#include <QApplication>
#include <QCheckBox>
#include <QCloseEvent>
#include <QDockWidget>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QLabel>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QScreen>
#include <QSettings>
#include <QSpinBox>
#include <QStackedWidget>
#include <QStandardPaths>
#include <QStatusBar>
#include <QTabWidget>
#include <QTimer>
#include <algorithm>

#include "attention_view.h"
#include "audio_view.h"
#include "compare_view.h"
#include "export.h"
#include "imgui/overlay.h"
#include "lsh_view.h"
#include "media.h"
#include "memory_view.h"
#include "model_panel.h"
#include "pattern_view.h"
#include "prompt_panel.h"
#include "sampling_panel.h"
#include "step_view.h"
#include "text_view.h"

namespace ui {

namespace {
constexpr int kMaxRecent = 8;
const QStringList kImageSuffixes = {QStringLiteral("png"), QStringLiteral("jpg"),
                                    QStringLiteral("jpeg")};
}  // namespace

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) {
  setWindowTitle(QStringLiteral("Attnscope"));
  setAcceptDrops(true);
  session_ = new session::Session(this);
  canvas_ = new render::Canvas(session_, this);
  // The centre shows the view of the open model's modality (show_modality_view).
  centre_ = new QStackedWidget(this);
  audio_view_ = new AudioView(session_, centre_);
  text_view_ = new TextView(session_, centre_);
  centre_->addWidget(canvas_);
  centre_->addWidget(audio_view_);
  centre_->addWidget(text_view_);
  // Tabs: the output first, then the inspection views.
  tabs_ = new QTabWidget(this);
  tabs_->setDocumentMode(true);
  tabs_->addTab(centre_, tr("Output"));
  inspect_views_ = {{QStringLiteral("attention"), new AttentionView(session_, tabs_)},
                    {QStringLiteral("pattern"), new PatternView(session_, tabs_)},
                    {QStringLiteral("lsh"), new LshView(session_, tabs_)},
                    {QStringLiteral("memory"), new MemoryView(session_, tabs_)},
                    {QStringLiteral("step"), new StepView(session_, tabs_)}};
  const QStringList titles = {tr("Attention"), tr("Pattern"), tr("LSH buckets"), tr("Memory"),
                              tr("Step-through")};
  for (size_t i = 0; i < inspect_views_.size(); ++i)
    tabs_->addTab(inspect_views_[i].second, titles[static_cast<int>(i)]);
  compare_view_ = new CompareView(session_, tabs_);
  tabs_->addTab(compare_view_, tr("Compare"));
  setCentralWidget(tabs_);
  model_panel_ = new ModelPanel(this);
  prompt_ = new PromptPanel(this);
  sampling_ = new SamplingPanel(this);
  create_docks();
  create_actions();

  status_state_ = new QLabel(tr("Open a model (Ctrl+O)"), this);
  status_upload_ = new QLabel(this);
  status_backend_ = new QLabel(this);
  // Long status lines are cut, never widen the window (the whole line is the tooltip).
  status_state_->setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Preferred);
  statusBar()->addWidget(status_state_, 1);
  statusBar()->addPermanentWidget(status_backend_);
  statusBar()->addPermanentWidget(status_upload_);
  connect(canvas_, &render::Canvas::upload_path_changed, this,
          [this](const QString& p) { status_upload_->setText(tr("Upload: %1").arg(p)); });

  connect(session_, &session::Session::published, this, &MainWindow::refresh_views);
  connect(session_, &session::Session::model_loaded, this, &MainWindow::on_model_loaded);
  connect(session_, &session::Session::failed, this, &MainWindow::show_error);
  connect(prompt_, &PromptPanel::open_requested, this, &MainWindow::choose_prompt);
  connect(prompt_, &PromptPanel::prompt_changed, this, &MainWindow::apply_prompt);
  connect(sampling_, &SamplingPanel::generate_requested, this, &MainWindow::generate);
  connect(sampling_, &SamplingPanel::stop_requested, session_, &session::Session::stop);
  connect(compare_view_, &CompareView::load_requested, this, &MainWindow::choose_compare_model);
  connect(compare_view_, &CompareView::compare_requested, this, &MainWindow::run_compare);
  connect(compare_view_, &CompareView::prompts_requested, this,
          &MainWindow::choose_compare_prompts);
  connect(sampling_, &SamplingPanel::shown_sample_changed, audio_view_, &AudioView::set_sample);
  connect(sampling_, &SamplingPanel::shown_sample_changed, text_view_, &TextView::set_sample);

  default_state_ = saveState();  // the first-start dock layout, for File > Reset settings
  read_settings();
  refresh_views();
}

MainWindow::~MainWindow() = default;

void MainWindow::create_docks() {
  setDockNestingEnabled(true);
  auto add = [this](QWidget* w, const QString& title, const QString& name, Qt::DockWidgetArea a) {
    auto* dock = new QDockWidget(title, this);
    dock->setObjectName(name);
    dock->setWidget(w);
    addDockWidget(a, dock);
    return dock;
  };
  add(model_panel_, tr("Model"), QStringLiteral("dock-model"), Qt::LeftDockWidgetArea);
  QDockWidget* prompt =
      add(prompt_, tr("Prompt"), QStringLiteral("dock-prompt"), Qt::RightDockWidgetArea);
  QDockWidget* sampling =
      add(sampling_, tr("Sampling"), QStringLiteral("dock-sampling"), Qt::RightDockWidgetArea);
  // First-start layout (a saved one replaces it): the prompt as tall as its contents.
  resizeDocks({prompt, sampling}, {prompt_->sizeHint().height(), 600}, Qt::Vertical);
}

void MainWindow::create_actions() {
  QMenu* file = menuBar()->addMenu(tr("&File"));
  QAction* open = file->addAction(tr("&Open model…"), this, &MainWindow::choose_model);
  open->setShortcut(QKeySequence::Open);
  recent_menu_ = file->addMenu(tr("Open &recent"));
  QAction* prompt = file->addAction(tr("Open &prompt…"), this, &MainWindow::choose_prompt);
  prompt->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_O));
  file->addSeparator();
  QAction* save = file->addAction(tr("&Export output…"), this, &MainWindow::choose_export);
  save->setShortcut(QKeySequence::Save);
  QAction* view_export =
      file->addAction(tr("Export current &view…"), this, &MainWindow::choose_view_export);
  view_export->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_E));
  file->addSeparator();
  QAction* reset =
      file->addAction(tr("Reset &settings to defaults"), this, &MainWindow::reset_settings);
  reset->setObjectName(QStringLiteral("action-reset-settings"));
  reset->setStatusTip(
      tr("Sampling back to its defaults (seed 1) and the window to its default "
         "size and layout; recent files are kept"));
  file->addSeparator();
  QAction* quit = file->addAction(tr("&Quit"), this, &QWidget::close);
  quit->setShortcut(QKeySequence::Quit);

  view_menu_ = menuBar()->addMenu(tr("&View"));
  for (QDockWidget* dock : findChildren<QDockWidget*>())
    view_menu_->addAction(dock->toggleViewAction());
  view_menu_->addSeparator();
  QAction* mark = view_menu_->addAction(tr("&Mark prompt pixels"));
  mark->setObjectName(QStringLiteral("action-mark-prompt"));
  mark->setCheckable(true);
  mark->setChecked(true);
  mark->setShortcut(QKeySequence(Qt::Key_M));
  connect(mark, &QAction::toggled, canvas_, &render::Canvas::set_mark_prompt);
  QAction* overlay = view_menu_->addAction(tr("&Inspector overlay"));
  overlay->setObjectName(QStringLiteral("action-overlay"));
  overlay->setCheckable(true);
  overlay->setChecked(true);
  overlay->setShortcut(QKeySequence(Qt::Key_I));
  connect(overlay, &QAction::toggled, canvas_, &render::Canvas::set_overlay_visible);
  auto* modes = new QActionGroup(this);
  QAction* image = view_menu_->addAction(tr("Show &image"));
  image->setObjectName(QStringLiteral("action-image"));
  QAction* entropy = view_menu_->addAction(tr("Show &entropy (viridis)"));
  QAction* surprise = view_menu_->addAction(tr("Show &surprise at the true image (viridis)"));
  surprise->setObjectName(QStringLiteral("action-surprise"));
  surprise->setStatusTip(
      tr("Colour each pixel by -log2 P(true value) under the open model, for "
         "the whole image the prompt was cut from"));
  for (QAction* a : {image, entropy, surprise}) {
    a->setCheckable(true);
    modes->addAction(a);
  }
  image->setChecked(true);
  image->setShortcut(QKeySequence(Qt::Key_1));
  entropy->setShortcut(QKeySequence(Qt::Key_2));
  connect(image, &QAction::triggered, this,
          [this] { canvas_->set_mode(render::Canvas::Mode::kImage); });
  connect(entropy, &QAction::triggered, this,
          [this] { canvas_->set_mode(render::Canvas::Mode::kEntropy); });
  surprise->setShortcut(QKeySequence(Qt::Key_3));
  connect(surprise, &QAction::triggered, this, [this] {
    canvas_->set_mode(render::Canvas::Mode::kSurprise);
    request_truth_score();
  });
  QAction* fit = view_menu_->addAction(tr("&Fit image"), canvas_, &render::Canvas::fit);
  fit->setShortcut(QKeySequence(Qt::Key_F));

  QMenu* engine = menuBar()->addMenu(tr("&Engine"));
  device_cuda_ = engine->addAction(tr("Generate on the &GPU (CUDA)"));
  device_cuda_->setCheckable(true);
  device_cuda_->setStatusTip(
      tr("Generation runs on the GPU when this build has CUDA and a device can run the model; "
         "otherwise on the CPU (the status bar says why). Views always use the CPU model."));
  QMenu* precision = engine->addMenu(tr("GPU &precision"));
  auto* precisions = new QActionGroup(this);
  for (auto [p, label] : {std::pair{attnscope::CudaPrecision::kF32, tr("float32 (as the CPU)")},
                          std::pair{attnscope::CudaPrecision::kTF32, tr("TF32 tensor cores")},
                          std::pair{attnscope::CudaPrecision::kBF16, tr("bf16 (fastest)")}}) {
    QAction* a = precision->addAction(label);
    a->setCheckable(true);
    a->setChecked(p == attnscope::CudaPrecision::kF32);
    precisions->addAction(a);
    precision_actions_.emplace_back(p, a);
  }
  auto apply = [this] {
    attnscope::CudaPrecision p = attnscope::CudaPrecision::kF32;
    for (const auto& [value, action] : precision_actions_)
      if (action->isChecked()) p = value;
    session_->set_device(device_cuda_->isChecked(), p);
  };
  connect(device_cuda_, &QAction::triggered, this, apply);
  connect(precisions, &QActionGroup::triggered, this, apply);
}

void MainWindow::set_device(bool cuda, attnscope::CudaPrecision precision) {
  device_cuda_->setChecked(cuda);
  for (const auto& [value, action] : precision_actions_) action->setChecked(value == precision);
  session_->set_device(cuda, precision);
}

void MainWindow::show_error(const QString& title, const QString& message) {
  if (script_mode_) {
    emit script_error(message);
    return;
  }
  QMessageBox::warning(this, title, message);
}

// The surprise view needs the open model's score of the true image: asked while there is none,
// none is on its way and none failed (a Stop cancels one; the worker keeps it while the model
// and image stay).
void MainWindow::request_truth_score() {
  const auto s = session_->snapshot();
  if (!s->has_truth || s->truth || s->truth_pending || !s->truth_error.empty()) return;
  session_->score_truth();
}

void MainWindow::refresh_views() {
  const auto s = session_->snapshot();
  if (canvas_->mode() == render::Canvas::Mode::kSurprise) request_truth_score();
  model_panel_->show_snapshot(*s);
  sampling_->show_snapshot(*s);
  // "backend: cuda (H200, ...; bf16)" -> "Generation: CUDA"; the whole line in the tooltip.
  const QString note = QString::fromStdString(s->backend_note);
  const bool on_cuda = note.startsWith(QLatin1String("backend: cuda"));
  const bool fell_back = note.startsWith(QLatin1String("backend: cpu ("));
  status_backend_->setText(on_cuda     ? tr("Generation: GPU")
                           : fell_back ? tr("Generation: CPU (GPU unavailable)")
                                       : tr("Generation: CPU"));
  status_backend_->setToolTip(note);
  if (!s->model) {
    status_state_->setText(tr("Open a model (Ctrl+O) or drop a .safetensors file"));
    return;
  }
  const QString text = s->message.empty() ? QString::fromLatin1(session::run_state_name(s->state))
                                          : QString::fromStdString(s->message);
  status_state_->setText(QStringLiteral("%1 — %2").arg(
      QFileInfo(QString::fromStdString(s->model->path)).fileName(), text));
  status_state_->setToolTip(status_state_->text());
}

void MainWindow::open_model(const QString& path) {
  session_->open_model(path);
}

void MainWindow::on_model_loaded(const QString& path) {
  add_recent(path);
  setWindowTitle(QStringLiteral("%1 — Attnscope").arg(QFileInfo(path).fileName()));
  const auto s = session_->snapshot();
  if (!s->model) return;
  // The panels show the new model now, so that what a handler after this one sets on them
  // (a script's knobs) is not reset by the next refresh.
  refresh_views();
  attnscope::Status st = prompt_->set_modality(s->model->config.modality);
  if (!st) show_error(tr("Prompt"), QString::fromStdString(st.message()));
  show_modality_view();
  apply_prompt();
}

QWidget* MainWindow::current_view() const {
  return centre_->currentWidget();
}

void MainWindow::show_modality_view() {
  const auto s = session_->snapshot();
  if (!s->model) return;
  switch (s->model->config.modality.kind) {
    case attnscope::ModalityKind::kImage:
      centre_->setCurrentWidget(canvas_);
      break;
    case attnscope::ModalityKind::kAudio:
      centre_->setCurrentWidget(audio_view_);
      break;
    case attnscope::ModalityKind::kText:
      centre_->setCurrentWidget(text_view_);
      break;
  }
}

bool MainWindow::open_prompt(const QString& path) {
  attnscope::Status st = prompt_->load(path);
  if (!st) {
    show_error(tr("Prompt"), QString::fromStdString(st.message()));
    return false;
  }
  last_dir_ = QFileInfo(path).absolutePath();
  return true;
}

void MainWindow::apply_prompt() {
  if (!session_->snapshot()->model) return;
  if (std::vector<uint8_t> keep = prompt_->keep_mask(); !keep.empty())
    session_->set_prompt_mask(prompt_->tokens(), std::move(keep));
  else
    session_->set_prompt_tokens(prompt_->kept_tokens(), prompt_->tokens());
}

void MainWindow::generate() {
  session_->set_knobs(sampling_->knobs());
  session_->generate(sampling_->params(), sampling_->samples());
}

bool MainWindow::export_to(const QString& path) {
  QStringList written;
  attnscope::Status st =
      export_output(*session_->snapshot(), sampling_->shown_sample(), path, &written);
  if (!st) {
    show_error(tr("Export"), QString::fromStdString(st.message()));
    return false;
  }
  statusBar()->showMessage(tr("Wrote %1").arg(written.join(QStringLiteral(", "))), 8000);
  return true;
}

void MainWindow::choose_model() {
  const QString path = QFileDialog::getOpenFileName(
      this, tr("Open model"), last_dir_, tr("Attnscope models (*.safetensors);;All files (*)"),
      nullptr, QFileDialog::DontUseNativeDialog);
  if (path.isEmpty()) return;
  last_dir_ = QFileInfo(path).absolutePath();
  open_model(path);
}

void MainWindow::choose_prompt() {
  const auto s = session_->snapshot();
  const bool audio = s->model && s->model->config.modality.kind == attnscope::ModalityKind::kAudio;
  const QString path = QFileDialog::getOpenFileName(
      this, audio ? tr("Open prompt clip") : tr("Open prompt image"), last_dir_,
      audio ? tr("WAV clips (*.wav);;All files (*)")
            : tr("Images (*.png *.jpg *.jpeg);;All files (*)"),
      nullptr, QFileDialog::DontUseNativeDialog);
  if (!path.isEmpty()) open_prompt(path);
}

void MainWindow::choose_export() {
  const auto s = session_->snapshot();
  if (!s->run) {
    show_error(tr("Export"), tr("There is nothing to export: open a model first (Ctrl+O)."));
    return;
  }
  QSettings settings;
  const QString dir = settings
                          .value(QStringLiteral("export/dir"),
                                 QStandardPaths::writableLocation(QStandardPaths::PicturesLocation))
                          .toString();
  const QString name =
      export_default_name(*s, prompt_->path(), sampling_->params().seed, sampling_->shown_sample());
  QString title = tr("Export completion (a %1x copy is written beside it)").arg(kExportScale);
  QString filter = tr("PNG images (*.png)");
  if (s->run->modality().kind == attnscope::ModalityKind::kAudio) {
    title = tr("Export audio (16-bit PCM WAV)");
    filter = tr("WAV audio (*.wav)");
  } else if (s->run->modality().kind == attnscope::ModalityKind::kText) {
    title = tr("Export text (UTF-8 bytes as generated)");
    filter = tr("Text (*.txt)");
  }
  const QString path = QFileDialog::getSaveFileName(this, title, QDir(dir).filePath(name), filter,
                                                    nullptr, QFileDialog::DontUseNativeDialog);
  if (path.isEmpty()) return;
  if (export_to(path))
    settings.setValue(QStringLiteral("export/dir"), QFileInfo(path).absolutePath());
}

InspectView* MainWindow::inspect_view(const QString& name) const {
  for (const auto& [n, v] : inspect_views_)
    if (n == name) return v;
  return nullptr;
}

bool MainWindow::show_view(const QString& name) {
  if (name == QLatin1String("canvas")) {
    tabs_->setCurrentWidget(centre_);
    return true;
  }
  if (name == QLatin1String("compare")) {
    tabs_->setCurrentWidget(compare_view_);
    return true;
  }
  InspectView* v = inspect_view(name);
  if (v) tabs_->setCurrentWidget(v);
  return v != nullptr;
}

bool MainWindow::views_pending() const {
  for (const auto& [n, v] : inspect_views_)
    if (v->isVisible() && v->pending()) return true;
  const auto s = session_->snapshot();
  return canvas_->mode() == render::Canvas::Mode::kSurprise && s->has_truth && !s->truth &&
         s->truth_error.empty();
}

void MainWindow::show_surprise() {
  findChild<QAction*>(QStringLiteral("action-surprise"))->trigger();
  compare_view_->surprise_box()->setChecked(true);
}

bool MainWindow::export_view_to(const QString& path) {
  auto* v = qobject_cast<InspectView*>(tabs_->currentWidget());
  const bool compare = tabs_->currentWidget() == compare_view_;
  if (!v && !compare) return false;
  QStringList written;
  attnscope::Status st =
      compare ? compare_view_->export_to(path, &written) : v->export_to(path, &written);
  if (!st) {
    show_error(tr("Export view"), QString::fromStdString(st.message()));
    return false;
  }
  statusBar()->showMessage(tr("Wrote %1").arg(written.join(QStringLiteral(", "))), 8000);
  return true;
}

// Ctrl+E: the inspection or Compare tab on show, or the output (Ctrl+S) when the output tab is
// on show.
void MainWindow::choose_view_export() {
  auto* v = qobject_cast<InspectView*>(tabs_->currentWidget());
  const bool compare = tabs_->currentWidget() == compare_view_;
  if (!v && !compare) {
    choose_export();
    return;
  }
  QSettings settings;
  const QString dir = settings
                          .value(QStringLiteral("export/dir"),
                                 QStandardPaths::writableLocation(QStandardPaths::PicturesLocation))
                          .toString();
  const QString path = QFileDialog::getSaveFileName(
      this, tr("Export view"),
      QDir(dir).filePath(compare ? compare_view_->export_name() : v->export_name()),
      tr("PNG images (*.png)"), nullptr, QFileDialog::DontUseNativeDialog);
  if (path.isEmpty()) return;
  if (export_view_to(path))
    settings.setValue(QStringLiteral("export/dir"), QFileInfo(path).absolutePath());
}

void MainWindow::open_compare_model(const QString& path) {
  session_->open_compare_model(path);
}

void MainWindow::run_compare() {
  session_->set_knobs(sampling_->knobs());
  session_->compare(sampling_->params(), compare_view_->seeds_box()->value());
}

void MainWindow::choose_compare_model() {
  const QStringList paths =
      QFileDialog::getOpenFileNames(this, tr("Add models to compare"), last_dir_,
                                    tr("Attnscope models (*.safetensors);;All files (*)"), nullptr,
                                    QFileDialog::DontUseNativeDialog);
  if (paths.isEmpty()) return;
  last_dir_ = QFileInfo(paths.front()).absolutePath();
  for (const QString& path : paths) open_compare_model(path);
}

bool MainWindow::set_compare_prompts(const QStringList& paths) {
  const auto snap = session_->snapshot();
  if (!snap->model) {
    show_error(tr("Compare"), tr("Open a model first: prompts are read at its size."));
    return false;
  }
  const attnscope::Modality& m = snap->model->config.modality;
  if (m.kind == attnscope::ModalityKind::kText) {
    show_error(tr("Compare"), tr("A text model's grid completes the typed prompt only."));
    return false;
  }
  std::vector<session::Session::PromptSource> sources;
  for (const QString& path : paths) {
    std::string note;
    auto tokens = m.kind == attnscope::ModalityKind::kAudio
                      ? cli::audio_read_tokens(path.toStdString(), m, &note)
                      : cli::image_read_tokens(path.toStdString(), m, /*allow_scale=*/true, &note);
    if (!tokens) {
      show_error(tr("Compare"), QString::fromStdString(tokens.status().message()));
      return false;
    }
    sources.push_back({QFileInfo(path).fileName().toStdString(), std::move(*tokens)});
  }
  session_->set_compare_prompts(std::move(sources));
  return true;
}

void MainWindow::choose_compare_prompts() {
  const QStringList paths = QFileDialog::getOpenFileNames(
      this, tr("Add prompts to compare on"), last_dir_,
      tr("Images and clips (*.png *.jpg *.jpeg *.bmp *.gif *.ppm *.wav);;All files (*)"), nullptr,
      QFileDialog::DontUseNativeDialog);
  if (paths.isEmpty()) return;
  last_dir_ = QFileInfo(paths.front()).absolutePath();
  set_compare_prompts(paths);
}

void MainWindow::add_recent(const QString& path) {
  const QString abs = QFileInfo(path).absoluteFilePath();
  recent_.removeAll(abs);
  recent_.prepend(abs);
  while (recent_.size() > kMaxRecent) recent_.removeLast();
  rebuild_recent_menu();
  write_settings();
}

void MainWindow::rebuild_recent_menu() {
  recent_menu_->clear();
  for (const QString& path : recent_) {
    QAction* a = recent_menu_->addAction(QFileInfo(path).fileName(), this,
                                         [this, path] { open_model(path); });
    a->setToolTip(path);
  }
  recent_menu_->setEnabled(!recent_.isEmpty());
}

void MainWindow::dragEnterEvent(QDragEnterEvent* e) {
  for (const QUrl& url : e->mimeData()->urls()) {
    const QString suffix = QFileInfo(url.toLocalFile()).suffix().toLower();
    if (url.isLocalFile() &&
        (suffix == QLatin1String("safetensors") || kImageSuffixes.contains(suffix))) {
      e->acceptProposedAction();
      return;
    }
  }
}

void MainWindow::dropEvent(QDropEvent* e) {
  for (const QUrl& url : e->mimeData()->urls()) {
    const QString path = url.toLocalFile();
    const QString suffix = QFileInfo(path).suffix().toLower();
    if (suffix == QLatin1String("safetensors"))
      open_model(path);
    else if (kImageSuffixes.contains(suffix))
      open_prompt(path);
  }
  e->acceptProposedAction();
}

// The sampling a fresh start, a scripted run and File > Reset settings use: the engine's
// defaults with seed 1, as the README's commands and attnscope-cli generate examples use.
attnscope::SamplingParams MainWindow::default_sampling() {
  attnscope::SamplingParams p;
  p.seed = 1;
  return p;
}

void MainWindow::read_settings() {
  QSettings s;
  recent_ = s.value(QStringLiteral("recent/models")).toStringList();
  rebuild_recent_menu();
  last_dir_ = s.value(QStringLiteral("dirs/open")).toString();
  const attnscope::SamplingParams d = default_sampling();
  attnscope::SamplingParams p = d;
  p.temperature = s.value(QStringLiteral("sampling/temperature"), d.temperature).toFloat();
  p.top_k = s.value(QStringLiteral("sampling/top_k"), d.top_k).toInt();
  p.top_p = s.value(QStringLiteral("sampling/top_p"), d.top_p).toFloat();
  p.seed = s.value(QStringLiteral("sampling/seed"), static_cast<qulonglong>(d.seed)).toULongLong();
  sampling_->set_params(p);
  // Remembered sampling that differs from the defaults is said, not applied silently.
  QStringList changed;
  if (p.temperature != d.temperature) changed << tr("temperature %1").arg(p.temperature);
  if (p.top_k != d.top_k) changed << tr("top-k %1").arg(p.top_k);
  if (p.top_p != d.top_p) changed << tr("top-p %1").arg(p.top_p);
  if (p.seed != d.seed) changed << tr("seed %1").arg(p.seed);
  // After the first show: a message shown before it would sit over the state label.
  if (!changed.isEmpty())
    QTimer::singleShot(0, this, [this, text = changed.join(QStringLiteral(", "))] {
      if (!script_mode_)
        statusBar()->showMessage(
            tr("Sampling from your last session: %1 (File > Reset settings)").arg(text), 15000);
    });
  if (!restoreGeometry(s.value(QStringLiteral("window/geometry")).toByteArray())) resize(1400, 900);
  restoreState(s.value(QStringLiteral("window/state")).toByteArray());
  fit_to_screen();
}

// A scripted run (--screenshot) is reproducible from its command line alone: the defaults plus
// the options given, never the last interactive session's knobs; and it remembers nothing.
void MainWindow::set_script_mode(bool on) {
  script_mode_ = on;
  if (on) {
    sampling_->set_params(default_sampling());
    statusBar()->clearMessage();
  }
}

void MainWindow::reset_settings() {
  QSettings s;
  s.remove(QStringLiteral("sampling"));
  s.remove(QStringLiteral("window"));
  sampling_->set_params(default_sampling());
  restoreState(default_state_);
  overlay::reset_placement();
  canvas_->update();
  resize(1400, 900);
  fit_to_screen();
  statusBar()->showMessage(tr("Settings reset: sampling at its defaults (seed 1), window at its "
                              "default size, overlays in their corners"),
                           8000);
}

// The window (default or remembered size) within the screen's available geometry: a 1280x720
// screen shows the whole window, Generate and the status bar included.
void MainWindow::fit_to_screen() {
  const QScreen* screen = this->screen() ? this->screen() : QGuiApplication::primaryScreen();
  if (!screen) return;
  const QRect avail = screen->availableGeometry();
  // The frame (title bar, borders) comes on top of the client size.
  const QSize frame = frameGeometry().size() - geometry().size();
  const QSize room = avail.size() - frame;
  const QSize want = size().boundedTo(room);
  if (want != size()) resize(want);
  QRect g = frameGeometry();
  if (!avail.contains(g)) {
    g.moveLeft(
        std::clamp(g.left(), avail.left(), std::max(avail.left(), avail.right() - g.width())));
    g.moveTop(std::clamp(g.top(), avail.top(), std::max(avail.top(), avail.bottom() - g.height())));
    move(g.topLeft());
  }
}

void MainWindow::write_settings() const {
  if (script_mode_) return;
  QSettings s;
  s.setValue(QStringLiteral("recent/models"), recent_);
  s.setValue(QStringLiteral("dirs/open"), last_dir_);
  const attnscope::SamplingParams p = sampling_->params();
  s.setValue(QStringLiteral("sampling/temperature"), p.temperature);
  s.setValue(QStringLiteral("sampling/top_k"), p.top_k);
  s.setValue(QStringLiteral("sampling/top_p"), p.top_p);
  s.setValue(QStringLiteral("sampling/seed"), static_cast<qulonglong>(p.seed));
  s.setValue(QStringLiteral("window/geometry"), saveGeometry());
  s.setValue(QStringLiteral("window/state"), saveState());
}

void MainWindow::closeEvent(QCloseEvent* e) {
  session_->stop();
  write_settings();
  e->accept();
}

}  // namespace ui
