// AudioView: the prompt and the generation of an audio model as a waveform and a spectrogram
// (STFT of the decoded mu-law samples, log magnitude in viridis), the kept prompt set apart from
// the generated part, a playhead at the position being generated; Play/Stop through Qt Multimedia.
#pragma once

#include <QImage>
#include <QWidget>
#include <memory>
#include <vector>

#include "session/session.h"

class QAudioSink;
class QBuffer;
class QLabel;
class QPushButton;
class QTimer;

namespace ui {

// Short-time Fourier transform frames of samples: a Hann window of kStftSize samples every hop
// samples; each frame holds kStftSize / 2 magnitudes in dB relative to a full-scale sine.
constexpr int kStftSize = 256;
std::vector<std::vector<float>> audio_stft_db(const float* samples, int64_t n, int hop);

class AudioView : public QWidget {
  Q_OBJECT

 public:
  explicit AudioView(session::Session* session, QWidget* parent = nullptr);
  ~AudioView() override;

  // Which sample of a several-sample run is shown (0-based; clamped to those there are).
  void set_sample(int index);

  QPushButton* play_button() const { return play_; }
  // Why Play is off ("" when it is on); also the button's tooltip.
  QLabel* play_note() const { return note_; }
  // Rate, prompt and generated seconds, and the voiced share of each (attnscope::Voicing).
  QLabel* info_label() const { return info_; }
  QWidget* plot() const { return plot_; }
  // The decoded samples on show: the prompt, then what is generated so far.
  const std::vector<float>& samples() const { return samples_; }
  int64_t prompt_samples() const { return prompt_; }
  // The position being generated; -1 when no run goes.
  int64_t playhead() const { return playhead_; }
  // The spectrogram as drawn before scaling: one column per frame, low frequencies at the
  // bottom; null before there are samples.
  const QImage& spectrogram() const { return spectrogram_; }
  // Where the plot widget draws the waveform and the spectrogram.
  QRect waveform_rect() const;
  QRect spectrogram_rect() const;

  void paint_plot(QPainter& p);

 private:
  void on_published();
  void rebuild(const session::Snapshot& s);
  void toggle_play();
  void stop_playing();

  session::Session* session_;
  QWidget* plot_;
  QPushButton* play_;
  QLabel* note_;
  QLabel* info_;
  int sample_ = 0;
  int64_t length_ = 0;  // samples the model makes
  int rate_ = 0;
  int64_t prompt_ = 0;
  int64_t playhead_ = -1;
  std::vector<float> samples_;
  QImage spectrogram_;
  const session::RunStore* built_run_ = nullptr;
  int64_t built_known_ = -1;

  QTimer* play_timer_;
  int64_t play_from_ = -1;  // sample where playback started; -1 when not playing
#ifdef ATTNSCOPE_HAVE_MULTIMEDIA
  std::unique_ptr<QAudioSink> sink_;
  std::unique_ptr<QBuffer> pcm_;
  QByteArray pcm_bytes_;
#endif
};

}  // namespace ui
