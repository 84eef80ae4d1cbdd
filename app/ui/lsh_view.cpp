// LSH view: buckets coloured in C++ by render::CategoryPalette (the field shows those colours;
// the sorted strip and the legend use the same palette), kept mass per head and mean.
#include "lsh_view.h"

#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QPainter>
#include <QSpinBox>
#include <QVBoxLayout>

#include "attnscope/inspect.h"

namespace ui {

LshView::LshView(session::Session* s, QWidget* parent)
    : InspectView(s, session::InspectKind::kLsh, parent) {
  layer_ = new QSpinBox(this);
  head_ = new QComboBox(this);
  round_ = new QSpinBox(this);
  message_ = new QLabel(tr("Open a Reformer model to see its LSH buckets."), this);
  message_->setObjectName(QStringLiteral("lsh-message"));
  message_->setWordWrap(true);
  kept_ = new QLabel(this);
  kept_->setWordWrap(true);
  legend_ = new QLabel(this);
  legend_->setObjectName(QStringLiteral("lsh-legend"));
  legend_->setWordWrap(true);
  legend_->setTextFormat(Qt::RichText);
  hover_ = new QLabel(tr("Hover a pixel to read its bucket."), this);
  hover_->setObjectName(QStringLiteral("lsh-hover"));
  frame_ = new render::FieldFrame(this);
  field_ = frame_->view();
  head_->setSizeAdjustPolicy(QComboBox::AdjustToContents);
  strip_ = new QLabel(this);
  strip_->setMinimumHeight(56);
  strip_->setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Preferred);
  // Everything but the message sits in content_, hidden for other families.
  content_ = new QWidget(this);
  auto* controls = new QHBoxLayout;
  controls->addWidget(new QLabel(tr("Layer"), content_));
  controls->addWidget(layer_);
  controls->addWidget(new QLabel(tr("Head"), content_));
  controls->addWidget(head_);
  controls->addWidget(new QLabel(tr("Round"), content_));
  controls->addWidget(round_);
  controls->addStretch(1);
  auto* inner = new QVBoxLayout(content_);
  inner->setContentsMargins(0, 0, 0, 0);
  inner->addLayout(controls);
  inner->addWidget(kept_);
  inner->addWidget(legend_);
  inner->addWidget(frame_, 1);
  inner->addWidget(hover_);
  // Wrapped, so that the legend never sets the window's minimum width.
  auto* order_legend = new QLabel(tr("Sorted order (by bucket, then position); white ticks: chunk "
                                     "boundaries, each chunk attends to itself and the one before"),
                                  content_);
  order_legend->setWordWrap(true);
  inner->addWidget(order_legend);
  inner->addWidget(strip_);
  message_->setAlignment(Qt::AlignCenter);
  auto* layout = new QVBoxLayout(this);
  layout->addWidget(message_);
  layout->addWidget(content_, 1);
  connect(layer_, &QSpinBox::valueChanged, this, [this] {
    session::InspectRequest r;
    r.layer = layer_->value();
    request(r);
  });
  connect(head_, &QComboBox::currentIndexChanged, this, [this] { redraw(); });
  connect(round_, &QSpinBox::valueChanged, this, [this] { redraw(); });
  connect(field_, &render::FieldView::hovered, this,
          [this](QPoint px) { hover_->setText(pixel_text(px)); });
}

QString LshView::pixel_text(QPoint px) const {
  if (!result_ || !result_->model || !result_->error.empty()) return {};
  const attnscope::LshInspect& l = result_->lsh;
  const int head = std::max(0, head_->currentIndex());
  const int round = std::min(round_->value(), l.n_hashes - 1);
  if (head >= l.heads || round < 0) return {};
  const PixelMap map = pixel_map(result_->model->config.modality);
  const int64_t pos = map.position(px, 0);
  if (pos < 0 || pos >= l.n) return tr("pixel (%1, %2): not generated yet").arg(px.x()).arg(px.y());
  const size_t base = (static_cast<size_t>(head) * l.n_hashes + round) * static_cast<size_t>(l.n);
  const int b = l.buckets[base + static_cast<size_t>(pos)];
  int64_t slot = 0, same = 0;
  for (int64_t t = 0; t < l.n; ++t) {
    if (l.order[base + static_cast<size_t>(t)] == pos) slot = t;
    if (l.buckets[base + static_cast<size_t>(t)] == b) ++same;
  }
  const int rank = palette_.rank(b);
  return tr("pixel (%1, %2) · position %3 · bucket %4 (%5 positions, %6%, rank %7 of %8 used) · "
            "sorted slot %9, chunk %10")
      .arg(px.x())
      .arg(px.y())
      .arg(pos)
      .arg(b)
      .arg(same)
      .arg(100.0 * static_cast<double>(same) / static_cast<double>(l.n), 0, 'f', 1)
      .arg(rank + 1)
      .arg(palette_.ranked().size())
      .arg(slot)
      .arg(slot / std::max(1, l.chunk));
}

void LshView::reload() {
  const session::ModelSummary& m = *shown()->model;
  const bool reformer = m.config.family == attnscope::Family::kReformer;
  content_->setVisible(reformer);
  if (!reformer) {
    message_->setSizePolicy(QSizePolicy::Preferred, QSizePolicy::Expanding);
    message_->setText(tr("This view needs a Reformer model: %1 is a %2 model, which has no LSH "
                         "buckets. Open a Reformer model (Ctrl+O).")
                          .arg(QString::fromStdString(m.path).section(QLatin1Char('/'), -1),
                               QString::fromStdString(m.family)));
    message_->show();
    return;
  }
  message_->hide();
  message_->setSizePolicy(QSizePolicy::Preferred, QSizePolicy::Maximum);
  layer_->setRange(0, std::max(0, attnscope::inspect_layer_count(m.config) - 1));
  round_->setRange(0, std::max(0, m.config.lsh.n_hashes - 1));
  if (head_->count() != m.config.heads) {
    head_->clear();
    for (int h = 0; h < m.config.heads; ++h) head_->addItem(tr("head %1").arg(h));
  }
  session::InspectRequest r;
  r.layer = layer_->value();
  request(r);
}

void LshView::show_result(const session::InspectResult&) {
  redraw();
}

void LshView::redraw() {
  if (!result_ || !result_->model) return;
  const session::InspectResult& r = *result_;
  if (!r.error.empty()) {
    message_->setText(tr("No buckets: %1").arg(QString::fromStdString(r.error)));
    message_->show();
    return;
  }
  const attnscope::LshInspect& l = r.lsh;
  const int head = std::max(0, head_->currentIndex());
  const int round = std::min(round_->value(), l.n_hashes - 1);
  if (head >= l.heads || round < 0) return;
  const size_t base = (static_cast<size_t>(head) * l.n_hashes + round) * static_cast<size_t>(l.n);
  const PixelMap map = pixel_map(r.model->config.modality);
  // The palette: the 20 most used buckets of this head and round (over all n positions) in
  // colours told apart, the rest grey.
  std::vector<int64_t> counts(static_cast<size_t>(std::max(1, l.n_buckets)), 0);
  for (int64_t t = 0; t < l.n; ++t) {
    const int b = l.buckets[base + static_cast<size_t>(t)];
    if (b >= 0 && b < static_cast<int>(counts.size())) ++counts[static_cast<size_t>(b)];
  }
  palette_ = render::CategoryPalette(counts);
  render::Field f;
  f.w = map.w;
  f.h = map.h;
  f.mode = render::FieldMode::kColors;
  f.base = QImage(map.w, map.h, QImage::Format_RGB888);
  f.base.fill(Qt::black);
  f.values.assign(static_cast<size_t>(map.w) * map.h, -1.0f);
  for (int64_t i = 0; i < static_cast<int64_t>(f.values.size()); ++i)
    if (i * map.channels < l.n) {
      const int b = l.buckets[base + static_cast<size_t>(i * map.channels)];
      f.values[static_cast<size_t>(i)] = static_cast<float>(b);
      const render::Rgb8 c = palette_.color(b);
      f.base.setPixelColor(static_cast<int>(i % map.w), static_cast<int>(i / map.w),
                           QColor(c.r, c.g, c.b));
    }
  field_->set_field(std::move(f));
  render::FieldGuides g;
  if (r.model->config.modality.kind == attnscope::ModalityKind::kImage) {
    g.x = {tr("pixel x"), 0, static_cast<double>(map.w)};
    g.y = {tr("pixel y"), 0, static_cast<double>(map.h)};
  }
  field_->set_guides(std::move(g));

  // The legend: the coloured buckets with their share of the positions, then the grey rest.
  QString legend = tr("Buckets, most used first: ");
  int64_t other = 0;
  int other_buckets = 0;
  for (int k = 0; k < static_cast<int>(palette_.ranked().size()); ++k) {
    const int b = palette_.ranked()[static_cast<size_t>(k)];
    const int64_t c = counts[static_cast<size_t>(b)];
    if (k >= render::kDistinctColors) {
      other += c;
      ++other_buckets;
      continue;
    }
    const render::Rgb8 col = palette_.color(b);
    legend += QStringLiteral(
                  "<span style=\"background-color:%1\">&nbsp;&nbsp;&nbsp;</span>"
                  "&nbsp;%2&nbsp;%3%&nbsp;&nbsp; ")
                  .arg(QColor(col.r, col.g, col.b).name())
                  .arg(b)
                  .arg(100.0 * static_cast<double>(c) / static_cast<double>(l.n), 0, 'f', 1);
  }
  if (other_buckets > 0) {
    const render::Rgb8 col = render::kOtherCategoryColor;
    legend += tr("<span style=\"background-color:%1\">&nbsp;&nbsp;&nbsp;</span>&nbsp;%2 other "
                 "buckets %3% (grey; hover for the id)")
                  .arg(QColor(col.r, col.g, col.b).name())
                  .arg(other_buckets)
                  .arg(100.0 * static_cast<double>(other) / static_cast<double>(l.n), 0, 'f', 1);
  }
  if (r.run && r.n < r.run->length())
    legend += tr(" · on the first %1 of %2 positions (generation under way or stopped)")
                  .arg(r.n)
                  .arg(r.run->length());
  legend_->setText(legend);

  QString kept = tr("Dense attention mass kept by LSH (all rounds): ");
  double mean = 0;
  for (int h = 0; h < l.heads; ++h) {
    kept += tr("head %1 %2%, ").arg(h).arg(l.kept_mass[static_cast<size_t>(h)] * 100, 0, 'f', 1);
    mean += l.kept_mass[static_cast<size_t>(h)] / l.heads;
  }
  kept +=
      tr("mean %1% · this round alone: %2% · %3 buckets, chunk %4, %5 rounds · pixels "
         "coloured by the bucket of their first channel")
          .arg(mean * 100, 0, 'f', 1)
          .arg(l.kept_mass_round[static_cast<size_t>(head * l.n_hashes + round)] * 100, 0, 'f', 1)
          .arg(l.n_buckets)
          .arg(l.chunk)
          .arg(l.n_hashes);
  kept_->setText(kept);

  const int sw = std::max(200, strip_->width()), sh = 48;
  QImage strip(sw, sh, QImage::Format_RGB888);
  strip.fill(QColor(28, 28, 31));
  QPainter p(&strip);
  for (int x = 0; x < sw; ++x) {
    const int64_t slot = static_cast<int64_t>(x) * l.n / sw;
    const int pos = l.order[base + static_cast<size_t>(slot)];
    const render::Rgb8 c = palette_.color(l.buckets[base + static_cast<size_t>(pos)]);
    p.setPen(QColor(c.r, c.g, c.b));
    p.drawLine(x, 8, x, sh - 1);
  }
  p.setPen(Qt::white);
  for (int64_t c = l.chunk; c < l.n; c += l.chunk) {
    const int x = static_cast<int>(c * sw / l.n);
    p.drawLine(x, 0, x, 10);
  }
  p.end();
  strip_->setPixmap(QPixmap::fromImage(strip));
}

QString LshView::export_name() const {
  return QStringLiteral("%1-lsh-layer%2-round%3.png")
      .arg(model_stem())
      .arg(layer_->value())
      .arg(round_->value());
}

attnscope::Status LshView::export_to(const QString& path, QStringList* written) const {
  const render::Field& f = field_->field();
  if (f.values.empty()) return attnscope::invalid_argument("there are no buckets to export");
  return write_files({{path, png_bytes(render::field_render(f, std::max(1, 512 / f.w)))}}, written);
}

}  // namespace ui
