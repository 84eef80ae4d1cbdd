// The attention view: where one query attends, as a heatmap over the image (keys summed over
// each pixel's channels, Hourglass keys spread over the positions they pool, Perceiver AR
// latents placed at their positions), for a chosen layer and head or the mean over heads.
#pragma once

#include "attnscope/inspect.h"
#include "inspect_view.h"
#include "render/field_view.h"

class QComboBox;
class QLabel;
class QSpinBox;

namespace ui {

// The attention of row r (head h, or the mean over heads for h < 0) summed per pixel.
std::vector<float> attention_heat(const attnscope::AttnRow& r, int head, const PixelMap& map);

class AttentionView : public InspectView {
  Q_OBJECT

 public:
  explicit AttentionView(session::Session* s, QWidget* parent = nullptr);

  render::FieldView* field_view() const { return field_; }
  int64_t query() const { return query_; }
  // Sets the query position and asks for its row.
  void set_query(int64_t p);
  void set_layer(int layer);
  // -1: the mean over heads.
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
  QComboBox* channel_;
  QLabel* info_;
  render::FieldFrame* frame_;
  render::FieldView* field_;
  int64_t query_ = -1;
  bool pinned_ = false;
};

}  // namespace ui
