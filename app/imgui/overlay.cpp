// ImGui windows over the canvas: the pixel inspector at the top right and the statistics at
// the bottom left, both small and translucent so the image stays visible.
#include "overlay.h"

#include <algorithm>
#include <cstdio>

#include "imgui.h"
#include "render/colormap.h"

namespace overlay {

using session::RunState;
using session::Snapshot;

Inspection inspect(const Snapshot& s, QPoint pixel) {
  Inspection in;
  if (!s.run) return in;
  const attnscope::Modality& m = s.run->modality();
  if (m.kind != attnscope::ModalityKind::kImage || pixel.x() < 0 || pixel.y() < 0 ||
      pixel.x() >= m.width || pixel.y() >= m.height)
    return in;
  in.pixel = pixel;
  in.channels = std::min(m.channels, 4);
  const int64_t known = s.run->known(s.filled);
  const int64_t first = (static_cast<int64_t>(pixel.y()) * m.width + pixel.x()) * m.channels;
  in.prompt = first < s.run->prompt_length();
  for (int c = 0; c < in.channels; ++c) {
    const int64_t p = first + c;
    const size_t i = static_cast<size_t>(c);
    in.position[i] = p;
    in.value[i] = p < known ? s.run->token(p) : -1;
    in.has_distribution[i] = p < s.filled;
    in.entropy_bits[i] = p < s.filled ? s.run->entropy_bits(p) : 0.0f;
  }
  return in;
}

namespace {

// The current ImGui window's rectangle (call between Begin and End).
QRectF window_rect() {
  const ImVec2 p = ImGui::GetWindowPos(), z = ImGui::GetWindowSize();
  return QRectF(p.x, p.y, z.x, z.y);
}

// Whether the user dragged each window off its corner (then it stays where it was left and
// leaves the canvas's bands); its "Back to the corner" button puts it back. Per process, like
// ImGui's own window state.
struct Placement {
  bool moved = false;
};
Placement g_inspector, g_statistics;
bool g_pinned_back = false;  // set by track_placement, read by draw

// Pins the next window to its corner unless the user has moved it.
void place_next(const Placement& p, ImVec2 corner, ImVec2 pivot) {
  if (!p.moved) ImGui::SetNextWindowPos(corner, ImGuiCond_Always, pivot);
}

// After Begin: a drag that started on this window's title bar moves it for good (a
// double-click there stays ImGui's collapse).
void track_placement(Placement* p) {
  const ImVec2 pos = ImGui::GetWindowPos(), size = ImGui::GetWindowSize();
  const ImVec2 click = ImGui::GetIO().MouseClickedPos[0];
  const float title = ImGui::GetFrameHeight();
  const bool on_title =
      click.x >= pos.x && click.x < pos.x + size.x && click.y >= pos.y && click.y < pos.y + title;
  if (on_title && ImGui::IsMouseDragging(ImGuiMouseButton_Left, 2.0f)) p->moved = true;
}

// The first line of a moved window's contents: a button that pins it back.
void back_button(Placement* p) {
  if (p->moved && ImGui::SmallButton("Back to the corner")) {
    p->moved = false;
    g_pinned_back = true;
  }
}

const char* channel_name(int channels, int c) {
  if (channels == 1) return "grey";
  static const char* rgba[] = {"R", "G", "B", "A"};
  return rgba[c];
}

QRectF draw_inspector(const Snapshot& s, const Inspection& in, float width) {
  place_next(g_inspector, ImVec2(width - 10, 10), ImVec2(1, 0));
  ImGui::SetNextWindowBgAlpha(0.82f);
  const ImGuiWindowFlags flags = ImGuiWindowFlags_AlwaysAutoResize |
                                 ImGuiWindowFlags_NoSavedSettings |
                                 ImGuiWindowFlags_NoFocusOnAppearing;
  const bool open = ImGui::Begin("Inspector", nullptr, flags);
  track_placement(&g_inspector);
  if (!open) {
    const QRectF r = window_rect();
    ImGui::End();
    return r;
  }
  back_button(&g_inspector);
  if (in.pixel.x() < 0) {
    ImGui::TextUnformatted("Hover a pixel to see the model's");
    ImGui::TextUnformatted("distribution for each channel.");
    const QRectF r = window_rect();
    ImGui::End();
    return r;
  }
  ImGui::Text("pixel (%d, %d)  %s", in.pixel.x(), in.pixel.y(), in.prompt ? "prompt" : "generated");
  if (s.truth &&
      in.position[0] + in.channels <= static_cast<int64_t>(s.truth->surprise_bits.size())) {
    float sum = 0;
    for (int c = 0; c < in.channels; ++c)
      sum += s.truth->surprise_bits[static_cast<size_t>(in.position[static_cast<size_t>(c)])];
    ImGui::Text("true image: surprise %.2f bits (mean of channels)",
                static_cast<double>(sum / in.channels));
  }
  for (int c = 0; c < in.channels; ++c) {
    const size_t i = static_cast<size_t>(c);
    const char* name = channel_name(in.channels, c);
    if (in.value[i] < 0) {
      ImGui::Text("%s  pending (position %lld)", name, static_cast<long long>(in.position[i]));
      continue;
    }
    if (!in.has_distribution[i]) {
      ImGui::Text("%s = %3d  (kept prompt; generate to see its distribution)", name, in.value[i]);
      continue;
    }
    const float* probs = s.run->probs(in.position[i]);
    ImGui::Text("%s = %3d  p = %.4f  H = %.2f bits", name, in.value[i],
                static_cast<double>(probs[in.value[i]]), static_cast<double>(in.entropy_bits[i]));
    char id[24];
    std::snprintf(id, sizeof id, "##dist%d", c);
    float top = 0;
    for (int t = 0; t < 256; ++t) top = std::max(top, probs[t]);
    char caption[48];
    std::snprintf(caption, sizeof caption, "tokens 0..255, peak p %.3f", static_cast<double>(top));
    ImGui::PlotHistogram(id, probs, 256, 0, caption, 0.0f, top * 1.15f, ImVec2(300, 48));
  }
  const QRectF r = window_rect();
  ImGui::End();
  return r;
}

// A viridis colour bar 0..8 bits with ticks, the width of the window's content.
void colour_bar(const char* top_label) {
  ImGui::TextUnformatted(top_label);
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImVec2 at = ImGui::GetCursorScreenPos();
  const float w = 300, h = 12;
  const int steps = 60;
  for (int i = 0; i < steps; ++i) {
    const render::Rgb8 a = render::viridis(static_cast<double>(i) / steps);
    const render::Rgb8 b = render::viridis(static_cast<double>(i + 1) / steps);
    dl->AddRectFilledMultiColor(ImVec2(at.x + w * i / steps, at.y),
                                ImVec2(at.x + w * (i + 1) / steps, at.y + h),
                                IM_COL32(a.r, a.g, a.b, 255), IM_COL32(b.r, b.g, b.b, 255),
                                IM_COL32(b.r, b.g, b.b, 255), IM_COL32(a.r, a.g, a.b, 255));
  }
  ImGui::Dummy(ImVec2(w, h));
  const float line = ImGui::GetTextLineHeight();
  const ImVec2 ticks = ImGui::GetCursorScreenPos();
  for (int bits = 0; bits <= 8; bits += 2) {
    char label[16];
    std::snprintf(label, sizeof label, bits == 8 ? ">=%d bits" : "%d", bits);
    const float x = ticks.x + w * bits / 8.0f;
    const float tw = ImGui::CalcTextSize(label).x;
    dl->AddLine(ImVec2(x, ticks.y - 3), ImVec2(x, ticks.y), IM_COL32(230, 230, 230, 255));
    dl->AddText(ImVec2(std::clamp(x - tw / 2, ticks.x, ticks.x + w + 40 - tw), ticks.y),
                IM_COL32(230, 230, 230, 255), label);
  }
  ImGui::Dummy(ImVec2(w + 40, line));
}

// What the canvas's marks and colours mean: a section of the statistics window, open at first.
void draw_legend(const Snapshot& s, int colour_mode) {
  ImGui::SetNextItemOpen(true, ImGuiCond_FirstUseEver);
  if (!ImGui::CollapsingHeader("legend")) return;
  ImGui::TextUnformatted("tint + cyan line: kept prompt and its end");
  ImGui::TextUnformatted("yellow box: next; checkerboard: pending");
  if (colour_mode == 1) {
    colour_bar("colour: entropy of the model's distribution");
  } else if (colour_mode == 2) {
    colour_bar("colour: surprise, -log2 P(true value)");
    if (s.truth)
      ImGui::Text("true image under this model: %.3f bits/dim", s.truth->bits_per_dim);
    else if (!s.truth_error.empty())
      ImGui::Text("true image: %s", s.truth_error.c_str());
    else if (s.has_truth)
      ImGui::TextUnformatted("scoring the true image...");
    else
      ImGui::TextUnformatted("no whole image: open an image prompt");
  }
}

// Text up to the first cut (" (" by default): the whole line is its tooltip.
void text_with_detail(const char* label, const std::string& line, const char* cut_at = " (") {
  const size_t cut = line.find(cut_at);
  ImGui::Text("%s%s", label, line.substr(0, cut).c_str());
  if (cut != std::string::npos && ImGui::IsItemHovered()) ImGui::SetTooltip("%s", line.c_str());
}

QRectF draw_stats(const Snapshot& s, const Stats& stats, float height) {
  place_next(g_statistics, ImVec2(10, height - 10), ImVec2(0, 1));
  ImGui::SetNextWindowBgAlpha(0.82f);
  const ImGuiWindowFlags flags = ImGuiWindowFlags_AlwaysAutoResize |
                                 ImGuiWindowFlags_NoSavedSettings |
                                 ImGuiWindowFlags_NoFocusOnAppearing;
  const bool open = ImGui::Begin("Statistics", nullptr, flags);
  track_placement(&g_statistics);
  if (!open) {
    const QRectF r = window_rect();
    ImGui::End();
    return r;
  }
  back_button(&g_statistics);
  if (s.run)
    ImGui::Text("%s  %lld / %lld", session::run_state_name(s.state),
                static_cast<long long>(s.run->known(s.filled)),
                static_cast<long long>(s.run->length()));
  if (s.state == RunState::kRunning)
    ImGui::Text("%.0f tokens/s, %.1f s left", s.tokens_per_s, s.eta_s);
  else if (s.tokens_per_s > 0)
    ImGui::Text("%.0f tokens/s", s.tokens_per_s);
  ImGui::Text("memory %s (peak %s)",
              attnscope::mem_format_bytes(static_cast<double>(s.memory.total_current)).c_str(),
              attnscope::mem_format_bytes(static_cast<double>(s.memory.total_peak)).c_str());
  if (ImGui::CollapsingHeader("by category")) {
    for (int c = 0; c < static_cast<int>(attnscope::MemCategory::kCount); ++c) {
      const auto& f = s.memory.by_category[static_cast<size_t>(c)];
      ImGui::Text("%-17s %9s (peak %s)",
                  attnscope::mem_category_name(static_cast<attnscope::MemCategory>(c)),
                  attnscope::mem_format_bytes(static_cast<double>(f.current)).c_str(),
                  attnscope::mem_format_bytes(static_cast<double>(f.peak)).c_str());
    }
  }
  // Where it runs (the status bar says it too): folded, so the overlay stays short.
  if (ImGui::CollapsingHeader("backend")) {
    text_with_detail("", s.backend_note);
    text_with_detail("upload: ", stats.upload_path.toStdString(), "; ");
    text_with_detail("GL: ", stats.renderer.toStdString());
  }
  draw_legend(s, stats.colour_mode);
  const QRectF r = window_rect();
  ImGui::End();
  return r;
}

void draw_hint(float width, float height) {
  ImGui::SetNextWindowPos(ImVec2(width / 2, height / 2), ImGuiCond_Always, ImVec2(0.5f, 0.5f));
  ImGui::SetNextWindowBgAlpha(0.6f);
  const ImGuiWindowFlags flags = ImGuiWindowFlags_AlwaysAutoResize | ImGuiWindowFlags_NoTitleBar |
                                 ImGuiWindowFlags_NoSavedSettings | ImGuiWindowFlags_NoMove |
                                 ImGuiWindowFlags_NoInputs;
  ImGui::Begin("Hint", nullptr, flags);
  ImGui::TextUnformatted("Open a model (Ctrl+O)");
  ImGui::TextUnformatted("or drop a .safetensors file here.");
  ImGui::End();
}

}  // namespace

Footprint draw(const Snapshot& s, const Inspection& inspection, const Stats& stats,
               float display_width, float display_height) {
  Footprint f;
  if (!s.model) {
    draw_hint(display_width, display_height);
    return f;
  }
  const QRectF inspector = draw_inspector(s, inspection, display_width);
  const QRectF statistics = draw_stats(s, stats, display_height);
  f.windows = {inspector, statistics};
  f.redraw = g_pinned_back;
  g_pinned_back = false;
  // The inspector's band only while idle: hovering grows it over the image, on purpose.
  // Heights, not positions: the windows are pinned 10 px from their corners.
  // A window the user moved leaves its band: it sits where they put it.
  f.top = g_inspector.moved          ? 0
          : inspection.pixel.x() < 0 ? 10 + static_cast<float>(inspector.height())
                                     : -1;
  f.bottom = g_statistics.moved ? 0 : 10 + static_cast<float>(statistics.height());
  return f;
}

void reset_placement() {
  g_inspector.moved = g_statistics.moved = false;
}

bool moved(int window) {
  return window == 0 ? g_inspector.moved : g_statistics.moved;
}

}  // namespace overlay
