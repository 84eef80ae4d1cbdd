// MainWindow: the canvas in the centre and dockable panels (Model, Prompt, Sampling) around
// it; opening models (Ctrl+O, drag and drop, recent list), prompts, export (Ctrl+S), and the
// layout, recent files and settings kept in QSettings.
#pragma once

#include <QByteArray>
#include <QMainWindow>
#include <QStringList>
#include <utility>
#include <vector>

#include "attnscope/status.h"
#include "render/canvas.h"
#include "session/session.h"

class QLabel;
class QMenu;
class QStackedWidget;
class QTabWidget;

namespace ui {

class InspectView;
class CompareView;

class AudioView;
class ModelPanel;
class PromptPanel;
class SamplingPanel;
class TextView;

class MainWindow : public QMainWindow {
  Q_OBJECT

 public:
  explicit MainWindow(QWidget* parent = nullptr);
  ~MainWindow() override;

  session::Session* session() const { return session_; }
  render::Canvas* canvas() const { return canvas_; }
  AudioView* audio_view() const { return audio_view_; }
  TextView* text_view() const { return text_view_; }
  // The centre's page on show: the canvas, the audio view or the text view.
  QWidget* current_view() const;
  // The inspection tabs beside the output: "attention", "pattern", "lsh", "memory".
  QTabWidget* tabs() const { return tabs_; }
  InspectView* inspect_view(const QString& name) const;
  // Brings the tab named by --view forward ("canvas" is the output tab); false if unknown.
  bool show_view(const QString& name);
  // An inspection tab on show still waits for its result (scripted screenshots wait).
  bool views_pending() const;
  // The Compare tab ("compare" for show_view).
  CompareView* compare_view() const { return compare_view_; }
  // Adds a model to the Compare grid; ends in session()->compare_loaded() or a message.
  void open_compare_model(const QString& path);
  // Reads image or audio files (as the prompt panel reads a prompt) and gives them to the
  // Compare grid as its added prompts; false, with a message shown, when one cannot be read.
  bool set_compare_prompts(const QStringList& paths);
  // Completes the prompt with both models (the Compare tab's Compare button).
  void run_compare();
  // Exports the inspection or Compare tab on show to path; an error message on failure.
  bool export_view_to(const QString& path);
  PromptPanel* prompt_panel() const { return prompt_; }
  SamplingPanel* sampling_panel() const { return sampling_; }
  ModelPanel* model_panel() const { return model_panel_; }

  // Starts loading a model; ends in session()->model_loaded() or an error message.
  void open_model(const QString& path);
  // Reads a prompt image for the open model; an error message on failure.
  bool open_prompt(const QString& path);
  void generate();
  // Writes the output as path: images as PNG (the grid of every sample) and its scaled copy,
  // audio as WAV, text as .txt (the sample on show); an error message on failure.
  bool export_to(const QString& path);
  QStringList recent_files() const { return recent_; }

  // Where generation runs (the Engine menu, --device): the GPU when cuda and a device can run
  // the model, else the CPU; the status bar says which and, in its tooltip, why.
  void set_device(bool cuda, attnscope::CudaPrecision precision);

  // Scripted runs (--screenshot) report errors through script_error instead of dialogs.
  void set_script_mode(bool on);
  // The surprise colours on the canvas (View > Show surprise) and in Compare.
  void show_surprise();
  // File > Reset settings: sampling to default_sampling(), window geometry and layout forgotten.
  void reset_settings();
  static attnscope::SamplingParams default_sampling();

 signals:
  void script_error(const QString& message);

 protected:
  void closeEvent(QCloseEvent* e) override;
  void dragEnterEvent(QDragEnterEvent* e) override;
  void dropEvent(QDropEvent* e) override;

 private:
  void fit_to_screen();
  void create_actions();
  void create_docks();
  void show_error(const QString& title, const QString& message);
  void refresh_views();
  void apply_prompt();
  void show_modality_view();
  void on_model_loaded(const QString& path);
  void add_recent(const QString& path);
  void rebuild_recent_menu();
  void choose_model();
  void choose_prompt();
  void choose_export();
  void request_truth_score();
  void read_settings();
  void write_settings() const;

  session::Session* session_;
  render::Canvas* canvas_;
  QStackedWidget* centre_;
  QTabWidget* tabs_;
  std::vector<std::pair<QString, InspectView*>> inspect_views_;
  void choose_view_export();
  void choose_compare_model();
  void choose_compare_prompts();
  CompareView* compare_view_;
  AudioView* audio_view_;
  TextView* text_view_;
  ModelPanel* model_panel_;
  PromptPanel* prompt_;
  SamplingPanel* sampling_;
  QMenu* view_menu_ = nullptr;
  QMenu* recent_menu_ = nullptr;
  QLabel* status_state_;
  QLabel* status_upload_;
  QLabel* status_backend_;
  QAction* device_cuda_ = nullptr;
  std::vector<std::pair<attnscope::CudaPrecision, QAction*>> precision_actions_;
  QStringList recent_;
  QString last_dir_;
  bool script_mode_ = false;
  QByteArray default_state_;
};

}  // namespace ui
