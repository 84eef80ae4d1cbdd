// The ImGui overlay of the canvas: the inspector (hovered pixel, its channel values and the
// model's 256-way distribution per channel with its entropy) and live statistics. Reads a
// Snapshot only; the Inspection it works from is kept for the canvas's accessors and tests.
#pragma once

#include <QPoint>
#include <QString>
#include <array>

#include "session/snapshot.h"

namespace overlay {

struct Inspection {
  QPoint pixel{-1, -1};  // (-1, -1): nothing hovered
  int channels = 0;
  std::array<int, 4> value{};              // -1 while the channel is pending
  std::array<bool, 4> has_distribution{};  // false until the run passes that position
  std::array<float, 4> entropy_bits{};
  std::array<int64_t, 4> position{};
  bool prompt = false;  // the pixel is in the kept prompt rows
};

// What is known of pixel (x, y) in the snapshot; an empty Inspection outside the image.
Inspection inspect(const session::Snapshot& s, QPoint pixel);

struct Stats {
  QString upload_path;
  QString renderer;  // GL_RENDERER
};

// Draws the overlay windows for one ImGui frame (between NewFrame and Render).
void draw(const session::Snapshot& s, const Inspection& inspection, const Stats& stats,
          float display_width, float display_height);

}  // namespace overlay
