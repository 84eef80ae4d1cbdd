// The step-through view: a timeline over the known positions and, at the chosen step, small
// multiples of every layer x head (BertViz's model view for these kinds): where that query
// attends under the layer's real rule (sparse mask, LSH windows, latents, shortened levels),
// each cell scaled to its own maximum, with the share of a dense causal softmax's mass that the
// rule kept for this query. Computed on positions 0..query, as when the query was generated.
#pragma once

#include <QWidget>

#include "inspect_view.h"

class QLabel;
class QSlider;
class QSpinBox;
class QToolButton;

namespace ui {

// The grid of cells, painted with QPainter; hover names a cell.
class SmallMultiples : public QWidget {
  Q_OBJECT

 public:
  explicit SmallMultiples(QWidget* parent = nullptr);
  void set_result(std::shared_ptr<const session::InspectResult> r);
  // The cell of (layer, head) on the widget; empty when there is none.
  QRect cell_rect(int layer, int head) const;
  // "layer 1 (strided A2, ...), head 3: kept 71.2% of the dense mass · most: position 80"
  QString cell_text(int layer, int head) const;
  // The cell image of (layer, head): one pixel per image pixel (or per column for 1-D),
  // viridis of the weight over the cell's maximum, grey past the query.
  QImage cell_image(int layer, int head) const;

 signals:
  void hovered(const QString& text);

 protected:
  void paintEvent(QPaintEvent* e) override;
  void mouseMoveEvent(QMouseEvent* e) override;

 private:
  std::shared_ptr<const session::InspectResult> result_;
};

class StepView : public InspectView {
  Q_OBJECT

 public:
  explicit StepView(session::Session* s, QWidget* parent = nullptr);

  QSlider* slider() const { return slider_; }
  SmallMultiples* grid() const { return grid_; }
  QLabel* info_label() const { return info_; }
  int64_t step() const { return step_; }
  void set_step(int64_t position);
  QString export_name() const override;
  attnscope::Status export_to(const QString& path, QStringList* written) const override;

 protected:
  void reload() override;
  void show_result(const session::InspectResult& r) override;

 private:
  QSlider* slider_;
  QSpinBox* spin_;
  QToolButton *back_, *forward_;
  QLabel* info_;
  QLabel* hover_;
  SmallMultiples* grid_;
  int64_t step_ = -1;
  bool follow_end_ = true;  // at the last known position until the user moves the slider
};

}  // namespace ui
