// Sampling panel: temperature, top-k, top-p, seed and the number of samples (seeds S, S+1, ...)
// with which one the audio and text views show; Generate and Stop; a progress bar with tokens/s
// and time left, from snapshots; for Reformer and Perceiver AR models the test-time knobs (hash
// rounds; latents and their decoding) for the next run and a table of the runs made with each
// value.
#pragma once

#include <QWidget>

#include "attnscope/generate.h"
#include "session/playground.h"
#include "session/snapshot.h"

class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QProgressBar;
class QPushButton;
class QSpinBox;
class QGroupBox;
class QTableWidget;

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
  // The knobs for the next run (0 for those the open model's family does not have).
  session::Knobs knobs() const;
  void set_knobs(const session::Knobs& k);
  QGroupBox* knobs_box() const { return knobs_box_; }
  QSpinBox* hashes_box() const { return hashes_; }
  QSpinBox* latents_box() const { return latents_; }
  QComboBox* latent_cache_box() const { return latent_cache_; }
  QTableWidget* knob_table() const { return knob_table_; }

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
  void show_knobs(const session::Snapshot& s);
  QGroupBox* knobs_box_;
  QSpinBox* hashes_;
  QSpinBox* latents_;
  QComboBox* latent_cache_;
  QTableWidget* knob_table_;
  std::shared_ptr<const session::ModelSummary> knobs_model_;
};

}  // namespace ui
