// Pattern view: all heads of a layer are fetched at once; the head box only redraws.
#include "pattern_view.h"

#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QSpinBox>
#include <QVBoxLayout>

#include "attnscope/inspect.h"

namespace ui {

QString pattern_density_text(double density) {
  return QObject::tr("density %1% of dense causal · FLOPs saved %2%")
      .arg(density * 100, 0, 'f', 2)
      .arg((1 - density) * 100, 0, 'f', 2);
}

PatternView::PatternView(session::Session* s, QWidget* parent)
    : InspectView(s, session::InspectKind::kPattern, parent) {
  layer_ = new QSpinBox(this);
  head_ = new QComboBox(this);
  density_ = new QLabel(this);
  density_->setObjectName(QStringLiteral("pattern-density"));
  QFont big = density_->font();
  big.setPointSizeF(big.pointSizeF() * 1.2);
  big.setBold(true);
  density_->setFont(big);
  axes_ = new QLabel(tr("Open a model to see its attention pattern."), this);
  axes_->setWordWrap(true);
  hover_ = new QLabel(tr("Hover a cell to read its queries, keys and share."), this);
  hover_->setObjectName(QStringLiteral("pattern-hover"));
  frame_ = new render::FieldFrame(this);
  field_ = frame_->view();
  head_->setSizeAdjustPolicy(QComboBox::AdjustToContents);
  auto* controls = new QHBoxLayout;
  controls->addWidget(new QLabel(tr("Layer"), this));
  controls->addWidget(layer_);
  controls->addWidget(new QLabel(tr("Head"), this));
  controls->addWidget(head_);
  controls->addSpacing(16);
  controls->addWidget(density_);
  controls->addStretch(1);
  auto* layout = new QVBoxLayout(this);
  layout->addLayout(controls);
  layout->addWidget(axes_);
  layout->addWidget(frame_, 1);
  layout->addWidget(hover_);
  connect(layer_, &QSpinBox::valueChanged, this, [this] {
    session::InspectRequest r;
    r.layer = layer_->value();
    request(r);
  });
  connect(head_, &QComboBox::currentIndexChanged, this, [this] { redraw(); });
  connect(field_, &render::FieldView::hovered, this,
          [this](QPoint cell) { hover_->setText(cell_text(cell)); });
}

QString PatternView::cell_text(QPoint cell) const {
  if (!result_ || !result_->error.empty()) return {};
  const session::InspectResult& r = *result_;
  const int h = std::max(0, head_->currentIndex());
  if (h >= static_cast<int>(r.patterns.size())) return {};
  const attnscope::PatternImage& p = r.patterns[static_cast<size_t>(h)];
  const int g = p.grid;
  if (cell.x() < 0 || cell.y() < 0 || cell.x() >= g || cell.y() >= g) return {};
  const size_t c = static_cast<size_t>(cell.y()) * g + cell.x();
  // The cell's rows and columns, as fill_pattern splits them: [a * rows / g, (a + 1) * rows / g).
  const int64_t q0 = p.row_first + cell.y() * p.rows / g,
                q1 = p.row_first + (cell.y() + 1) * p.rows / g - 1;
  const int64_t k0 = cell.x() * p.cols / g, k1 = (cell.x() + 1) * p.cols / g - 1;
  const QString where =
      tr("%1 %2-%3 × %4 %5-%6: ")
          .arg(QString::fromStdString(p.rows_label).section(QLatin1Char(' '), 0, 0))
          .arg(q0)
          .arg(q1)
          .arg(QString::fromStdString(p.cols_label).section(QLatin1Char(' '), 0, 0))
          .arg(k0)
          .arg(k1);
  if (p.cells_causal[c] <= 0) return where + tr("future (no query here may see these keys)");
  QString text = tr("%1% of the cell's causal pairs attended").arg(p.cells[c] * 100, 0, 'f', 1);
  if (p.cells_any[c] <= 0) text = tr("none attended: pruned by the pattern");
  if (p.cells_causal[c] < 1)
    text += tr(" (%1% of the cell is causal)").arg(p.cells_causal[c] * 100, 0, 'f', 0);
  return where + text;
}

void PatternView::set_layer(int layer) {
  layer_->setValue(layer);
}
void PatternView::set_head(int head) {
  head_->setCurrentIndex(head);
}

void PatternView::reload() {
  const session::ModelSummary& m = *shown()->model;
  layer_->setRange(0, std::max(0, attnscope::inspect_layer_count(m.config) - 1));
  if (head_->count() != m.config.heads) {
    head_->clear();
    for (int h = 0; h < m.config.heads; ++h) head_->addItem(tr("head %1").arg(h));
  }
  session::InspectRequest r;
  r.layer = layer_->value();
  request(r);
}

void PatternView::show_result(const session::InspectResult&) {
  redraw();
}

void PatternView::redraw() {
  if (!result_) return;
  const session::InspectResult& r = *result_;
  if (!r.error.empty()) {
    density_->clear();
    axes_->setText(tr("No pattern: %1").arg(QString::fromStdString(r.error)));
    return;
  }
  const int h = std::max(0, head_->currentIndex());
  if (h >= static_cast<int>(r.patterns.size())) return;
  const attnscope::PatternImage& p = r.patterns[static_cast<size_t>(h)];
  render::Field f;
  f.w = f.h = p.grid;
  f.mode = render::FieldMode::kViridis;
  f.values.resize(p.cells.size());
  // Any allowed pair lifts a cell to at least 0.3, so one strided column in a cell shows;
  // cells wholly in the future are grey, apart from causal pairs the pattern pruned (dark).
  for (size_t i = 0; i < p.cells.size(); ++i)
    f.values[i] = p.cells_causal[i] <= 0 ? render::kFieldFuture
                  : p.cells_any[i] > 0   ? 0.3f + 0.7f * p.cells[i]
                                         : 0.0f;
  field_->set_field(std::move(f));
  render::FieldGuides g;
  g.x = {QString::fromStdString(p.cols_label), 0, static_cast<double>(p.cols)};
  g.y = {QString::fromStdString(p.rows_label), static_cast<double>(p.row_first),
         static_cast<double>(p.row_first + p.rows)};
  g.bar.shown = true;
  g.bar.label = tr("attended share of the cell's causal pairs (%)");
  g.bar.lo = 0;
  g.bar.hi = 100;
  g.bar.v_lo = 0.3f;
  g.bar.v_hi = 1.0f;
  const render::Rgb8 none = render::viridis(0), future = render::kFutureColor;
  g.bar.swatches = {{QColor(none.r, none.g, none.b), tr("none attended (pruned)")},
                    {QColor(future.r, future.g, future.b), tr("future (not causal)")}};
  field_->set_guides(std::move(g));
  density_->setText(pattern_density_text(p.density));
  const int layer = r.request.layer;
  const QString kind = layer_kind(*r.model, layer);
  axes_->setText(
      tr("Layer %1 (%2), head %3 · rows: %4 (top to bottom) · columns: %5 (left to "
         "right) · %6 x %6 cells over length %7 · colour: the share of each cell's causal "
         "pairs this head attends (bar on the right)")
          .arg(layer)
          .arg(kind)
          .arg(h)
          .arg(QString::fromStdString(p.rows_label), QString::fromStdString(p.cols_label))
          .arg(p.grid)
          .arg(r.n));
}

QString PatternView::export_name() const {
  return QStringLiteral("%1-pattern-layer%2-head%3.png")
      .arg(model_stem())
      .arg(layer_->value())
      .arg(std::max(0, head_->currentIndex()));
}

attnscope::Status PatternView::export_to(const QString& path, QStringList* written) const {
  const render::Field& f = field_->field();
  if (f.values.empty()) return attnscope::invalid_argument("there is no pattern to export yet");
  return write_files({{path, png_bytes(render::field_render(f, std::max(1, 512 / f.w)))}}, written);
}

}  // namespace ui
