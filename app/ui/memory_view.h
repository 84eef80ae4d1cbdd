// The memory view: peak inference memory against sequence length, log-log, for every family
// at the current model's widths (analytic lines, measured points), the dense stored-attention
// series, and the seeds' headline figures as labelled points. Drawn with QPainter.
#pragma once

#include "inspect_view.h"

namespace ui {

// family,length,category,estimate_bytes,measured_bytes (measured empty where not measured).
QByteArray memory_csv(const session::InspectResult& r);

class MemoryView : public InspectView {
  Q_OBJECT

 public:
  explicit MemoryView(session::Session* s, QWidget* parent = nullptr);
  QString export_name() const override;
  // Writes path (PNG) and the CSV beside it (same stem, .csv).
  attnscope::Status export_to(const QString& path, QStringList* written) const override;
  // The plot at size, as the widget paints it.
  QImage render_plot(QSize size) const;

 protected:
  void reload() override;
  void show_result(const session::InspectResult&) override { update(); }
  void paintEvent(QPaintEvent*) override;
};

}  // namespace ui
