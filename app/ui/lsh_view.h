// The LSH view (Reformer): pixels coloured by their bucket for a layer, head and round (the
// most used buckets in colours told apart, with a legend; any bucket's id on hover), the sorted
// order as a strip with its chunk boundaries, and the share of the dense attention mass that
// LSH kept. It follows a run under way. Other families get a message saying the view needs a
// Reformer model.
#pragma once

#include "inspect_view.h"
#include "render/field_view.h"

class QComboBox;
class QLabel;
class QSpinBox;

namespace ui {

class LshView : public InspectView {
  Q_OBJECT

 public:
  explicit LshView(session::Session* s, QWidget* parent = nullptr);

  render::FieldView* field_view() const { return field_; }
  QLabel* message() const { return message_; }
  QLabel* legend() const { return legend_; }
  QLabel* hover_label() const { return hover_; }
  // The colours of the shown head and round: its most frequent buckets told apart.
  const render::CategoryPalette& palette() const { return palette_; }
  // "pixel (3, 7) · position 69 · bucket 17 (3rd most used, 4.2%) · sorted slot 812, chunk 12"
  QString pixel_text(QPoint px) const;
  QString export_name() const override;
  attnscope::Status export_to(const QString& path, QStringList* written) const override;

 protected:
  void reload() override;
  void show_result(const session::InspectResult& r) override;
  bool follows_run() const override { return true; }

 private:
  void redraw();
  QSpinBox* layer_;
  QComboBox* head_;
  QSpinBox* round_;
  QLabel* message_;
  QLabel* kept_;
  QLabel* legend_;
  QLabel* hover_;
  render::CategoryPalette palette_;
  render::FieldFrame* frame_;
  render::FieldView* field_;
  QLabel* strip_;
  QWidget* content_;
};

}  // namespace ui
