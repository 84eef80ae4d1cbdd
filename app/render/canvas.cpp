// The canvas's GL life cycle, the frame built from snapshots, the view transform (GLM) and
// the mouse: pan with a drag, zoom with the wheel, hover for the inspector.
#include "canvas.h"

#include <QMouseEvent>
#include <QOpenGLContext>
#include <QOpenGLShaderProgram>
#include <QSurfaceFormat>
#include <QTimer>
#include <QWheelEvent>
#include <algorithm>
#include <cmath>
#include <glm/gtc/matrix_transform.hpp>
#include <glm/gtc/type_ptr.hpp>

#include "gl_common.h"
#include "media.h"

namespace render {

using session::RunState;
using session::Snapshot;

namespace {

constexpr double kMinZoom = 0.25, kMaxZoom = 256;
constexpr int kGridGap = cli::kGridGap;  // the CLI's grid of samples, pixel for pixel
constexpr int kFitMargin = 24;

}  // namespace

void canvas_set_default_surface_format() {
  QSurfaceFormat format;
  format.setVersion(3, 3);
  format.setProfile(QSurfaceFormat::CoreProfile);
  format.setDepthBufferSize(0);
  QSurfaceFormat::setDefaultFormat(format);
}

Canvas::Canvas(session::Session* session, QWidget* parent)
    : QOpenGLWidget(parent), session_(session) {
  setMouseTracking(true);
  setFocusPolicy(Qt::StrongFocus);
  setMinimumSize(320, 240);
  frame_timer_.setInterval(16);
  connect(&frame_timer_, &QTimer::timeout, this, qOverload<>(&Canvas::update));
  connect(session_, &session::Session::published, this, &Canvas::on_published);
}

Canvas::~Canvas() {
  release_gl();
  // The context outlives this class's part of the object: do not let its aboutToBeDestroyed
  // call back into it.
  if (context()) disconnect(context(), nullptr, this, nullptr);
}

void Canvas::on_published() {
  const auto s = session_->snapshot();
  if (s->state == RunState::kRunning) {
    if (!frame_timer_.isActive()) frame_timer_.start();
  } else {
    frame_timer_.stop();
  }
  const QSize size = grid_size(*s);
  if (size != fitted_image_) {
    fitted_image_ = size;
    fit();
  }
  update();
}

void Canvas::initializeGL() {
  initializeOpenGLFunctions();
  connect(context(), &QOpenGLContext::aboutToBeDestroyed, this, &Canvas::release_gl,
          Qt::DirectConnection);
  renderer_ = QString::fromLatin1(reinterpret_cast<const char*>(glGetString(GL_RENDERER)));

  program_ =
      gl_build_program({QStringLiteral("colormap.glsl"), QStringLiteral("image.frag")}, "canvas");
  gl_make_unit_quad(this, &vao_, &vbo_);

  glGenTextures(1, &texture_);
  glBindTexture(GL_TEXTURE_2D, texture_);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_NEAREST);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
  texture_size_ = QSize();
  uploaded_serial_ = 0;

  QString reason;
  uploader_ = texture_uploader_create(this, &reason);
  upload_path_ = reason.isEmpty() ? uploader_->name()
                                  : QStringLiteral("%1; %2").arg(uploader_->name(), reason);
  emit upload_path_changed(upload_path_);

  imgui_.init();
}

void Canvas::release_gl() {
  if (!vao_ && !program_) return;
  makeCurrent();
  imgui_.shutdown();
  if (uploader_) uploader_->release();
  uploader_.reset();
  glDeleteTextures(1, &texture_);
  glDeleteBuffers(1, &vbo_);
  glDeleteVertexArrays(1, &vao_);
  texture_ = vbo_ = vao_ = 0;
  program_.reset();
  doneCurrent();
}

void Canvas::resizeGL(int, int) {
  if (!user_view_) fit();
}

QSize Canvas::image_size() const {
  return fitted_image_;
}

void Canvas::fit() {
  user_view_ = false;
  const QSize img = image_size();
  if (img.isEmpty()) return;
  // Between the overlay's bands (the inspector above, statistics and legend below), so no
  // overlay covers a sample; the whole height when the overlay is off.
  const double top = overlay_visible_ ? band_top_ : 0, bottom = overlay_visible_ ? band_bottom_ : 0;
  fitted_bands_ = QPointF(top, bottom);
  const double avail_w = std::max(1, width() - 2 * kFitMargin);
  const double band_h = std::max(1.0, height() - top - bottom);
  const double avail_h = std::max(1.0, band_h - 2 * kFitMargin);
  const double z = std::min(avail_w / img.width(), avail_h / img.height());
  zoom_ = z >= 1 ? std::floor(z) : z;
  pan_ = QPointF(std::round((width() - img.width() * zoom_) / 2),
                 std::round(top + (band_h - img.height() * zoom_) / 2));
  update();
}

void Canvas::set_zoom(double zoom, QPointF anchor) {
  zoom = std::clamp(zoom, kMinZoom, kMaxZoom);
  const QPointF image_point = (anchor - pan_) / zoom_;
  zoom_ = zoom;
  pan_ = anchor - image_point * zoom_;
  user_view_ = true;
  update();
}

QRectF Canvas::pixel_rect(int x, int y) const {
  return QRectF(pan_.x() + x * zoom_, pan_.y() + y * zoom_, zoom_, zoom_);
}

QPoint Canvas::pixel_at(QPointF pos) const {
  const QSize img = image_size();
  const QPointF p = (pos - pan_) / zoom_;
  const int x = static_cast<int>(std::floor(p.x())), y = static_cast<int>(std::floor(p.y()));
  if (x < 0 || y < 0 || x >= img.width() || y >= img.height()) return {-1, -1};
  return {x, y};
}

glm::mat4 Canvas::view_matrix() const {
  glm::mat4 view(1.0f);
  view = glm::translate(
      view, glm::vec3(static_cast<float>(pan_.x()), static_cast<float>(pan_.y()), 0.0f));
  return glm::scale(view, glm::vec3(static_cast<float>(zoom_), static_cast<float>(zoom_), 1.0f));
}

void Canvas::set_mark_prompt(bool on) {
  mark_prompt_ = on;
  update();
}

void Canvas::set_mode(Mode mode) {
  mode_ = mode;
  update();
}

void Canvas::set_overlay_visible(bool on) {
  overlay_visible_ = on;
  if (!user_view_) fit();
  update();
}

int Canvas::grid_columns(const Snapshot& s) {
  const int n = std::max(1, s.samples_wanted);
  return static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n))));
}

QSize Canvas::grid_size(const Snapshot& s) {
  if (!s.run || s.run->modality().kind != attnscope::ModalityKind::kImage) return {};
  const int n = std::max(1, s.samples_wanted), cols = grid_columns(s);
  const int rows = (n + cols - 1) / cols;
  const attnscope::Modality& m = s.run->modality();
  return {cols * m.width + (cols - 1) * kGridGap, rows * m.height + (rows - 1) * kGridGap};
}

std::optional<Snapshot> Canvas::sample_at(const Snapshot& s, QPoint px, QPoint* local) const {
  if (!s.run || px.x() < 0 || px.y() < 0) return std::nullopt;
  const attnscope::Modality& m = s.run->modality();
  const int cols = grid_columns(s);
  const int col = px.x() / (m.width + kGridGap), row = px.y() / (m.height + kGridGap);
  *local = QPoint(px.x() - col * (m.width + kGridGap), px.y() - row * (m.height + kGridGap));
  const size_t index = static_cast<size_t>(row * cols + col);
  if (local->x() >= m.width || local->y() >= m.height || index >= s.samples.size())
    return std::nullopt;
  Snapshot one = s;
  one.run = s.samples[index];
  if (one.run != s.run) one.filled = one.run->filled();
  return one;
}

void Canvas::build_frame(const Snapshot& s) {
  const QSize grid = grid_size(s);
  const int gw = grid.width(), gh = grid.height();
  frame_.assign(static_cast<size_t>(gw) * static_cast<size_t>(gh) * 8, 0);
  uint8_t* info = frame_.data() + static_cast<size_t>(gw) * static_cast<size_t>(gh) * 4;
  for (int64_t i = 0; i < static_cast<int64_t>(gw) * gh; ++i) {
    frame_[static_cast<size_t>(i) * 4 + 3] = 255;
    info[i * 4] = 4;  // a gap until a sample covers it
  }
  const attnscope::Modality& m = s.run->modality();
  const int n = std::max(1, s.samples_wanted), cols = grid_columns(s);
  for (int k = 0; k < n; ++k) {
    const int x0 = (k % cols) * (m.width + kGridGap), y0 = (k / cols) * (m.height + kGridGap);
    // A sample not begun yet is all pending; a snapshot without samples shows its run.
    const session::RunStore* run = nullptr;
    if (k < static_cast<int>(s.samples.size()))
      run = s.samples[static_cast<size_t>(k)].get();
    else if (s.samples.empty())
      run = s.run.get();
    const int64_t filled = !run ? 0 : run == s.run.get() ? s.filled : run->filled();
    build_sample(run, filled, s.truth.get(), m, x0, y0, gw);
  }
}

void Canvas::build_sample(const session::RunStore* run, int64_t filled,
                          const session::TruthScore* truth, const attnscope::Modality& m, int x0,
                          int y0, int stride) {
  const int w = m.width, h = m.height, channels = m.channels;
  const int64_t known = run ? run->known(filled) : 0;
  const size_t plane = frame_.size() / 2;
  for (int64_t px = 0; px < static_cast<int64_t>(w) * h; ++px) {
    const int64_t first = px * channels;
    const size_t at = static_cast<size_t>((y0 + px / w) * stride + x0 + px % w) * 4;
    uint8_t* c = frame_.data() + at;
    c[0] = c[1] = c[2] = 0;
    int entropy_n = 0, kept = 0, have = 0;
    float entropy = 0;
    for (int ch = 0; ch < channels; ++ch) {
      const int64_t p = first + ch;
      // A keep mask's kept tokens are there before the run reaches them; painted ones pend.
      const bool is_kept = run && run->kept(p);
      kept += is_kept;
      if (is_kept || p < known) {
        ++have;
        if (ch < 3) c[ch] = run->token(p);
      }
      if (p < filled) {
        entropy += run->entropy_bits(p);
        ++entropy_n;
      }
    }
    if (channels == 1) c[1] = c[2] = c[0];
    c[3] = 255;
    uint8_t* in = frame_.data() + plane + at;
    in[0] = kept == channels ? 1 : have == channels ? 2 : have > 0 ? 3 : 0;
    in[1] = entropy_n ? static_cast<uint8_t>(std::lround(
                            std::clamp(entropy / entropy_n / 8.0f, 0.0f, 1.0f) * 255.0f))
                      : 0;
    // b: the pixel's mean surprise over its channels / 8 bits; a: 1 where there is one.
    if (truth && truth->surprise_bits.size() >= static_cast<size_t>(first + channels)) {
      float sum = 0;
      for (int ch = 0; ch < channels; ++ch)
        sum += truth->surprise_bits[static_cast<size_t>(first + ch)];
      in[2] =
          static_cast<uint8_t>(std::lround(std::clamp(sum / channels / 8.0f, 0.0f, 1.0f) * 255.0f));
      in[3] = 1;
    }
  }
}

void Canvas::paintGL() {
  glClearColor(0.11f, 0.11f, 0.12f, 1.0f);
  glClear(GL_COLOR_BUFFER_BIT);
  shown_ = session_->snapshot();
  const Snapshot& s = *shown_;
  const bool has_image = s.run && s.run->modality().kind == attnscope::ModalityKind::kImage;
  if (has_image) {
    const QSize grid = grid_size(s);
    const int w = grid.width(), h = grid.height();
    if (s.serial != uploaded_serial_ || texture_size_ != QSize(w, 2 * h)) {
      if (texture_size_ != QSize(w, 2 * h)) {
        glBindTexture(GL_TEXTURE_2D, texture_);
        glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA8, w, 2 * h, 0, GL_RGBA, GL_UNSIGNED_BYTE, nullptr);
        texture_size_ = QSize(w, 2 * h);
      }
      build_frame(s);
      QString why;
      if (!uploader_->upload(texture_, w, 2 * h, frame_.data(), &why)) {
        // The interop path failed at run time: from here on, the host path.
        uploader_->release();
        uploader_ = texture_uploader_create_host(this);
        upload_path_ = QStringLiteral("%1; interop failed: %2").arg(uploader_->name(), why);
        emit upload_path_changed(upload_path_);
        uploader_->upload(texture_, w, 2 * h, frame_.data(), &why);
      }
      uploaded_serial_ = s.serial;
    }
    const float dpr = static_cast<float>(devicePixelRatioF());
    glViewport(0, 0, static_cast<GLsizei>(width() * dpr), static_cast<GLsizei>(height() * dpr));
    const glm::mat4 projection = glm::ortho(0.0f, static_cast<float>(width()),
                                            static_cast<float>(height()), 0.0f, -1.0f, 1.0f);
    const glm::mat4 model =
        glm::scale(glm::mat4(1.0f), glm::vec3(static_cast<float>(w), static_cast<float>(h), 1));
    const glm::mat4 mvp = projection * view_matrix() * model;

    const int64_t known = s.run->known(s.filled);
    const int channels = s.run->modality().channels;
    const bool pending = known < s.run->length();
    const int next_px = pending ? static_cast<int>(known / channels) : -1;
    // The slot of the sample being generated: the last one there is.
    const int slot = std::max(0, static_cast<int>(s.samples.size()) - 1);
    const int iw = s.run->modality().width;
    const QPoint origin((slot % grid_columns(s)) * (iw + kGridGap),
                        (slot / grid_columns(s)) * (s.run->modality().height + kGridGap));

    program_->bind();
    glUniformMatrix4fv(program_->uniformLocation("u_mvp"), 1, GL_FALSE, glm::value_ptr(mvp));
    program_->setUniformValue("u_image_size",
                              QVector2D(static_cast<float>(w), static_cast<float>(h)));
    glUniform2i(program_->uniformLocation("u_size"), w, h);
    glUniform2i(program_->uniformLocation("u_next"), pending ? origin.x() + next_px % iw : -1,
                pending ? origin.y() + next_px / iw : -1);
    glUniform2i(program_->uniformLocation("u_hover"), hover_.x(), hover_.y());
    program_->setUniformValue("u_mode", static_cast<int>(mode_));
    program_->setUniformValue("u_mark_prompt", mark_prompt_);
    program_->setUniformValue("u_image", 0);
    glActiveTexture(GL_TEXTURE0);
    glBindTexture(GL_TEXTURE_2D, texture_);
    glBindVertexArray(vao_);
    glDrawArrays(GL_TRIANGLE_STRIP, 0, 4);
    glBindVertexArray(0);
    program_->release();
  }

  // The inspector reads the sample under the mouse (in a grid, not necessarily the newest).
  QPoint local(-1, -1);
  const std::optional<Snapshot> hovered = sample_at(s, hover_, &local);
  const Snapshot& shown = hovered ? *hovered : s;
  inspection_ = overlay::inspect(shown, hovered ? local : QPoint(-1, -1));
  if (overlay_visible_) {
    imgui_.new_frame();
    footprint_ =
        overlay::draw(shown, inspection_, {upload_path_, renderer_, static_cast<int>(mode_)},
                      static_cast<float>(width()), static_cast<float>(height()));
    imgui_.render();
    if (footprint_.redraw) QTimer::singleShot(0, this, [this] { update(); });
    // The bands only grow (a line more while a run is under way would make the image jump at
    // every start and end); the overlay's size settles over its first frames: refit then.
    band_top_ = std::max<double>(band_top_, footprint_.top);
    band_bottom_ = std::max<double>(band_bottom_, footprint_.bottom);
    if (!user_view_ && (std::abs(band_top_ - fitted_bands_.x()) > 1 ||
                        std::abs(band_bottom_ - fitted_bands_.y()) > 1))
      QTimer::singleShot(0, this, [this] {
        if (!user_view_) fit();
      });
  } else {
    footprint_ = {};
  }
}

bool Canvas::event(QEvent* e) {
  if (overlay_visible_ && imgui_.initialized()) {
    switch (e->type()) {
      case QEvent::MouseMove:
      case QEvent::MouseButtonPress:
      case QEvent::MouseButtonRelease:
      case QEvent::MouseButtonDblClick:
      case QEvent::Wheel:
      case QEvent::KeyPress:
      case QEvent::KeyRelease:
        if (imgui_.handle_event(e) && !dragging_) {
          hover_ = {-1, -1};
          update();
          return true;
        }
        break;
      default:
        break;
    }
  }
  return QOpenGLWidget::event(e);
}

void Canvas::mousePressEvent(QMouseEvent* e) {
  if (e->button() == Qt::LeftButton || e->button() == Qt::MiddleButton) {
    dragging_ = true;
    drag_from_ = e->position();
    setCursor(Qt::ClosedHandCursor);
  }
  update();
}

void Canvas::mouseMoveEvent(QMouseEvent* e) {
  if (dragging_) {
    pan_ += e->position() - drag_from_;
    drag_from_ = e->position();
    user_view_ = true;
  }
  hover_ = pixel_at(e->position());
  update();
}

void Canvas::mouseReleaseEvent(QMouseEvent* e) {
  if (dragging_) {
    dragging_ = false;
    unsetCursor();
  }
  update();
}

void Canvas::mouseDoubleClickEvent(QMouseEvent*) {
  fit();
}

void Canvas::wheelEvent(QWheelEvent* e) {
  const double steps = e->angleDelta().y() / 120.0;
  if (steps != 0) set_zoom(zoom_ * std::pow(2.0, steps / 2), e->position());
  hover_ = pixel_at(e->position());
}

void Canvas::leaveEvent(QEvent* e) {
  imgui_.handle_event(e);
  hover_ = {-1, -1};
  update();
}

}  // namespace render
