// The 1-D attention track: QPainter only; one min..max line (signal) and one max bar (weights)
// per pixel column.
#include "attention_track.h"

#include <QMouseEvent>
#include <QPainter>
#include <algorithm>

#include "render/guides.h"

namespace ui {

namespace {
constexpr int kMargin = 8, kGap = 14;
const QColor kBackground(28, 28, 31), kSignal(120, 170, 255), kWeight(255, 170, 60),
    kFuture(52, 52, 58), kQuery(255, 80, 80);
}  // namespace

AttentionTrack::AttentionTrack(QWidget* parent) : QWidget(parent) {
  setMouseTracking(true);
  setMinimumSize(320, 220);
}

void AttentionTrack::set_data(const attnscope::Modality& modality, std::vector<float> signal,
                              std::vector<double> weights, int64_t n_total, int64_t query) {
  modality_ = modality;
  signal_ = std::move(signal);
  weights_ = std::move(weights);
  n_total_ = n_total;
  query_ = query;
  update();
}

QRect AttentionTrack::signal_rect() const {
  const int left = kMargin + render::kAxisLeftRoom;
  const int h = height() - 2 * kMargin - render::kAxisBottomRoom - kGap;
  return QRect(left, kMargin, std::max(1, width() - left - kMargin), std::max(1, h / 3));
}

QRect AttentionTrack::weights_rect() const {
  const QRect s = signal_rect();
  return QRect(s.left(), s.bottom() + 1 + kGap, s.width(),
               std::max(1, height() - kMargin - render::kAxisBottomRoom - (s.bottom() + 1 + kGap)));
}

double AttentionTrack::x_of(int64_t p) const {
  const QRect r = weights_rect();
  return r.left() +
         static_cast<double>(p) * r.width() / static_cast<double>(std::max<int64_t>(1, n_total_));
}

int64_t AttentionTrack::position_at(double x) const {
  const QRect r = weights_rect();
  if (n_total_ <= 0 || x < r.left() || x >= r.left() + r.width()) return -1;
  return std::clamp<int64_t>(
      static_cast<int64_t>((x - r.left()) / r.width() * static_cast<double>(n_total_)), 0,
      n_total_ - 1);
}

void AttentionTrack::paintEvent(QPaintEvent*) {
  QPainter p(this);
  p.fillRect(rect(), kBackground);
  if (n_total_ <= 0) return;
  const QRect sig = signal_rect(), wr = weights_rect();
  const int64_t known = static_cast<int64_t>(signal_.size());
  // The future of the query (keys it may not see) shaded across both plots.
  if (query_ >= 0) {
    const double qx = x_of(query_ + 1);
    p.fillRect(QRectF(qx, sig.top(), wr.right() + 1 - qx, wr.bottom() - sig.top() + 1), kFuture);
  }
  double top = 0;
  for (double w : weights_) top = std::max(top, w);
  if (top <= 0) top = 1;
  // One line per pixel column: the signal's min..max, the weights' max.
  for (int x = 0; x < wr.width(); ++x) {
    const int64_t a = static_cast<int64_t>(x) * n_total_ / wr.width();
    const int64_t b = std::max(a + 1, static_cast<int64_t>(x + 1) * n_total_ / wr.width());
    if (a >= known) break;
    float lo = 1, hi = -1;
    double w = 0;
    for (int64_t i = a; i < std::min(b, known); ++i) {
      lo = std::min(lo, signal_[static_cast<size_t>(i)]);
      hi = std::max(hi, signal_[static_cast<size_t>(i)]);
      if (i < static_cast<int64_t>(weights_.size()))
        w = std::max(w, weights_[static_cast<size_t>(i)]);
    }
    const double cx = wr.left() + x + 0.5;
    p.setPen(kSignal);
    p.drawLine(QPointF(cx, sig.center().y() - hi * sig.height() / 2.0),
               QPointF(cx, sig.center().y() - lo * sig.height() / 2.0 + 0.5));
    if (w > 0) {
      p.setPen(kWeight);
      p.drawLine(QPointF(cx, wr.bottom() + 1),
                 QPointF(cx, wr.bottom() + 1 - w / top * wr.height()));
    }
  }
  if (query_ >= 0) {
    p.setPen(QPen(kQuery, 2));
    const double qx = x_of(query_) + 0.5;
    p.drawLine(QPointF(qx, sig.top()), QPointF(qx, wr.bottom()));
  }
  const bool audio = modality_.kind == attnscope::ModalityKind::kAudio;
  render::draw_axis_left(p, sig, {audio ? tr("amplitude") : tr("byte / 255"), 1.0, -1.0});
  render::draw_axis_left(p, wr, {tr("attention weight"), top, 0.0});
  const double span = audio ? static_cast<double>(n_total_) / std::max(1, modality_.rate)
                            : static_cast<double>(n_total_);
  render::draw_axis_bottom(p, wr, {audio ? tr("key time (s)") : tr("key position"), 0.0, span});
  p.setPen(QColor(205, 205, 210));
  p.drawText(QRect(wr.left() + 4, wr.top(), wr.width() - 8, 18), Qt::AlignRight | Qt::AlignTop,
             tr("orange: weight of each position (the most in a column) · red: the query · "
                "shaded: its future"));
}

void AttentionTrack::mouseMoveEvent(QMouseEvent* e) {
  const int64_t p = position_at(e->position().x());
  if (p >= 0) emit hovered(p);
}

void AttentionTrack::mousePressEvent(QMouseEvent* e) {
  const int64_t p = position_at(e->position().x());
  if (p >= 0) emit clicked(p);
}

}  // namespace ui
