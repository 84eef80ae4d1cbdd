// The attention of one query over a 1-D sequence (audio, text): the known signal on top
// (waveform, or bytes as bars), the weight each earlier position gets below it, the query as a
// line and the future shaded; time axis in seconds for audio, positions for text. Hovering
// chooses the query, a click pins it (AttentionView decides).
#pragma once

#include <QWidget>
#include <cstdint>
#include <vector>

#include "attnscope/config.h"

namespace ui {

class AttentionTrack : public QWidget {
  Q_OBJECT

 public:
  explicit AttentionTrack(QWidget* parent = nullptr);

  // signal: one value in [-1, 1] per known position (audio samples, or bytes / 255 for text);
  // weights: one per position (0 where not attended), length = signal's; n_total: the
  // sequence's length (the axis spans it); query: the query position.
  void set_data(const attnscope::Modality& modality, std::vector<float> signal,
                std::vector<double> weights, int64_t n_total, int64_t query);
  const std::vector<double>& weights() const { return weights_; }
  // The rectangle of the weights plot, and the position under widget x (-1 outside).
  QRect weights_rect() const;
  int64_t position_at(double x) const;
  // Where position p lies along x.
  double x_of(int64_t p) const;

 signals:
  void hovered(int64_t position);
  void clicked(int64_t position);

 protected:
  void paintEvent(QPaintEvent* e) override;
  void mouseMoveEvent(QMouseEvent* e) override;
  void mousePressEvent(QMouseEvent* e) override;

 private:
  QRect signal_rect() const;
  attnscope::Modality modality_;
  std::vector<float> signal_;
  std::vector<double> weights_;
  int64_t n_total_ = 0, query_ = -1;
};

}  // namespace ui
