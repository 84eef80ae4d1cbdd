// Step-through: the timeline's controls ask for InspectKind::kStep rows; SmallMultiples paints
// one cell per layer x head from attention_heat / attention_per_position (the Attention view's
// own definitions).
#include "step_view.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QMouseEvent>
#include <QPainter>
#include <QSignalBlocker>
#include <QSlider>
#include <QSpinBox>
#include <QToolButton>
#include <QVBoxLayout>
#include <algorithm>

#include "attention_view.h"
#include "render/colormap.h"

namespace ui {

namespace {
constexpr int kLeft = 150, kTop = 22, kGap = 10, kCaption = 16;
const QColor kInk(205, 205, 210), kFutureGrey(52, 52, 58);

int grid_layers(const session::InspectResult* r) {
  return r ? static_cast<int>(r->rows.size()) : 0;
}
int grid_heads(const session::InspectResult* r) {
  int h = 0;
  if (r)
    for (const auto& row : r->rows) h = std::max(h, row.heads);
  return h;
}
}  // namespace

SmallMultiples::SmallMultiples(QWidget* parent) : QWidget(parent) {
  setMouseTracking(true);
  setMinimumSize(360, 240);
}

void SmallMultiples::set_result(std::shared_ptr<const session::InspectResult> r) {
  result_ = std::move(r);
  update();
}

QRect SmallMultiples::cell_rect(int layer, int head) const {
  const int L = grid_layers(result_.get()), H = grid_heads(result_.get());
  if (layer < 0 || head < 0 || layer >= L || head >= H) return {};
  const int side = std::max(
      8, std::min((width() - kLeft - kGap) / H - kGap, (height() - kTop) / L - kGap - kCaption));
  return QRect(kLeft + head * (side + kGap), kTop + layer * (side + kGap + kCaption), side, side);
}

QImage SmallMultiples::cell_image(int layer, int head) const {
  if (!result_ || layer >= grid_layers(result_.get())) return {};
  const session::InspectResult& r = *result_;
  const attnscope::AttnRow& row = r.rows[static_cast<size_t>(layer)];
  if (!r.row_errors[static_cast<size_t>(layer)].empty() || head >= row.heads) return {};
  const attnscope::Modality& mod = r.model->config.modality;
  const int64_t q = r.request.query;
  if (mod.kind == attnscope::ModalityKind::kImage) {
    const PixelMap map = pixel_map(mod);
    const std::vector<float> heat = attention_heat(row, head, map);
    const float top = std::max(1e-30f, *std::max_element(heat.begin(), heat.end()));
    QImage img(map.w, map.h, QImage::Format_RGB888);
    for (int y = 0; y < map.h; ++y)
      for (int x = 0; x < map.w; ++x) {
        const int64_t first = map.position({x, y}, 0);
        const float v = heat[static_cast<size_t>(y) * map.w + x];
        if (first > q) {
          img.setPixelColor(x, y, kFutureGrey);
          continue;
        }
        const render::Rgb8 c = render::viridis(v / top);
        img.setPixelColor(x, y, QColor(c.r, c.g, c.b));
      }
    return img;
  }
  // 1-D: 128 columns over the whole sequence, each the most any of its positions gets.
  const int64_t total = mod.seq_len();
  const int cols = static_cast<int>(std::min<int64_t>(128, total));
  const std::vector<double> per = attention_per_position(row, head, r.n);
  std::vector<double> col(static_cast<size_t>(cols), 0.0);
  for (int64_t p = 0; p < r.n; ++p) {
    const size_t c = static_cast<size_t>(p * cols / total);
    col[c] = std::max(col[c], per[static_cast<size_t>(p)]);
  }
  const double top = std::max(1e-30, *std::max_element(col.begin(), col.end()));
  QImage img(cols, 1, QImage::Format_RGB888);
  for (int c = 0; c < cols; ++c) {
    if (static_cast<int64_t>(c) * total / cols > q) {
      img.setPixelColor(c, 0, kFutureGrey);
      continue;
    }
    const render::Rgb8 v = render::viridis(col[static_cast<size_t>(c)] / top);
    img.setPixelColor(c, 0, QColor(v.r, v.g, v.b));
  }
  return img;
}

QString SmallMultiples::cell_text(int layer, int head) const {
  if (!result_ || layer < 0 || layer >= grid_layers(result_.get())) return {};
  const session::InspectResult& r = *result_;
  const QString kind = layer_kind(*r.model, layer);
  const QString head_of = tr("layer %1 (%2), head %3: ").arg(layer).arg(kind).arg(head);
  if (!r.row_errors[static_cast<size_t>(layer)].empty())
    return head_of + QString::fromStdString(r.row_errors[static_cast<size_t>(layer)]);
  const attnscope::AttnRow& row = r.rows[static_cast<size_t>(layer)];
  if (head < 0 || head >= row.heads) return {};
  const std::vector<double> per = attention_per_position(row, head, r.n);
  const auto most = std::max_element(per.begin(), per.end());
  return head_of + tr("kept %1% of the dense mass · most attended: position %2 (weight %3)")
                       .arg(row.dense_kept[static_cast<size_t>(head)] * 100, 0, 'f', 1)
                       .arg(most - per.begin())
                       .arg(*most, 0, 'g', 3);
}

void SmallMultiples::paintEvent(QPaintEvent*) {
  QPainter p(this);
  p.fillRect(rect(), QColor(28, 28, 31));
  const int L = grid_layers(result_.get()), H = grid_heads(result_.get());
  p.setPen(kInk);
  if (L == 0 || H == 0) {
    p.drawText(rect(), Qt::AlignCenter, tr("Generate, or open a prompt, to step through it."));
    return;
  }
  const session::InspectResult& r = *result_;
  QFont small = p.font();
  small.setPointSizeF(std::max(7.0, small.pointSizeF() * 0.85));
  p.setFont(small);
  for (int h = 0; h < H; ++h) {
    const QRect c = cell_rect(0, h);
    p.drawText(QRect(c.left(), 2, c.width(), kTop - 4), Qt::AlignCenter, tr("head %1").arg(h));
  }
  for (int l = 0; l < L; ++l) {
    const QRect c0 = cell_rect(l, 0);
    const QString kind = layer_kind(*r.model, l);
    p.setPen(kInk);
    p.drawText(QRect(4, c0.top(), kLeft - 10, c0.height()),
               Qt::AlignRight | Qt::AlignVCenter | Qt::TextWordWrap,
               tr("layer %1\n%2").arg(l).arg(kind));
    if (!r.row_errors[static_cast<size_t>(l)].empty()) {
      p.drawText(QRect(c0.left(), c0.top(), width() - c0.left() - 4, c0.height()),
                 Qt::AlignLeft | Qt::AlignVCenter | Qt::TextWordWrap,
                 QString::fromStdString(r.row_errors[static_cast<size_t>(l)]));
      continue;
    }
    const attnscope::AttnRow& row = r.rows[static_cast<size_t>(l)];
    for (int h = 0; h < row.heads; ++h) {
      const QRect c = cell_rect(l, h);
      p.drawImage(c, cell_image(l, h));
      const double kept = row.dense_kept[static_cast<size_t>(h)];
      p.setPen(kept < 0.999 ? QColor(255, 200, 90) : kInk);
      p.drawText(QRect(c.left(), c.bottom() + 1, c.width(), kCaption), Qt::AlignCenter,
                 tr("kept %1%").arg(kept * 100, 0, 'f', kept < 0.999 ? 1 : 0));
    }
  }
  // The query's place in every image cell: a red outline around its pixel.
  const attnscope::Modality& mod = r.model->config.modality;
  if (mod.kind == attnscope::ModalityKind::kImage) {
    const PixelMap map = pixel_map(mod);
    const QPoint q = map.pixel(r.request.query);
    p.setPen(QPen(QColor(255, 60, 60), 1));
    for (int l = 0; l < L; ++l)
      for (int h = 0; h < H; ++h) {
        const QRect c = cell_rect(l, h);
        if (c.isEmpty() || !r.row_errors[static_cast<size_t>(l)].empty()) continue;
        const double zx = c.width() / static_cast<double>(map.w),
                     zy = c.height() / static_cast<double>(map.h);
        p.drawRect(QRectF(c.left() + q.x() * zx, c.top() + q.y() * zy, zx, zy));
      }
  }
}

void SmallMultiples::mouseMoveEvent(QMouseEvent* e) {
  const int L = grid_layers(result_.get()), H = grid_heads(result_.get());
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h)
      if (cell_rect(l, h).contains(e->position().toPoint())) {
        setToolTip(cell_text(l, h));
        emit hovered(cell_text(l, h));
        return;
      }
}

StepView::StepView(session::Session* s, QWidget* parent)
    : InspectView(s, session::InspectKind::kStep, parent) {
  slider_ = new QSlider(Qt::Horizontal, this);
  slider_->setObjectName(QStringLiteral("step-slider"));
  spin_ = new QSpinBox(this);
  back_ = new QToolButton(this);
  forward_ = new QToolButton(this);
  back_->setArrowType(Qt::LeftArrow);
  forward_->setArrowType(Qt::RightArrow);
  back_->setToolTip(tr("One position back (Left)"));
  forward_->setToolTip(tr("One position on (Right)"));
  back_->setAutoRepeat(true);
  forward_->setAutoRepeat(true);
  info_ = new QLabel(tr("Generate, or open a prompt, to step through the positions."), this);
  info_->setWordWrap(true);
  info_->setMinimumHeight(info_->fontMetrics().lineSpacing() * 3);
  hover_ = new QLabel(tr("Hover a cell to read its layer, head, kept mass and most attended key."),
                      this);
  hover_->setWordWrap(true);
  grid_ = new SmallMultiples(this);
  auto* controls = new QHBoxLayout;
  controls->addWidget(new QLabel(tr("Step (query position)"), this));
  controls->addWidget(back_);
  controls->addWidget(slider_, 1);
  controls->addWidget(forward_);
  controls->addWidget(spin_);
  auto* layout = new QVBoxLayout(this);
  layout->addLayout(controls);
  layout->addWidget(info_);
  layout->addWidget(grid_, 1);
  layout->addWidget(hover_);
  connect(slider_, &QSlider::valueChanged, this, [this](int v) {
    follow_end_ = v == slider_->maximum();
    set_step(v);
  });
  connect(spin_, &QSpinBox::valueChanged, this, [this](int v) {
    follow_end_ = v == spin_->maximum();
    set_step(v);
  });
  connect(back_, &QToolButton::clicked, this, [this] { slider_->setValue(slider_->value() - 1); });
  connect(forward_, &QToolButton::clicked, this,
          [this] { slider_->setValue(slider_->value() + 1); });
  connect(grid_, &SmallMultiples::hovered, hover_, &QLabel::setText);
}

void StepView::reload() {
  const int64_t known = shown()->run ? shown()->run->known(shown()->filled) : 0;
  const int top = static_cast<int>(std::max<int64_t>(0, known - 1));
  {
    const QSignalBlocker a(slider_), b(spin_);
    slider_->setRange(0, top);
    spin_->setRange(0, top);
    slider_->setPageStep(std::max(1, top / 32));
  }
  if (known < 1) return;
  // New tokens: stay at the end if the user left the slider there; otherwise keep the step.
  set_step(follow_end_ || step_ < 0 || step_ > top ? top : step_);
}

void StepView::set_step(int64_t position) {
  if (!shown() || !shown()->run) return;
  const int64_t known = shown()->run->known(shown()->filled);
  if (known < 1) return;
  position = std::clamp<int64_t>(position, 0, known - 1);
  {
    const QSignalBlocker a(slider_), b(spin_);
    slider_->setValue(static_cast<int>(position));
    spin_->setValue(static_cast<int>(position));
  }
  if (position == step_ && result_ && result_->request.query == position &&
      result_->run == shown()->run)
    return;
  step_ = position;
  session::InspectRequest r;
  r.query = position;
  request(r);
}

void StepView::show_result(const session::InspectResult& r) {
  grid_->set_result(result_);
  if (!r.error.empty()) {
    info_->setText(tr("Cannot step here: %1").arg(QString::fromStdString(r.error)));
    return;
  }
  const attnscope::Modality& mod = r.model->config.modality;
  QString where;
  if (mod.kind == attnscope::ModalityKind::kImage) {
    const PixelMap map = pixel_map(mod);
    const QPoint px = map.pixel(r.request.query);
    where = tr(" (pixel %1, %2, channel %3)")
                .arg(px.x())
                .arg(px.y())
                .arg(r.request.query % map.channels);
  } else if (mod.kind == attnscope::ModalityKind::kAudio) {
    where = tr(" (t = %1 s)").arg(static_cast<double>(r.request.query) / mod.rate, 0, 'f', 3);
  }
  const int64_t prompt = r.run ? r.run->prompt_length() : 0;
  // The mean kept share over heads and layers with a row.
  double kept = 0;
  int cells = 0;
  for (size_t l = 0; l < r.rows.size(); ++l)
    if (r.row_errors[l].empty())
      for (double k : r.rows[l].dense_kept) kept += k, ++cells;
  info_->setText(tr("Position %1%2, %3 · cells: where this query attends in each layer × head "
                    "under the layer's own rule, on positions 0..%1 as when it was generated · "
                    "brightness: weight / the cell's largest; grey: after the query; red box: "
                    "the query · kept: the share of a dense causal softmax's mass the rule "
                    "kept (mean %4%)")
                     .arg(r.request.query)
                     .arg(where)
                     .arg(r.request.query < prompt ? tr("in the prompt") : tr("generated"))
                     .arg(cells ? kept / cells * 100 : 0.0, 0, 'f', 1));
}

QString StepView::export_name() const {
  return QStringLiteral("%1-step%2.png").arg(model_stem()).arg(std::max<int64_t>(0, step_));
}

attnscope::Status StepView::export_to(const QString& path, QStringList* written) const {
  if (!result_ || result_->rows.empty())
    return attnscope::invalid_argument("there is no step to export yet: generate first");
  return write_files({{path, png_bytes(grid_->grab().toImage())}}, written);
}

}  // namespace ui
