// Qt events into the ImGui 1.86 input API, and the frame cycle around imgui_impl_opengl3.
#include "imgui_qt.h"

#include <QKeyEvent>
#include <QMouseEvent>
#include <QWheelEvent>
#include <QWidget>

#include "backends/imgui_impl_opengl3.h"
#include "imgui.h"

namespace imgui_qt {

namespace {

// io.KeysDown has 512 entries: printable keys use their Qt code (Qt::Key_A == 'A'), named
// keys get 256 + their ImGuiKey value.
constexpr int kNamedBase = 256;

int key_index(int qt_key) {
  switch (qt_key) {
    case Qt::Key_Tab:
      return kNamedBase + ImGuiKey_Tab;
    case Qt::Key_Left:
      return kNamedBase + ImGuiKey_LeftArrow;
    case Qt::Key_Right:
      return kNamedBase + ImGuiKey_RightArrow;
    case Qt::Key_Up:
      return kNamedBase + ImGuiKey_UpArrow;
    case Qt::Key_Down:
      return kNamedBase + ImGuiKey_DownArrow;
    case Qt::Key_PageUp:
      return kNamedBase + ImGuiKey_PageUp;
    case Qt::Key_PageDown:
      return kNamedBase + ImGuiKey_PageDown;
    case Qt::Key_Home:
      return kNamedBase + ImGuiKey_Home;
    case Qt::Key_End:
      return kNamedBase + ImGuiKey_End;
    case Qt::Key_Insert:
      return kNamedBase + ImGuiKey_Insert;
    case Qt::Key_Delete:
      return kNamedBase + ImGuiKey_Delete;
    case Qt::Key_Backspace:
      return kNamedBase + ImGuiKey_Backspace;
    case Qt::Key_Space:
      return kNamedBase + ImGuiKey_Space;
    case Qt::Key_Return:
      return kNamedBase + ImGuiKey_Enter;
    case Qt::Key_Escape:
      return kNamedBase + ImGuiKey_Escape;
    case Qt::Key_Enter:
      return kNamedBase + ImGuiKey_KeyPadEnter;
    default:
      return qt_key >= 0 && qt_key < kNamedBase ? qt_key : -1;
  }
}

int mouse_index(Qt::MouseButton b) {
  switch (b) {
    case Qt::LeftButton:
      return 0;
    case Qt::RightButton:
      return 1;
    case Qt::MiddleButton:
      return 2;
    case Qt::BackButton:
      return 3;
    case Qt::ForwardButton:
      return 4;
    default:
      return -1;
  }
}

}  // namespace

void Platform::init() {
  context_ = ImGui::CreateContext();
  ImGui::SetCurrentContext(context_);
  ImGuiIO& io = ImGui::GetIO();
  io.IniFilename = nullptr;  // the layout of the overlay is fixed by code, not saved
  io.BackendPlatformName = "imgui_impl_qt (attnscope)";
  const std::pair<ImGuiKey_, int> named[] = {{ImGuiKey_Tab, Qt::Key_Tab},
                                             {ImGuiKey_LeftArrow, Qt::Key_Left},
                                             {ImGuiKey_RightArrow, Qt::Key_Right},
                                             {ImGuiKey_UpArrow, Qt::Key_Up},
                                             {ImGuiKey_DownArrow, Qt::Key_Down},
                                             {ImGuiKey_PageUp, Qt::Key_PageUp},
                                             {ImGuiKey_PageDown, Qt::Key_PageDown},
                                             {ImGuiKey_Home, Qt::Key_Home},
                                             {ImGuiKey_End, Qt::Key_End},
                                             {ImGuiKey_Insert, Qt::Key_Insert},
                                             {ImGuiKey_Delete, Qt::Key_Delete},
                                             {ImGuiKey_Backspace, Qt::Key_Backspace},
                                             {ImGuiKey_Space, Qt::Key_Space},
                                             {ImGuiKey_Enter, Qt::Key_Return},
                                             {ImGuiKey_Escape, Qt::Key_Escape},
                                             {ImGuiKey_KeyPadEnter, Qt::Key_Enter},
                                             {ImGuiKey_A, Qt::Key_A},
                                             {ImGuiKey_C, Qt::Key_C},
                                             {ImGuiKey_V, Qt::Key_V},
                                             {ImGuiKey_X, Qt::Key_X},
                                             {ImGuiKey_Y, Qt::Key_Y},
                                             {ImGuiKey_Z, Qt::Key_Z}};
  for (const auto& [imgui_key, qt_key] : named) io.KeyMap[imgui_key] = key_index(qt_key);
  ImGui::StyleColorsDark();
  ImGui_ImplOpenGL3_Init("#version 330 core");
  clock_.start();
}

void Platform::shutdown() {
  if (!context_) return;
  ImGui::SetCurrentContext(context_);
  ImGui_ImplOpenGL3_Shutdown();
  ImGui::DestroyContext(context_);
  context_ = nullptr;
}

bool Platform::wants_mouse() const {
  if (!context_) return false;
  ImGui::SetCurrentContext(context_);
  return ImGui::GetIO().WantCaptureMouse;
}

bool Platform::handle_event(QEvent* event) {
  if (!context_) return false;
  ImGui::SetCurrentContext(context_);
  ImGuiIO& io = ImGui::GetIO();
  switch (event->type()) {
    case QEvent::MouseMove: {
      const QPointF p = static_cast<QMouseEvent*>(event)->position();
      io.MousePos = ImVec2(static_cast<float>(p.x()), static_cast<float>(p.y()));
      return io.WantCaptureMouse;
    }
    case QEvent::MouseButtonPress:
    case QEvent::MouseButtonDblClick:
    case QEvent::MouseButtonRelease: {
      auto* e = static_cast<QMouseEvent*>(event);
      io.MousePos =
          ImVec2(static_cast<float>(e->position().x()), static_cast<float>(e->position().y()));
      const int b = mouse_index(e->button());
      if (b < 0) return false;
      const bool press = event->type() != QEvent::MouseButtonRelease;
      down_[static_cast<size_t>(b)] = press;
      if (press) pressed_[static_cast<size_t>(b)] = true;
      return io.WantCaptureMouse;
    }
    case QEvent::Wheel: {
      const QPoint deg = static_cast<QWheelEvent*>(event)->angleDelta();
      wheel_ += static_cast<float>(deg.y()) / 120.0f;
      wheel_h_ += static_cast<float>(deg.x()) / 120.0f;
      return io.WantCaptureMouse;
    }
    case QEvent::Leave:
      io.MousePos = ImVec2(-FLT_MAX, -FLT_MAX);
      return false;
    case QEvent::KeyPress:
    case QEvent::KeyRelease: {
      auto* e = static_cast<QKeyEvent*>(event);
      const bool press = event->type() == QEvent::KeyPress;
      const int k = key_index(e->key());
      if (k >= 0) io.KeysDown[k] = press;
      const Qt::KeyboardModifiers mods = e->modifiers();
      io.KeyCtrl = mods & Qt::ControlModifier;
      io.KeyShift = mods & Qt::ShiftModifier;
      io.KeyAlt = mods & Qt::AltModifier;
      io.KeySuper = mods & Qt::MetaModifier;
      if (press && io.WantTextInput)
        for (const QChar c : e->text())
          if (c.isPrint()) io.AddInputCharacter(c.unicode());
      return io.WantCaptureKeyboard;
    }
    default:
      return false;
  }
}

void Platform::new_frame() {
  ImGui::SetCurrentContext(context_);
  ImGuiIO& io = ImGui::GetIO();
  const float dpr = static_cast<float>(widget_->devicePixelRatioF());
  io.DisplaySize =
      ImVec2(static_cast<float>(widget_->width()), static_cast<float>(widget_->height()));
  io.DisplayFramebufferScale = ImVec2(dpr, dpr);
  const qint64 ns = clock_.nsecsElapsed();
  clock_.restart();
  io.DeltaTime = ns > 0 ? static_cast<float>(ns) * 1e-9f : 1.0f / 60.0f;
  for (size_t b = 0; b < down_.size(); ++b) {
    io.MouseDown[b] = down_[b] || pressed_[b];
    pressed_[b] = false;
  }
  io.MouseWheel = wheel_;
  io.MouseWheelH = wheel_h_;
  wheel_ = wheel_h_ = 0;
  ImGui_ImplOpenGL3_NewFrame();
  ImGui::NewFrame();
}

void Platform::render() {
  ImGui::SetCurrentContext(context_);
  ImGui::Render();
  ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
}

}  // namespace imgui_qt
