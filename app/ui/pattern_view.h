// The connectivity pattern view: the causal query x key layout of a layer and head pooled to
// a grid (cells with any allowed pair stay visible), its density and the FLOPs saved against
// dense; Reformer's from the current tokens, Perceiver AR latents x inputs, Hourglass levels.
#pragma once

#include "inspect_view.h"
#include "render/field_view.h"

class QComboBox;
class QLabel;
class QSpinBox;

namespace ui {

// "density 12.50% of dense causal · FLOPs saved 87.50%"
QString pattern_density_text(double density);

class PatternView : public InspectView {
  Q_OBJECT

 public:
  explicit PatternView(session::Session* s, QWidget* parent = nullptr);

  render::FieldView* field_view() const { return field_; }
  QLabel* density_label() const { return density_; }
  QLabel* hover_label() const { return hover_; }
  // "queries 1024-1035 x keys 0-11: 8.3% of the cell's causal pairs attended" for a grid cell.
  QString cell_text(QPoint cell) const;
  void set_layer(int layer);
  void set_head(int head);
  QString export_name() const override;
  attnscope::Status export_to(const QString& path, QStringList* written) const override;

 protected:
  void reload() override;
  void show_result(const session::InspectResult& r) override;

 private:
  void redraw();
  QSpinBox* layer_;
  QComboBox* head_;
  QLabel* density_;
  QLabel* axes_;
  QLabel* hover_;
  render::FieldFrame* frame_;
  render::FieldView* field_;
};

}  // namespace ui
