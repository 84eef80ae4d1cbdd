// The category palette and the field colouring, the latter line for line as heatmap.frag.
#include "palette.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>

namespace render {

namespace {
uint8_t to_byte(double v) {
  return static_cast<uint8_t>(std::lround(std::clamp(v, 0.0, 1.0) * 255.0));
}

// Twenty colours that stay apart on a dark background and from one another: the usual
// "twenty distinct colours" list of qualitative-palette guides, in the order that keeps the
// first ones furthest apart (red, green, yellow, blue, ...), with near-black and near-white
// left out (they read as the background and as "empty") and its beige replaced by a wine red
// (beige sat 17 CIELAB units from apricot; every pair is now at least 25 apart).
constexpr std::array<Rgb8, kDistinctColors> kDistinct = {{
    {230, 25, 75},   {60, 180, 75},   {255, 225, 25},  {67, 99, 216},  {245, 130, 49},
    {145, 30, 180},  {66, 212, 244},  {240, 50, 230},  {191, 239, 69}, {250, 190, 212},
    {70, 153, 144},  {220, 190, 255}, {154, 99, 36},   {100, 0, 60},   {128, 0, 0},
    {170, 255, 195}, {128, 128, 0},   {255, 216, 177}, {0, 0, 117},    {169, 169, 169},
}};
}  // namespace

Rgb8 distinct_color(int k) {
  return k >= 0 && k < kDistinctColors ? kDistinct[static_cast<size_t>(k)] : kOtherCategoryColor;
}

CategoryPalette::CategoryPalette(const std::vector<int64_t>& counts) {
  rank_.assign(counts.size(), -1);
  for (int c = 0; c < static_cast<int>(counts.size()); ++c)
    if (counts[static_cast<size_t>(c)] > 0) ranked_.push_back(c);
  std::stable_sort(ranked_.begin(), ranked_.end(), [&](int a, int b) {
    return counts[static_cast<size_t>(a)] > counts[static_cast<size_t>(b)];
  });
  for (int r = 0; r < static_cast<int>(ranked_.size()); ++r)
    rank_[static_cast<size_t>(ranked_[static_cast<size_t>(r)])] = r;
}

int CategoryPalette::rank(int c) const {
  return c >= 0 && c < static_cast<int>(rank_.size()) ? rank_[static_cast<size_t>(c)] : -1;
}

Rgb8 CategoryPalette::color(int c) const {
  const int r = rank(c);
  return r >= 0 ? distinct_color(r) : kOtherCategoryColor;
}

Rgb8 field_color(const Field& f, int x, int y) {
  const float v =
      f.values[static_cast<size_t>(y) * static_cast<size_t>(f.w) + static_cast<size_t>(x)];
  if (v <= kFieldFuture) return kFutureColor;
  if (v < 0) {
    const uint8_t g = ((x + y) & 1) ? 41 : 56;
    return {g, g, g};
  }
  const QColor base = f.base.isNull() ? QColor(0, 0, 0) : f.base.pixelColor(x, y);
  if (f.mode == FieldMode::kColors)
    return {static_cast<uint8_t>(base.red()), static_cast<uint8_t>(base.green()),
            static_cast<uint8_t>(base.blue())};
  if (f.mode == FieldMode::kViridis) return viridis(v);
  const Rgb8 heat = viridis(v);
  const double a = v > 0 ? 0.4 + 0.6 * static_cast<double>(v) : 0.0;
  auto mix = [a](int b, int hc) { return to_byte((b / 255.0 * 0.35) * (1 - a) + hc / 255.0 * a); };
  return {mix(base.red(), heat.r), mix(base.green(), heat.g), mix(base.blue(), heat.b)};
}

QImage field_render(const Field& f, int scale) {
  QImage img(f.w * scale, f.h * scale, QImage::Format_RGB888);
  for (int y = 0; y < f.h; ++y)
    for (int x = 0; x < f.w; ++x) {
      const Rgb8 c = field_color(f, x, y);
      for (int dy = 0; dy < scale; ++dy) {
        uint8_t* line = img.scanLine(y * scale + dy);
        for (int dx = 0; dx < scale; ++dx) {
          uint8_t* p = line + 3 * (x * scale + dx);
          p[0] = c.r;
          p[1] = c.g;
          p[2] = c.b;
        }
      }
    }
  return img;
}

}  // namespace render
