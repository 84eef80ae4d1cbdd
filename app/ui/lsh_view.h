// The LSH view (Reformer): pixels coloured by their bucket for a layer, head and round, the
// sorted order as a strip with its chunk boundaries, and the share of the dense attention mass
// that LSH kept. Other families get a message saying the view needs a Reformer model.
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
  QString export_name() const override;
  attnscope::Status export_to(const QString& path, QStringList* written) const override;

 protected:
  void reload() override;
  void show_result(const session::InspectResult& r) override;

 private:
  void redraw();
  QSpinBox* layer_;
  QComboBox* head_;
  QSpinBox* round_;
  QLabel* message_;
  QLabel* kept_;
  render::FieldView* field_;
  QLabel* strip_;
  QWidget* content_;
};

}  // namespace ui
