// The audio view's drawing (QPainter), its STFT (a radix-2 FFT of our own: 256-point frames of
// a few thousand samples need nothing more than a dozen lines) and playback through QAudioSink.
#include "audio_view.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QPainter>
#include <QPushButton>
#include <QTimer>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <complex>

#include "attnscope/audio.h"
#include "render/colormap.h"
#include "render/guides.h"

#ifdef ATTNSCOPE_HAVE_MULTIMEDIA
#include <QAudioDevice>
#include <QAudioFormat>
#include <QAudioSink>
#include <QBuffer>
#include <QMediaDevices>
#endif

namespace ui {

namespace {

constexpr double kFloorDb = -90.0;  // the spectrogram's colour range: kFloorDb .. 0 dB
const QColor kPromptColor(90, 160, 255);
const QColor kGeneratedColor(255, 170, 60);
const QColor kPlayheadColor(255, 220, 0);
constexpr int kMargin = 8, kLabelHeight = 18;

// In-place iterative radix-2 FFT; a.size() is a power of two.
void fft(std::vector<std::complex<float>>& a) {
  const size_t n = a.size();
  for (size_t i = 1, j = 0; i < n; ++i) {
    size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(a[i], a[j]);
  }
  for (size_t len = 2; len <= n; len <<= 1) {
    const double angle = -2 * M_PI / static_cast<double>(len);
    const std::complex<float> step(static_cast<float>(std::cos(angle)),
                                   static_cast<float>(std::sin(angle)));
    for (size_t i = 0; i < n; i += len) {
      std::complex<float> w(1);
      for (size_t k = 0; k < len / 2; ++k, w *= step) {
        const std::complex<float> u = a[i + k], v = a[i + k + len / 2] * w;
        a[i + k] = u + v;
        a[i + k + len / 2] = u - v;
      }
    }
  }
}

class Plot : public QWidget {
 public:
  explicit Plot(AudioView* view) : QWidget(view), view_(view) {
    setMinimumSize(320, 240);
    setAutoFillBackground(false);
  }

 protected:
  void paintEvent(QPaintEvent*) override {
    QPainter p(this);
    view_->paint_plot(p);
  }

 private:
  AudioView* view_;
};

}  // namespace

std::vector<std::vector<float>> audio_stft_db(const float* samples, int64_t n, int hop) {
  std::vector<std::vector<float>> frames;
  if (n < kStftSize || hop <= 0) return frames;
  std::vector<float> window(kStftSize);
  for (int i = 0; i < kStftSize; ++i)
    window[static_cast<size_t>(i)] =
        static_cast<float>(0.5 - 0.5 * std::cos(2 * M_PI * i / (kStftSize - 1)));
  // A full-scale sine under the Hann window peaks at kStftSize / 4: that is 0 dB.
  const double reference = kStftSize / 4.0;
  std::vector<std::complex<float>> buf(kStftSize);
  for (int64_t start = 0; start + kStftSize <= n; start += hop) {
    for (int i = 0; i < kStftSize; ++i)
      buf[static_cast<size_t>(i)] = samples[start + i] * window[static_cast<size_t>(i)];
    fft(buf);
    std::vector<float> db(kStftSize / 2);
    for (int k = 0; k < kStftSize / 2; ++k)
      db[static_cast<size_t>(k)] = static_cast<float>(
          20 * std::log10(std::abs(buf[static_cast<size_t>(k)]) / reference + 1e-9));
    frames.push_back(std::move(db));
  }
  return frames;
}

AudioView::AudioView(session::Session* session, QWidget* parent)
    : QWidget(parent), session_(session) {
  auto* layout = new QVBoxLayout(this);
  auto* bar = new QHBoxLayout;
  play_ = new QPushButton(tr("Play"), this);
  play_->setObjectName(QStringLiteral("audio-play"));
  note_ = new QLabel(this);
  note_->setObjectName(QStringLiteral("audio-play-note"));
  info_ = new QLabel(this);
  info_->setToolTip(
      tr("Voiced: the share of 40 ms frames that sound and repeat at a pitch of 70-400 Hz "
         "(normalised autocorrelation above 0.5). Recorded speech is about 70-80 %, noise 0 %."));
  bar->addWidget(play_);
  bar->addWidget(note_);
  bar->addStretch(1);
  bar->addWidget(info_);
  layout->addLayout(bar);
  plot_ = new Plot(this);
  layout->addWidget(plot_, 1);
  play_timer_ = new QTimer(this);
  play_timer_->setInterval(30);

  QString reason;
#ifdef ATTNSCOPE_HAVE_MULTIMEDIA
  if (QMediaDevices::defaultAudioOutput().isNull())
    reason = tr("Play is off: no audio output device was found.");
#else
  reason =
      tr("Play is off: this build has no Qt Multimedia (install qt6-multimedia-dev and "
         "rebuild).");
#endif
  play_->setEnabled(reason.isEmpty());
  play_->setToolTip(reason.isEmpty() ? tr("Play what is there so far, at the model's rate")
                                     : reason);
  note_->setText(reason);
  note_->setVisible(!reason.isEmpty());

  connect(play_, &QPushButton::clicked, this, &AudioView::toggle_play);
  connect(play_timer_, &QTimer::timeout, plot_, qOverload<>(&QWidget::update));
  connect(session_, &session::Session::published, this, &AudioView::on_published);
  on_published();
}

AudioView::~AudioView() {
  stop_playing();
}

void AudioView::set_sample(int index) {
  sample_ = std::max(index, 0);
  built_run_ = nullptr;
  on_published();
}

void AudioView::on_published() {
  const auto s = session_->snapshot();
  rebuild(*s);
  plot_->update();
}

void AudioView::rebuild(const session::Snapshot& s) {
  const bool audio = s.run && s.run->modality().kind == attnscope::ModalityKind::kAudio;
  if (!audio) {
    samples_.clear();
    spectrogram_ = QImage();
    length_ = prompt_ = 0;
    playhead_ = -1;
    built_run_ = nullptr;
    info_->clear();
    return;
  }
  const session::RunStore* run = s.run.get();
  if (!s.samples.empty())
    run = s.samples[static_cast<size_t>(
                        std::min<int>(sample_, static_cast<int>(s.samples.size()) - 1))]
              .get();
  const bool current = run == s.run.get();
  const int64_t known = current ? run->known(s.filled) : run->known(run->filled());
  playhead_ = current && s.state == session::RunState::kRunning ? known : -1;
  length_ = run->length();
  rate_ = run->modality().rate;
  prompt_ = run->prompt_length();
  if (run == built_run_ && known == built_known_) return;
  built_run_ = run;
  built_known_ = known;
  samples_.resize(static_cast<size_t>(known));
  for (int64_t i = 0; i < known; ++i)
    samples_[static_cast<size_t>(i)] = attnscope::audio_mulaw_decode(run->token(i));

  // The voiced share of the prompt and of what was generated: whether it sounds like speech.
  const auto cut = static_cast<ptrdiff_t>(std::min(prompt_, known));
  auto voiced = [this](auto begin, auto end) {
    const attnscope::Voicing v = attnscope::audio_voicing({rate_, std::vector<float>(begin, end)});
    return v.frames == 0 ? QStringLiteral("-")
                         : QStringLiteral("%1 %").arg(std::lround(100 * v.share()));
  };
  info_->setText(tr("%1 Hz · prompt %2 s · generated %3 s of %4 s · voiced: prompt %5, "
                    "generated %6")
                     .arg(rate_)
                     .arg(static_cast<double>(prompt_) / rate_, 0, 'f', 2)
                     .arg(static_cast<double>(known - prompt_) / rate_, 0, 'f', 2)
                     .arg(static_cast<double>(length_ - prompt_) / rate_, 0, 'f', 2)
                     .arg(voiced(samples_.begin(), samples_.begin() + cut))
                     .arg(voiced(samples_.begin() + cut, samples_.end())));

  // About 256 frames over the model's length, whatever it is.
  const int hop = static_cast<int>(std::clamp<int64_t>(length_ / 256, 16, kStftSize / 2));
  const int total = static_cast<int>(std::max<int64_t>(1, (length_ - kStftSize) / hop + 1));
  const auto frames = audio_stft_db(samples_.data(), known, hop);
  spectrogram_ = QImage(total, kStftSize / 2, QImage::Format_RGB32);
  spectrogram_.fill(QColor(40, 40, 44));
  for (size_t f = 0; f < frames.size() && static_cast<int>(f) < total; ++f)
    for (int k = 0; k < kStftSize / 2; ++k) {
      const double t = (frames[f][static_cast<size_t>(k)] - kFloorDb) / -kFloorDb;
      const render::Rgb8 c = render::viridis(t);
      spectrogram_.setPixel(static_cast<int>(f), kStftSize / 2 - 1 - k, qRgb(c.r, c.g, c.b));
    }
}

// Amplitude and frequency axes on the left, the time axis under the spectrogram, the
// spectrogram's dB colour bar on the right.
QRect AudioView::waveform_rect() const {
  const int h = plot_->height() - 2 * kMargin - 2 * kLabelHeight - render::kAxisBottomRoom;
  const int left = kMargin + render::kAxisLeftRoom;
  return QRect(left, kMargin + kLabelHeight,
               plot_->width() - left - kMargin - render::kColorBarRoom, h * 2 / 5);
}

QRect AudioView::spectrogram_rect() const {
  const QRect w = waveform_rect();
  return QRect(
      w.left(), w.bottom() + 1 + kLabelHeight, w.width(),
      plot_->height() - kMargin - render::kAxisBottomRoom - (w.bottom() + 1 + kLabelHeight));
}

void AudioView::paint_plot(QPainter& p) {
  p.fillRect(plot_->rect(), QColor(28, 28, 31));
  p.setPen(QColor(200, 200, 200));
  const QRect wave = waveform_rect(), spec = spectrogram_rect();
  if (length_ <= 0) {
    p.drawText(plot_->rect(), Qt::AlignCenter, tr("Open an audio model (Ctrl+O)"));
    return;
  }
  const int known = static_cast<int>(samples_.size());
  auto x_of = [&](int64_t sample) {
    return wave.left() + static_cast<int>(sample * wave.width() / std::max<int64_t>(length_, 1));
  };
  p.drawText(QRect(wave.left(), wave.top() - kLabelHeight, wave.width(), kLabelHeight),
             Qt::AlignLeft | Qt::AlignVCenter, tr("Waveform"));
  p.drawText(QRect(spec.left(), spec.top() - kLabelHeight, spec.width(), kLabelHeight),
             Qt::AlignLeft | Qt::AlignVCenter,
             tr("Spectrogram (0 – %1 Hz, log magnitude; colour bar on the right)").arg(rate_ / 2));
  // The prompt's part on a tinted background, the rest plain.
  const int cut = x_of(prompt_);
  p.fillRect(QRect(wave.left(), wave.top(), cut - wave.left(), wave.height()), QColor(34, 44, 64));
  p.fillRect(QRect(cut, wave.top(), wave.right() - cut + 1, wave.height()), QColor(40, 40, 44));
  p.setPen(QColor(70, 70, 76));
  p.drawLine(wave.left(), wave.center().y(), wave.right(), wave.center().y());
  // One vertical min..max line per pixel column.
  const double half = wave.height() / 2.0;
  for (int x = 0; x < wave.width(); ++x) {
    const int64_t a = static_cast<int64_t>(x) * length_ / wave.width();
    const int64_t b = std::max(a + 1, static_cast<int64_t>(x + 1) * length_ / wave.width());
    if (a >= known) break;
    float lo = 1, hi = -1;
    for (int64_t i = a; i < std::min<int64_t>(b, known); ++i) {
      lo = std::min(lo, samples_[static_cast<size_t>(i)]);
      hi = std::max(hi, samples_[static_cast<size_t>(i)]);
    }
    p.setPen(a < prompt_ ? kPromptColor : kGeneratedColor);
    p.drawLine(QPointF(wave.left() + x + 0.5, wave.center().y() - hi * half),
               QPointF(wave.left() + x + 0.5, wave.center().y() - lo * half + 0.5));
  }
  if (!spectrogram_.isNull()) {
    p.setRenderHint(QPainter::SmoothPixmapTransform, false);
    p.drawImage(spec, spectrogram_);
  }
  // Axes: amplitude (full scale = 1), frequency (Hz, 0 at the bottom), time (s); the colour
  // bar reads the spectrogram's log magnitude.
  const double seconds = static_cast<double>(length_) / std::max(1, rate_);
  render::draw_axis_left(p, wave, {tr("amplitude"), 1.0, -1.0});
  render::draw_axis_left(p, spec, {tr("frequency (Hz)"), rate_ / 2.0, 0.0});
  render::draw_axis_bottom(p, spec, {tr("time (s)"), 0.0, seconds});
  render::ColorBarSpec bar;
  bar.shown = true;
  bar.label = tr("spectrogram magnitude (dB)");
  bar.lo = kFloorDb;
  bar.hi = 0;
  bar.v_lo = 0;
  bar.v_hi = 1;
  render::draw_color_bar(
      p, QRectF(spec.right() + 1, spec.top(), render::kColorBarRoom, spec.height()), bar);
  p.setPen(QColor(200, 200, 200));
  // The prompt's end across both plots, labelled.
  p.setPen(QPen(kPromptColor, 2));
  p.drawLine(cut, wave.top(), cut, spec.bottom());
  QFont bold = p.font();
  bold.setBold(true);
  p.setFont(bold);
  if (prompt_ > 0) {
    p.setPen(kPromptColor);
    p.drawText(QRect(wave.left() + 4, wave.top() + 2, cut - wave.left() - 8, kLabelHeight),
               Qt::AlignLeft | Qt::AlignVCenter, tr("prompt"));
  }
  p.setPen(kGeneratedColor);
  p.drawText(QRect(cut + 6, wave.top() + 2, wave.right() - cut - 8, kLabelHeight),
             Qt::AlignLeft | Qt::AlignVCenter,
             known > prompt_ ? tr("generated") : tr("to generate"));
  auto head = [&](int64_t sample, const QColor& color) {
    const int x = x_of(sample);
    p.setPen(QPen(color, 2));
    p.drawLine(x, wave.top(), x, spec.bottom());
  };
  if (playhead_ >= 0) head(playhead_, kPlayheadColor);
#ifdef ATTNSCOPE_HAVE_MULTIMEDIA
  if (sink_ && play_from_ >= 0)
    head(play_from_ + sink_->processedUSecs() * rate_ / 1000000, QColor(255, 255, 255));
#endif
}

void AudioView::toggle_play() {
#ifdef ATTNSCOPE_HAVE_MULTIMEDIA
  if (sink_) {
    stop_playing();
    return;
  }
  if (samples_.empty()) return;
  QAudioFormat format;
  format.setSampleRate(rate_);
  format.setChannelCount(1);
  format.setSampleFormat(QAudioFormat::Int16);
  const QAudioDevice device = QMediaDevices::defaultAudioOutput();
  if (device.isNull() || !device.isFormatSupported(format)) {
    note_->setText(tr("The audio output cannot play %1 Hz mono 16-bit.").arg(rate_));
    note_->setVisible(true);
    return;
  }
  pcm_bytes_.resize(static_cast<qsizetype>(samples_.size() * 2));
  auto* out = reinterpret_cast<int16_t*>(pcm_bytes_.data());
  for (size_t i = 0; i < samples_.size(); ++i)
    out[i] = static_cast<int16_t>(std::lround(std::clamp(samples_[i], -1.0f, 1.0f) * 32767));
  pcm_ = std::make_unique<QBuffer>(&pcm_bytes_);
  pcm_->open(QIODevice::ReadOnly);
  sink_ = std::make_unique<QAudioSink>(device, format);
  connect(sink_.get(), &QAudioSink::stateChanged, this, [this](QAudio::State st) {
    if (st == QAudio::IdleState || st == QAudio::StoppedState)
      QTimer::singleShot(0, this, &AudioView::stop_playing);
  });
  play_from_ = 0;
  sink_->start(pcm_.get());
  play_->setText(tr("Stop"));
  play_timer_->start();
#endif
}

void AudioView::stop_playing() {
#ifdef ATTNSCOPE_HAVE_MULTIMEDIA
  if (sink_) {
    sink_->disconnect(this);
    sink_->stop();
    sink_.reset();
    pcm_.reset();
  }
#endif
  play_from_ = -1;
  play_timer_->stop();
  play_->setText(tr("Play"));
  plot_->update();
}

}  // namespace ui
