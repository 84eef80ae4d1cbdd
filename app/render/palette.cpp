// The bucket palette and the field colouring, line for line as palette.glsl and heatmap.frag.
#include "palette.h"

#include <algorithm>
#include <cmath>

namespace render {

namespace {
uint8_t to_byte(double v) {
  return static_cast<uint8_t>(std::lround(std::clamp(v, 0.0, 1.0) * 255.0));
}
}  // namespace

Rgb8 bucket_color(int b) {
  const double h = std::fmod(static_cast<double>(b) * 0.6180339887, 1.0);
  const double s = b % 2 == 0 ? 0.75 : 0.5;
  const double v = (b / 2) % 2 == 0 ? 0.95 : 0.75;
  const double offs[3] = {0.0, 4.0, 2.0};
  uint8_t out[3];
  for (int c = 0; c < 3; ++c) {
    const double k = std::clamp(std::abs(std::fmod(h * 6.0 + offs[c], 6.0) - 3.0) - 1.0, 0.0, 1.0);
    out[c] = to_byte(v * (1.0 + (k - 1.0) * s));
  }
  return {out[0], out[1], out[2]};
}

Rgb8 field_color(const Field& f, int x, int y) {
  const float v =
      f.values[static_cast<size_t>(y) * static_cast<size_t>(f.w) + static_cast<size_t>(x)];
  if (v < 0) {
    const uint8_t g = ((x + y) & 1) ? 41 : 56;
    return {g, g, g};
  }
  if (f.mode == FieldMode::kBuckets) return bucket_color(static_cast<int>(v + 0.5f));
  if (f.mode == FieldMode::kViridis) return viridis(v);
  const Rgb8 heat = viridis(v);
  const QColor base = f.base.isNull() ? QColor(0, 0, 0) : f.base.pixelColor(x, y);
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
