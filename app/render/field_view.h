// FieldView: a render::Field drawn with OpenGL 3.3 (shaders/heatmap.frag over image.vert),
// fitted to the widget with square pixels; reports the pixel under the mouse and clicks.
// The attention, pattern and LSH views show their images through it.
#pragma once

#include <QOpenGLFunctions_3_3_Core>
#include <QOpenGLWidget>
#include <memory>

#include "palette.h"

class QOpenGLShaderProgram;

namespace render {

class FieldView : public QOpenGLWidget, protected QOpenGLFunctions_3_3_Core {
  Q_OBJECT

 public:
  explicit FieldView(QWidget* parent = nullptr);
  ~FieldView() override;

  void set_field(Field field);
  const Field& field() const { return field_; }
  // Outlines field pixel p; (-1, -1) for none.
  void set_marker(QPoint p);
  // Where field pixel (x, y) lies on the widget, and the pixel under a widget position
  // ((-1, -1) outside).
  QRectF pixel_rect(int x, int y) const;
  QPoint pixel_at(QPointF pos) const;

 signals:
  void hovered(QPoint pixel);
  void clicked(QPoint pixel);

 protected:
  void initializeGL() override;
  void paintGL() override;
  void mouseMoveEvent(QMouseEvent* e) override;
  void mousePressEvent(QMouseEvent* e) override;

 private:
  void release_gl();
  QRectF image_rect() const;

  Field field_;
  QPoint marker_{-1, -1};
  bool dirty_ = true;
  // GL objects: created in initializeGL, freed on the context's aboutToBeDestroyed.
  std::unique_ptr<QOpenGLShaderProgram> program_;
  GLuint vao_ = 0, vbo_ = 0, base_tex_ = 0, values_tex_ = 0;
};

}  // namespace render
