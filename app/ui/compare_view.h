// CompareView: the Compare tab. A second model beside the open one; the current prompt
// completed by both with the same sampling parameters and seed, shown side by side with each
// model's speed and bits/dim; the side-by-side view exported as PNG.
#pragma once

#include <QStringList>
#include <QWidget>
#include <memory>

#include "attnscope/status.h"
#include "session/session.h"

class QCheckBox;
class QLabel;
class QProgressBar;
class QPushButton;

namespace ui {

class ComparePane;

class CompareView : public QWidget {
  Q_OBJECT

 public:
  CompareView(session::Session* s, QWidget* parent);

  QPushButton* load_button() const { return load_; }
  QPushButton* compare_button() const { return run_; }
  QProgressBar* progress() const { return progress_; }
  // The surprise overlay's switch (-log2 P(true value) per pixel, on both panes).
  QCheckBox* surprise_box() const { return surprise_; }
  // The refusal or failure of the latest load or comparison; empty when there is none.
  QLabel* message_label() const { return message_; }
  // Side 0 is the open model, side 1 the second model.
  QLabel* title_label(int side) const { return titles_[side]; }
  QLabel* stats_label(int side) const { return stats_[side]; }
  // The comparison on show, null before one.
  const session::CompareResult* result() const { return shown_.get(); }

  // "shapes-dense-vs-shapes-sparse-compare.png"
  QString export_name() const;
  // Writes the side-by-side view (both outputs, titles and figures) as PNG.
  attnscope::Status export_to(const QString& path, QStringList* written);

 signals:
  void load_requested();
  void compare_requested();

 private:
  void on_published();
  void on_failed(const QString& what, const QString& message);
  void show_message(const QString& text);

  session::Session* session_;
  QPushButton* load_;
  QPushButton* run_;
  QLabel* second_;
  QLabel* message_;
  QProgressBar* progress_;
  QWidget* sides_;
  QCheckBox* surprise_;
  QWidget* legend_;
  QLabel* titles_[2];
  ComparePane* panes_[2];
  QLabel* stats_[2];
  std::shared_ptr<const session::CompareResult> shown_;
  std::string model_path_;
};

}  // namespace ui
