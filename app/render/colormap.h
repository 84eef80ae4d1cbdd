// Viridis (CC0, from matplotlib) in C++, the same polynomial table as shaders/colormap.glsl,
// so heatmap exports and tests agree with what the canvas draws.
#pragma once

#include <array>
#include <cstdint>

namespace render {

// The seven coefficient rows c0..c6 of viridis(t) = sum c_k t^k for red, green and blue:
// a least-squares fit of matplotlib's 256-entry table (published CC0 by Matt Zucker).
// shaders/colormap.glsl holds the same numbers; a test keeps the two equal.
extern const std::array<std::array<double, 3>, 7> kViridisCoefficients;

struct Rgb8 {
  uint8_t r, g, b;
};
// t is clamped to [0, 1].
Rgb8 viridis(double t);

}  // namespace render
