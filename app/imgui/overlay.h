// The ImGui overlay of the canvas: the inspector (hovered pixel, its channel values and the
// model's 256-way distribution per channel with its entropy) and live statistics. Reads a
// Snapshot only; the Inspection it works from is kept for the canvas's accessors and tests.
#pragma once

#include <QPoint>
#include <QRectF>
#include <QString>
#include <array>
#include <vector>

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
  QString renderer;     // GL_RENDERER
  int colour_mode = 0;  // render::Canvas::Mode: 0 pixels, 1 entropy, 2 surprise
};

// Where the overlay windows lie, in display pixels: the band at the top the idle inspector
// takes, the band at the bottom the statistics and legend take (the canvas fits the image
// between them; 0 for a window the user moved), and every window's rectangle of this frame.
struct Footprint {
  float top = 0, bottom = 0;
  std::vector<QRectF> windows;
  bool redraw = false;  // a window was pinned back this frame: draw another to show it there
};

// Draws the overlay windows for one ImGui frame (between NewFrame and Render).
Footprint draw(const session::Snapshot& s, const Inspection& inspection, const Stats& stats,
               float display_width, float display_height);

// The inspector (0) and statistics (1) windows start pinned to their corners; dragging a
// title bar moves one for good (it then leaves its band); its "Back to the corner" button (the
// first line of a moved window) or File > Reset settings pins it back.
bool moved(int window);
void reset_placement();

}  // namespace overlay
