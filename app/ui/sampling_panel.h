// Sampling panel: temperature, top-k, top-p, seed and the number of samples (seeds S, S+1, ...)
// with which one the audio and text views show; Generate and Stop; a progress bar with tokens/s
// and time left, from snapshots.
#pragma once

#include <QWidget>

#include "attnscope/generate.h"
#include "session/snapshot.h"

class QDoubleSpinBox;
class QLabel;
class QProgressBar;
class QPushButton;
class QSpinBox;

namespace ui {

class SamplingPanel : public QWidget {
  Q_OBJECT

 public:
  explicit SamplingPanel(QWidget* parent = nullptr);
  attnscope::SamplingParams params() const;
  void set_params(const attnscope::SamplingParams& p);
  void show_snapshot(const session::Snapshot& s);
  int samples() const;
  void set_samples(int n);
  // The sample the audio and text views show (0-based); images show all of them in a grid.
  int shown_sample() const;
  void set_shown_sample(int index);

  QPushButton* generate_button() const { return generate_; }
  QPushButton* stop_button() const { return stop_; }
  QProgressBar* progress() const { return progress_; }

 signals:
  void generate_requested();
  void stop_requested();
  void shown_sample_changed(int index);

 private:
  QDoubleSpinBox* temperature_;
  QSpinBox* top_k_;
  QDoubleSpinBox* top_p_;
  QSpinBox* seed_;
  QSpinBox* samples_;
  QSpinBox* shown_;
  QPushButton* generate_;
  QPushButton* stop_;
  QProgressBar* progress_;
  QLabel* rate_;
};

}  // namespace ui
