// Category colours (LSH buckets) and the field colouring of shaders/heatmap.frag in C++, so
// exports and tests agree with what the views draw.
#pragma once

#include <QImage>
#include <cstdint>
#include <vector>

#include "colormap.h"

namespace render {

// One of kDistinctColors colours chosen to be told apart (pairwise CIELAB distance >= 20;
// a test checks it), for k in [0, kDistinctColors); grey beyond.
inline constexpr int kDistinctColors = 20;
Rgb8 distinct_color(int k);
inline constexpr Rgb8 kOtherCategoryColor{96, 96, 100};

// Colours for categories by how often they occur: the kDistinctColors most frequent get the
// distinct colours in order, the rest share kOtherCategoryColor (a view names them on hover).
// 96 LSH buckets cannot all get colours an eye tells apart; the ones covering most pixels can.
class CategoryPalette {
 public:
  CategoryPalette() = default;
  // counts[c]: how often category c occurs.
  explicit CategoryPalette(const std::vector<int64_t>& counts);
  Rgb8 color(int c) const;
  // The rank of c by count (ties by id), -1 for a category that does not occur.
  int rank(int c) const;
  // Categories that occur, most frequent first.
  const std::vector<int>& ranked() const { return ranked_; }

 private:
  std::vector<int> ranked_, rank_;
};

// kHeat: viridis over the dimmed base image; kColors: the base image's own colours (the
// categories, coloured in C++); kViridis: plain viridis. Values < 0 are pending
// (checkerboard); values <= kFieldFuture are "not causal" (flat grey).
enum class FieldMode { kHeat = 0, kColors = 1, kViridis = 2 };
inline constexpr float kFieldFuture = -2.0f;
inline constexpr Rgb8 kFutureColor{118, 118, 124};

// A w x h field over an image; base (RGB, w x h) may be null (black) and is used by kHeat and
// kColors.
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
