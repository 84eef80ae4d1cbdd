// Tick choice and the QPainter drawing of axes and colour bars.
#include "guides.h"

#include <QFontMetrics>
#include <QLinearGradient>
#include <QPainter>
#include <algorithm>
#include <cmath>

#include "colormap.h"

namespace render {

namespace {
const QColor kInk(205, 205, 210);
const QColor kTick(150, 150, 156);

QFont small_font(const QPainter& p) {
  QFont f = p.font();
  f.setPointSizeF(std::max(7.0, f.pointSizeF() * 0.85));
  return f;
}
}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int max_ticks, double* step_out) {
  std::vector<double> out;
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi) || max_ticks < 2) return out;
  const double span = hi - lo;
  double step = std::pow(10.0, std::floor(std::log10(span / max_ticks)));
  for (int i = 0; i < 8; ++i) {  // 1, 2, 5, 10, 20, ... until the ticks fit
    const double count = std::floor(hi / step + 1e-9) - std::ceil(lo / step - 1e-9) + 1;
    if (count <= max_ticks) break;
    const double m = step / std::pow(10.0, std::floor(std::log10(step) + 1e-9));
    step *= m < 1.5 ? 2.0 : m < 3.5 ? 2.5 : 2.0;  // 1 -> 2 -> 5 -> 10
  }
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step)
    out.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  if (step_out) *step_out = step;
  return out;
}

QString tick_label(double v, double step) {
  const int decimals =
      step >= 1 ? 0 : std::min(6, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
  return QString::number(v, 'f', decimals);
}

void draw_axis_bottom(QPainter& p, const QRectF& plot, const AxisSpec& a) {
  if (!a.shown()) return;
  p.save();
  p.setFont(small_font(p));
  const QFontMetrics fm(p.font());
  double step = 1;
  const int room =
      std::max(2, static_cast<int>(plot.width() / (fm.horizontalAdvance("00000") + 12)));
  const auto ticks = nice_ticks(std::min(a.lo, a.hi), std::max(a.lo, a.hi), room, &step);
  p.setPen(kTick);
  p.drawLine(QPointF(plot.left(), plot.bottom() + 0.5), QPointF(plot.right(), plot.bottom() + 0.5));
  for (double t : ticks) {
    const double x = plot.left() + (t - a.lo) / (a.hi - a.lo) * plot.width();
    p.setPen(kTick);
    p.drawLine(QPointF(x, plot.bottom()), QPointF(x, plot.bottom() + 4));
    p.setPen(kInk);
    p.drawText(QRectF(x - 40, plot.bottom() + 4, 80, fm.height()), Qt::AlignHCenter | Qt::AlignTop,
               tick_label(t, step));
  }
  p.drawText(QRectF(plot.left(), plot.bottom() + 4 + fm.height(), plot.width(), fm.height()),
             Qt::AlignHCenter | Qt::AlignTop, a.label);
  p.restore();
}

void draw_axis_left(QPainter& p, const QRectF& plot, const AxisSpec& a) {
  if (!a.shown()) return;
  p.save();
  p.setFont(small_font(p));
  const QFontMetrics fm(p.font());
  double step = 1;
  const int room = std::max(2, static_cast<int>(plot.height() / (fm.height() * 4.0)));
  const auto ticks = nice_ticks(std::min(a.lo, a.hi), std::max(a.lo, a.hi), room, &step);
  p.setPen(kTick);
  p.drawLine(QPointF(plot.left() - 0.5, plot.top()), QPointF(plot.left() - 0.5, plot.bottom()));
  for (double t : ticks) {
    const double y = plot.top() + (t - a.lo) / (a.hi - a.lo) * plot.height();
    p.setPen(kTick);
    p.drawLine(QPointF(plot.left() - 4, y), QPointF(plot.left(), y));
    p.setPen(kInk);
    p.drawText(QRectF(plot.left() - kAxisLeftRoom + fm.height(), y - fm.height() / 2.0,
                      kAxisLeftRoom - fm.height() - 6, fm.height()),
               Qt::AlignRight | Qt::AlignVCenter, tick_label(t, step));
  }
  p.translate(plot.left() - kAxisLeftRoom + 2, plot.center().y());
  p.rotate(-90);
  p.drawText(QRectF(-plot.height() / 2, 0, plot.height(), fm.height()), Qt::AlignCenter, a.label);
  p.restore();
}

void draw_color_bar(QPainter& p, const QRectF& area, const ColorBarSpec& bar) {
  if (!bar.shown) return;
  p.save();
  p.setFont(small_font(p));
  const QFontMetrics fm(p.font());
  const double line = fm.height();
  // The label on top (wrapped), the bar below, swatches at the bottom.
  const QRectF label_box(area.left() + 8, area.top(), area.width() - 10, 3 * line);
  p.setPen(kInk);
  p.drawText(label_box, Qt::TextWordWrap | Qt::AlignLeft | Qt::AlignTop, bar.label);
  const double sw_h = static_cast<double>(bar.swatches.size()) * (2 * line + 4);
  const QRectF strip(area.left() + 12, label_box.bottom() + line / 2, 16,
                     std::max(40.0, area.height() - label_box.height() - sw_h - 2 * line));
  QLinearGradient g(strip.bottomLeft(), strip.topLeft());
  for (int i = 0; i <= 16; ++i) {
    const double t = i / 16.0;
    const Rgb8 c = viridis(bar.v_lo + (bar.v_hi - bar.v_lo) * t);
    g.setColorAt(t, QColor(c.r, c.g, c.b));
  }
  p.fillRect(strip, g);
  p.setPen(kTick);
  p.drawRect(strip);
  double step = 1;
  const auto ticks =
      nice_ticks(std::min(bar.lo, bar.hi), std::max(bar.lo, bar.hi),
                 std::max(2, static_cast<int>(strip.height() / (line * 3.5))), &step);
  for (double t : ticks) {
    const double y = strip.bottom() - (t - bar.lo) / (bar.hi - bar.lo) * strip.height();
    p.setPen(kTick);
    p.drawLine(QPointF(strip.right(), y), QPointF(strip.right() + 4, y));
    p.setPen(kInk);
    p.drawText(QRectF(strip.right() + 7, y - line / 2, area.right() - strip.right() - 8, line),
               Qt::AlignLeft | Qt::AlignVCenter, tick_label(t, step));
  }
  double y = strip.bottom() + line;
  for (const auto& [color, text] : bar.swatches) {
    p.fillRect(QRectF(strip.left(), y, 16, line), color);
    p.setPen(kTick);
    p.drawRect(QRectF(strip.left(), y, 16, line));
    p.setPen(kInk);
    p.drawText(QRectF(strip.right() + 7, y - 2, area.right() - strip.right() - 8, line * 2 + 4),
               Qt::AlignLeft | Qt::AlignTop | Qt::TextWordWrap, text);
    y += 2 * line + 4;
  }
  p.restore();
}

}  // namespace render
