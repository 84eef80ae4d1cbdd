// A Qt platform layer for Dear ImGui 1.86 (upstream has none): Qt events of one widget into
// ImGuiIO (mouse, wheel, keys through io.KeyMap/io.KeysDown, text), display size and scale,
// frame timing. Rendering is imgui_impl_opengl3 as shipped with Debian's libimgui.
#pragma once

#include <QElapsedTimer>
#include <array>

class QEvent;
class QWidget;
struct ImGuiContext;

namespace imgui_qt {

class Platform {
 public:
  explicit Platform(QWidget* widget) : widget_(widget) {}
  Platform(const Platform&) = delete;
  Platform& operator=(const Platform&) = delete;

  // Creates the ImGui context and the GL renderer; call with the widget's context current.
  void init();
  // Destroys them; call with the context current (QOpenGLContext::aboutToBeDestroyed).
  void shutdown();
  bool initialized() const { return context_ != nullptr; }

  // Feeds an event of the widget; true when ImGui wants it (mouse over a window, typing),
  // so the widget should not act on it itself.
  bool handle_event(QEvent* event);
  // Starts a frame: size, scale, time step and the input gathered since the last frame.
  void new_frame();
  // Ends the frame and draws it into the bound framebuffer.
  void render();

  bool wants_mouse() const;

 private:
  QWidget* widget_;
  ImGuiContext* context_ = nullptr;
  QElapsedTimer clock_;
  // A press stays down for at least one frame, so a click shorter than a frame counts.
  std::array<bool, 5> down_{};
  std::array<bool, 5> pressed_{};
  float wheel_ = 0, wheel_h_ = 0;
};

}  // namespace imgui_qt
