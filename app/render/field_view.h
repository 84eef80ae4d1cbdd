// FieldView: a render::Field drawn with OpenGL 3.3 (shaders/heatmap.frag over image.vert),
// fitted to the widget with square pixels; reports the pixel under the mouse and clicks.
// FieldFrame holds one and paints its guides (axes, colour bar; render::guides) around it with
// QPainter on a plain widget: QPainter over this core-profile GL widget drew nothing.
// The attention, pattern and LSH views show their images through it.
#pragma once

#include <QOpenGLFunctions_3_3_Core>
#include <QOpenGLWidget>
#include <memory>

#include "guides.h"
#include "palette.h"

class QOpenGLShaderProgram;

namespace render {

// The axes span the field's edges: x from the left edge to the right, y from top to bottom.
struct FieldGuides {
  AxisSpec x, y;
  ColorBarSpec bar;
};

class FieldView : public QOpenGLWidget, protected QOpenGLFunctions_3_3_Core {
  Q_OBJECT

 public:
  explicit FieldView(QWidget* parent = nullptr);
  ~FieldView() override;

  void set_field(Field field);
  const Field& field() const { return field_; }
  // Kept here, drawn by the FieldFrame around this view.
  void set_guides(FieldGuides guides);
  const FieldGuides& guides() const { return guides_; }
  // Outlines field pixel p; (-1, -1) for none.
  void set_marker(QPoint p);
  // Where field pixel (x, y) lies on the widget, and the pixel under a widget position
  // ((-1, -1) outside).
  QRectF pixel_rect(int x, int y) const;
  QPoint pixel_at(QPointF pos) const;
  // Where the field is drawn in this widget.
  QRectF image_rect() const;

 signals:
  void hovered(QPoint pixel);
  void clicked(QPoint pixel);
  // The image's place or the guides changed (the frame lays out and repaints).
  void laid_out();

 protected:
  void initializeGL() override;
  void paintGL() override;
  void mouseMoveEvent(QMouseEvent* e) override;
  void mousePressEvent(QMouseEvent* e) override;
  void resizeEvent(QResizeEvent* e) override;

 private:
  void release_gl();

  Field field_;
  FieldGuides guides_;
  QPoint marker_{-1, -1};
  bool dirty_ = true;
  // GL objects: created in initializeGL, freed on the context's aboutToBeDestroyed.
  std::unique_ptr<QOpenGLShaderProgram> program_;
  GLuint vao_ = 0, vbo_ = 0, base_tex_ = 0, values_tex_ = 0;
};

// A FieldView with its axes (left, bottom) and colour bar (right) painted around it.
class FieldFrame : public QWidget {
  Q_OBJECT

 public:
  explicit FieldFrame(QWidget* parent = nullptr);
  FieldView* view() const { return view_; }

 protected:
  void resizeEvent(QResizeEvent* e) override;
  void paintEvent(QPaintEvent* e) override;

 private:
  void place_view();
  FieldView* view_;
};

}  // namespace render
