// The attention view: where one query attends, as a heatmap over the image (keys summed over
// each pixel's channels, Hourglass keys spread over the positions they pool, Perceiver AR
// latents placed at their positions), for a chosen layer and head or the mean over heads;
// audio and text as a 1-D track over time (AttentionTrack).
#pragma once

#include "attnscope/inspect.h"
#include "inspect_view.h"
#include "render/field_view.h"

class QComboBox;
class QStackedWidget;
class QLabel;
class QSpinBox;

namespace ui {

class AttentionTrack;

// The attention of row r (head h, or the mean over heads for h < 0) on each of positions
// 0..npos-1: a key that pools several positions (Hourglass) spreads its weight evenly over them.
std::vector<double> attention_per_position(const attnscope::AttnRow& r, int head, int64_t npos);
// The same summed per pixel (over its channels).
std::vector<float> attention_heat(const attnscope::AttnRow& r, int head, const PixelMap& map);

class AttentionView : public InspectView {
  Q_OBJECT

 public:
  explicit AttentionView(session::Session* s, QWidget* parent = nullptr);

  render::FieldView* field_view() const { return field_; }
  AttentionTrack* track() const { return track_; }
  int64_t query() const { return query_; }
  QLabel* info_label() const { return info_; }
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
  void redraw_track();
  QSpinBox* layer_;
  QComboBox* head_;
  QComboBox* channel_;
  QLabel* channel_label_;
  QLabel* info_;
  render::FieldFrame* frame_;
  render::FieldView* field_;
  AttentionTrack* track_;
  QStackedWidget* stack_;
  int64_t query_ = -1;
  bool pinned_ = false;
};

}  // namespace ui
