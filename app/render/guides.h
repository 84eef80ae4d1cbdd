// Axes with ticks and colour bars, painted with QPainter around a plot rectangle: the pattern,
// attention and LSH fields (render::FieldView) and the audio view's waveform and spectrogram
// use the same tick rule and drawing, so every view reads its numbers the same way.
#pragma once

#include <QColor>
#include <QRectF>
#include <QString>
#include <utility>
#include <vector>

class QPainter;

namespace render {

// Tick values in [lo, hi] on steps of 1, 2 or 5 x 10^k: the finest such step that gives at
// most max_ticks ticks (at least 2 where lo < hi). *step receives the step.
std::vector<double> nice_ticks(double lo, double hi, int max_ticks, double* step = nullptr);
// v written with as many decimals as the step needs ("0.25", "1500", "12k" never: plain).
QString tick_label(double v, double step);

// An axis over a plot edge: the value at the start (left or top) and at the end.
struct AxisSpec {
  QString label;  // "key position", "time (s)"
  double lo = 0, hi = 0;
  bool shown() const { return hi != lo; }
};
// Bottom axis under `plot` (ticks, labels and the axis label below it).
void draw_axis_bottom(QPainter& p, const QRectF& plot, const AxisSpec& a);
// Left axis beside `plot` (labels right-aligned to it, the axis label rotated).
void draw_axis_left(QPainter& p, const QRectF& plot, const AxisSpec& a);
// Room the axes need outside the plot, in pixels.
inline constexpr int kAxisBottomRoom = 36;
inline constexpr int kAxisLeftRoom = 60;

// A vertical colour bar: viridis from field value v_lo (at value lo, bottom) to v_hi (hi, top),
// ticked in the bar's own units, with swatches for special colours beneath it.
struct ColorBarSpec {
  QString label;  // "attended share of the cell's causal pairs (%)"
  double lo = 0, hi = 1;
  float v_lo = 0, v_hi = 1;
  std::vector<std::pair<QColor, QString>> swatches;
  bool shown = false;
};
inline constexpr int kColorBarRoom = 150;
// Draws the bar in `area` (kColorBarRoom wide, the plot's height).
void draw_color_bar(QPainter& p, const QRectF& area, const ColorBarSpec& bar);

}  // namespace render
