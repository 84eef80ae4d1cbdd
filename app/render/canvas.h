// Canvas: the image being completed, drawn with OpenGL 3.3 core from shaders/ (embedded as Qt
// resources), live while generating; zoom (wheel) and pan (drag) with nearest-neighbour
// pixels, the next position outlined, prompt pixels optionally tinted, the ImGui overlay on top.
// A several-sample run shows as a grid of ceil(sqrt N) columns with a 2-pixel gap.
#pragma once

#include <QOpenGLFunctions_3_3_Core>
#include <QOpenGLWidget>
#include <QTimer>
#include <glm/mat4x4.hpp>
#include <memory>
#include <optional>
#include <vector>

#include "imgui/imgui_qt.h"
#include "imgui/overlay.h"
#include "session/session.h"
#include "texture_uploader.h"

class QOpenGLShaderProgram;

namespace render {

class Canvas : public QOpenGLWidget, protected QOpenGLFunctions_3_3_Core {
  Q_OBJECT

 public:
  // The colours: the pixels; the model's entropy where it has sampled; its surprise at the real
  // image the prompt came from (Snapshot::truth, -log2 P(true value)).
  enum class Mode { kImage = 0, kEntropy = 1, kSurprise = 2 };

  explicit Canvas(session::Session* session, QWidget* parent = nullptr);
  ~Canvas() override;

  // Where image pixel (x, y) lies on the widget, in widget (logical) pixels.
  QRectF pixel_rect(int x, int y) const;
  // The image pixel under a widget position; (-1, -1) outside the image.
  QPoint pixel_at(QPointF widget_pos) const;
  double zoom() const { return zoom_; }
  // The image (or grid of samples) size a snapshot is shown at; empty without an image run.
  static QSize grid_size(const session::Snapshot& s);
  // Columns of that grid: ceil(sqrt N) for N samples, as attnscope-cli generate --samples.
  static int grid_columns(const session::Snapshot& s);
  // Zooms keeping the image point under anchor (widget pixels) in place.
  void set_zoom(double zoom, QPointF anchor);
  // The largest whole zoom (or fraction, for images larger than the widget) that shows the
  // whole image, centred.
  void fit();

  void set_mark_prompt(bool on);
  void set_mode(Mode mode);
  Mode mode() const { return mode_; }
  void set_overlay_visible(bool on);
  bool overlay_visible() const { return overlay_visible_; }

  // The texture upload path in use ("" before the first initializeGL).
  QString upload_path() const { return upload_path_; }
  // What the inspector showed in the last frame.
  const overlay::Inspection& inspection() const { return inspection_; }
  // The overlay windows' rectangles in the last frame (widget pixels); empty when hidden.
  const std::vector<QRectF>& overlay_rects() const { return footprint_.windows; }

 signals:
  void upload_path_changed(const QString& path);

 protected:
  void initializeGL() override;
  void resizeGL(int w, int h) override;
  void paintGL() override;
  bool event(QEvent* e) override;
  void mousePressEvent(QMouseEvent* e) override;
  void mouseMoveEvent(QMouseEvent* e) override;
  void mouseReleaseEvent(QMouseEvent* e) override;
  void mouseDoubleClickEvent(QMouseEvent* e) override;
  void wheelEvent(QWheelEvent* e) override;
  void leaveEvent(QEvent* e) override;

 private:
  void release_gl();
  void on_published();
  // Rebuilds the W x 2H RGBA8 frame from the snapshot (see shaders/image.frag for the layout);
  // W x H is the grid of every sample.
  void build_frame(const session::Snapshot& s);
  // The snapshot of the sample under image pixel px (its run and fill), with *local set to the
  // pixel inside that sample; nothing when px is in a gap, outside, or on a sample not begun.
  // One sample's pixels into the frame at (x0, y0) of a frame stride pixels wide; run null
  // (a sample not begun) is all pending.
  void build_sample(const session::RunStore* run, int64_t filled, const session::TruthScore* truth,
                    const attnscope::Modality& m, int x0, int y0, int stride);
  std::optional<session::Snapshot> sample_at(const session::Snapshot& s, QPoint px,
                                             QPoint* local) const;
  glm::mat4 view_matrix() const;
  QSize image_size() const;

  session::Session* session_;
  QTimer frame_timer_;  // redraws at display rate while a run goes

  // GL objects: created in initializeGL, freed on the context's aboutToBeDestroyed.
  std::unique_ptr<QOpenGLShaderProgram> program_;
  GLuint vao_ = 0, vbo_ = 0, texture_ = 0;
  QSize texture_size_;
  std::unique_ptr<TextureUploader> uploader_;
  QString upload_path_;
  QString renderer_;
  imgui_qt::Platform imgui_{this};

  std::vector<uint8_t> frame_;
  uint64_t uploaded_serial_ = 0;
  std::shared_ptr<const session::Snapshot> shown_;

  double zoom_ = 1;
  QPointF pan_;                            // widget position of the image's top-left corner
  bool user_view_ = false;                 // the user zoomed or panned: keep it across resizes
  overlay::Footprint footprint_;           // the overlay windows of the last frame
  double band_top_ = 0, band_bottom_ = 0;  // the overlay's bands that fit() keeps clear
  QPointF fitted_bands_{-1, -1};           // the bands the current fit used
  QSize fitted_image_;
  bool dragging_ = false;
  QPointF drag_from_;
  QPoint hover_{-1, -1};
  bool mark_prompt_ = true;
  Mode mode_ = Mode::kImage;
  bool overlay_visible_ = true;
  overlay::Inspection inspection_;
};

// OpenGL 3.3 core with a depth-less default framebuffer; set before QApplication exists.
void canvas_set_default_surface_format();

}  // namespace render
