// The field's two textures (RGBA8 base, R32F values) uploaded when the field changes and
// drawn as one quad; the layout is the largest whole zoom that fits (fractional below 1).
#include "field_view.h"

#include <QMouseEvent>
#include <QOpenGLShaderProgram>
#include <QPainter>
#include <QVector2D>
#include <algorithm>
#include <cmath>
#include <glm/gtc/matrix_transform.hpp>
#include <glm/gtc/type_ptr.hpp>

#include "gl_common.h"

namespace render {

namespace {
constexpr int kMargin = 8;
}  // namespace

FieldView::FieldView(QWidget* parent) : QOpenGLWidget(parent) {
  setMouseTracking(true);
  setMinimumSize(200, 200);
}

FieldView::~FieldView() {
  release_gl();
  if (context()) disconnect(context(), nullptr, this, nullptr);
}

void FieldView::set_field(Field field) {
  const bool resized = field.w != field_.w || field.h != field_.h;
  field_ = std::move(field);
  dirty_ = true;
  update();
  if (resized) emit laid_out();
}

void FieldView::set_guides(FieldGuides guides) {
  guides_ = std::move(guides);
  emit laid_out();
}

void FieldView::resizeEvent(QResizeEvent* e) {
  QOpenGLWidget::resizeEvent(e);
  emit laid_out();
}

// ---- FieldFrame -----------------------------------------------------------------------------

FieldFrame::FieldFrame(QWidget* parent) : QWidget(parent), view_(new FieldView(this)) {
  setMinimumSize(220, 220);
  connect(view_, &FieldView::laid_out, this, [this] {
    place_view();
    update();
  });
}

void FieldFrame::place_view() {
  const FieldGuides& g = view_->guides();
  const int left = g.y.shown() ? kAxisLeftRoom : 0;
  const int right = g.bar.shown ? kColorBarRoom : 0;
  const int bottom = g.x.shown() ? kAxisBottomRoom : 0;
  const QRect avail(left, 0, std::max(1, width() - left - right), std::max(1, height() - bottom));
  // The view hugs its image (the same zoom rule as FieldView::image_rect), so the axes sit
  // right beside the image, outside the GL widget.
  QRect want = avail;
  const Field& f = view_->field();
  if (f.w > 0 && f.h > 0) {
    const double aw = std::max(1, avail.width() - 2 * kMargin);
    const double ah = std::max(1, avail.height() - 2 * kMargin);
    double zoom = std::min(aw / f.w, ah / f.h);
    if (zoom >= 1) zoom = std::floor(zoom);
    const int w = static_cast<int>(std::ceil(f.w * zoom)) + 2 * kMargin;
    const int h = static_cast<int>(std::ceil(f.h * zoom)) + 2 * kMargin;
    want =
        QRect(avail.left() + (avail.width() - w) / 2, avail.top() + (avail.height() - h) / 2, w, h);
  }
  if (view_->geometry() != want) view_->setGeometry(want);
}

void FieldFrame::resizeEvent(QResizeEvent*) {
  place_view();
}

void FieldFrame::paintEvent(QPaintEvent*) {
  QPainter p(this);
  p.fillRect(rect(), QColor(28, 28, 31));
  const QRectF r = view_->image_rect().translated(view_->pos());
  if (r.isEmpty()) return;
  const FieldGuides& g = view_->guides();
  draw_axis_bottom(p, r, g.x);
  draw_axis_left(p, r, g.y);
  draw_color_bar(p, QRectF(view_->geometry().right() + 1, r.top(), kColorBarRoom, r.height()),
                 g.bar);
}

void FieldView::set_marker(QPoint p) {
  marker_ = p;
  update();
}

QRectF FieldView::image_rect() const {
  if (field_.w <= 0 || field_.h <= 0) return {};
  const double avail_w = std::max(1, width() - 2 * kMargin);
  const double avail_h = std::max(1, height() - 2 * kMargin);
  double zoom = std::min(avail_w / field_.w, avail_h / field_.h);
  if (zoom >= 1) zoom = std::floor(zoom);
  const double w = field_.w * zoom, h = field_.h * zoom;
  return {std::round((width() - w) / 2), std::round((height() - h) / 2), w, h};
}

QRectF FieldView::pixel_rect(int x, int y) const {
  const QRectF r = image_rect();
  const double zx = r.width() / field_.w, zy = r.height() / field_.h;
  return {r.left() + x * zx, r.top() + y * zy, zx, zy};
}

QPoint FieldView::pixel_at(QPointF pos) const {
  const QRectF r = image_rect();
  if (r.isEmpty() || !r.contains(pos)) return {-1, -1};
  const int x =
      std::clamp(static_cast<int>((pos.x() - r.left()) / r.width() * field_.w), 0, field_.w - 1);
  const int y =
      std::clamp(static_cast<int>((pos.y() - r.top()) / r.height() * field_.h), 0, field_.h - 1);
  return {x, y};
}

void FieldView::initializeGL() {
  initializeOpenGLFunctions();
  connect(context(), &QOpenGLContext::aboutToBeDestroyed, this, &FieldView::release_gl,
          Qt::DirectConnection);
  program_ = gl_build_program({QStringLiteral("colormap.glsl"), QStringLiteral("heatmap.frag")},
                              "heatmap");
  gl_make_unit_quad(this, &vao_, &vbo_);
  for (GLuint* t : {&base_tex_, &values_tex_}) {
    glGenTextures(1, t);
    glBindTexture(GL_TEXTURE_2D, *t);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_NEAREST);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
  }
  dirty_ = true;
}

void FieldView::release_gl() {
  if (!program_) return;
  makeCurrent();
  glDeleteTextures(1, &base_tex_);
  glDeleteTextures(1, &values_tex_);
  glDeleteBuffers(1, &vbo_);
  glDeleteVertexArrays(1, &vao_);
  base_tex_ = values_tex_ = vbo_ = vao_ = 0;
  program_.reset();
  doneCurrent();
}

void FieldView::paintGL() {
  glClearColor(28 / 255.0f, 28 / 255.0f, 31 / 255.0f, 1.0f);
  glClear(GL_COLOR_BUFFER_BIT);
  const int w = field_.w, h = field_.h;
  if (w <= 0 || h <= 0 || field_.values.size() != static_cast<size_t>(w) * h) return;
  glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
  if (dirty_) {
    QImage base = field_.base.isNull() ? QImage(w, h, QImage::Format_RGBA8888)
                                       : field_.base.convertToFormat(QImage::Format_RGBA8888);
    if (field_.base.isNull()) base.fill(Qt::black);
    glBindTexture(GL_TEXTURE_2D, base_tex_);
    glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA8, w, h, 0, GL_RGBA, GL_UNSIGNED_BYTE, nullptr);
    for (int y = 0; y < h; ++y)
      glTexSubImage2D(GL_TEXTURE_2D, 0, 0, y, w, 1, GL_RGBA, GL_UNSIGNED_BYTE,
                      base.constScanLine(y));
    glBindTexture(GL_TEXTURE_2D, values_tex_);
    glTexImage2D(GL_TEXTURE_2D, 0, GL_R32F, w, h, 0, GL_RED, GL_FLOAT, field_.values.data());
    dirty_ = false;
  }
  const float dpr = static_cast<float>(devicePixelRatioF());
  glViewport(0, 0, static_cast<GLsizei>(width() * dpr), static_cast<GLsizei>(height() * dpr));
  const QRectF r = image_rect();
  const glm::mat4 projection = glm::ortho(0.0f, static_cast<float>(width()),
                                          static_cast<float>(height()), 0.0f, -1.0f, 1.0f);
  const glm::mat4 model = glm::scale(
      glm::translate(glm::mat4(1.0f),
                     glm::vec3(static_cast<float>(r.left()), static_cast<float>(r.top()), 0)),
      glm::vec3(static_cast<float>(r.width()), static_cast<float>(r.height()), 1));
  const glm::mat4 mvp = projection * model;
  program_->bind();
  glUniformMatrix4fv(program_->uniformLocation("u_mvp"), 1, GL_FALSE, glm::value_ptr(mvp));
  program_->setUniformValue("u_image_size",
                            QVector2D(static_cast<float>(w), static_cast<float>(h)));
  glUniform2i(program_->uniformLocation("u_size"), w, h);
  glUniform2i(program_->uniformLocation("u_marker"), marker_.x(), marker_.y());
  program_->setUniformValue("u_mode", static_cast<int>(field_.mode));
  program_->setUniformValue("u_base", 0);
  program_->setUniformValue("u_values", 1);
  glActiveTexture(GL_TEXTURE0);
  glBindTexture(GL_TEXTURE_2D, base_tex_);
  glActiveTexture(GL_TEXTURE1);
  glBindTexture(GL_TEXTURE_2D, values_tex_);
  glActiveTexture(GL_TEXTURE0);
  glBindVertexArray(vao_);
  glDrawArrays(GL_TRIANGLE_STRIP, 0, 4);
  glBindVertexArray(0);
  program_->release();
}

void FieldView::mouseMoveEvent(QMouseEvent* e) {
  const QPoint p = pixel_at(e->position());
  if (p.x() >= 0) emit hovered(p);
}

void FieldView::mousePressEvent(QMouseEvent* e) {
  const QPoint p = pixel_at(e->position());
  if (p.x() >= 0) emit clicked(p);
}

}  // namespace render
