// CompareView: the Compare tab. Models (the open one and those added here) x prompts (the
// current one and images or clips added here) x seeds, one grid: every cell a completion with
// the same sampling parameters, each model scored on the real data the prompts were cut from
// (not on its own samples), a per-pixel surprise overlay, and one row of figures per model
// (tokens/s, measured peak memory, true-data bits/dim). Exported as one PNG and a CSV.
#pragma once

#include <QRect>
#include <QStringList>
#include <QWidget>
#include <memory>

#include "attnscope/status.h"
#include "session/session.h"

class QCheckBox;
class QLabel;
class QProgressBar;
class QPushButton;
class QScrollArea;
class QSpinBox;
class QTableWidget;

namespace ui {

// The grid itself, painted in one widget (so it exports as one picture): a header of prompt
// and seed per column, a row of the real images when the prompts have them, then one row per
// model, each cell its completion (or its surprise) with the model's true-data bits/dim on
// that prompt under it.
class CompareGrid : public QWidget {
  Q_OBJECT

 public:
  explicit CompareGrid(QWidget* parent);
  void show_result(std::shared_ptr<const session::CompareResult> r);
  void set_surprise(bool on);
  bool surprise() const { return surprise_; }
  // Where a cell is drawn (row -1: the real-image row); empty when there is none.
  QRect cell_rect(int row, int prompt, int seed) const;
  // The hover text of the cell under a point; empty outside the cells.
  QString cell_text(QPoint at) const;
  QSize sizeHint() const override;
  QSize minimumSizeHint() const override;
  bool hasHeightForWidth() const override { return true; }
  int heightForWidth(int width) const override;

 protected:
  void paintEvent(QPaintEvent*) override;
  void resizeEvent(QResizeEvent*) override;
  bool event(QEvent* e) override;

 private:
  struct Layout {
    int label_w = 0, header_h = 0, caption_h = 0, cell_w = 0, cell_h = 0, gap = 6;
    bool truth_row = false;
  };
  Layout layout_for(int width) const;
  int columns() const;

  std::shared_ptr<const session::CompareResult> result_;
  bool surprise_ = false;
};

class CompareView : public QWidget {
  Q_OBJECT

 public:
  CompareView(session::Session* s, QWidget* parent);

  QPushButton* load_button() const { return load_; }
  QPushButton* clear_models_button() const { return clear_models_; }
  QPushButton* prompts_button() const { return prompts_; }
  QPushButton* clear_prompts_button() const { return clear_prompts_; }
  QSpinBox* seeds_box() const { return seeds_; }
  QPushButton* compare_button() const { return run_; }
  QProgressBar* progress() const { return progress_; }
  // The surprise overlay's switch (-log2 P(true value) per pixel, on every model's cells).
  QCheckBox* surprise_box() const { return surprise_; }
  // The refusal or failure of the latest load or comparison; empty when there is none.
  QLabel* message_label() const { return message_; }
  // Which models and prompts the next Compare runs.
  QLabel* setup_label() const { return setup_; }
  // One row per model: name, configuration, parameters, tokens/s, peak memory, bits/dim.
  QTableWidget* table() const { return table_; }
  CompareGrid* grid() const { return grid_; }
  // The comparison on show, null before one.
  const session::CompareResult* result() const { return shown_.get(); }

  // "icons-vs-3-models-compare.png", or "tiny-vs-second-compare.png" for two models
  QString export_name() const;
  // Writes the table and grid as one PNG and every cell's figures as CSV beside it.
  attnscope::Status export_to(const QString& path, QStringList* written);

 signals:
  void load_requested();
  void prompts_requested();
  void compare_requested();

 private:
  void on_published();
  void on_failed(const QString& what, const QString& message);
  void show_message(const QString& text);
  void fill_table();

  session::Session* session_;
  QPushButton* load_;
  QPushButton* clear_models_;
  QPushButton* prompts_;
  QPushButton* clear_prompts_;
  QSpinBox* seeds_;
  QPushButton* run_;
  QCheckBox* surprise_;
  QLabel* setup_;
  QLabel* message_;
  QProgressBar* progress_;
  QScrollArea* scroll_;
  QWidget* sheet_;  // the table, grid and legend: what the export pictures
  QTableWidget* table_;
  CompareGrid* grid_;
  QWidget* legend_;
  std::shared_ptr<const session::CompareResult> shown_;
  std::string model_path_;
};

}  // namespace ui
