// The categorical bucket palette of shaders/palette.glsl in C++, and the heat-over-image
// mapping of shaders/heatmap.frag, so exports and tests agree with what the views draw.
#pragma once

#include <QImage>
#include <vector>

#include "colormap.h"

namespace render {

// Bucket b's colour: hue b * golden ratio, saturation and value alternating.
Rgb8 bucket_color(int b);

enum class FieldMode { kHeat = 0, kBuckets = 1, kViridis = 2 };

// A w x h field over an image: values < 0 are pending (checkerboard); base (RGB, w x h) may
// be null (black) and is only used by kHeat.
struct Field {
  int w = 0, h = 0;
  std::vector<float> values;
  QImage base;
  FieldMode mode = FieldMode::kHeat;
};

// The colour heatmap.frag gives pixel (x, y) (no marker).
Rgb8 field_color(const Field& f, int x, int y);
// The whole field as an RGB888 image, scale x scale pixels per field pixel.
QImage field_render(const Field& f, int scale);

}  // namespace render
