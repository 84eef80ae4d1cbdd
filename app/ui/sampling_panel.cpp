// The Sampling panel's controls and its progress display.
#include "sampling_panel.h"

#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QProgressBar>
#include <QPushButton>
#include <QSpinBox>
#include <QVBoxLayout>

namespace ui {

SamplingPanel::SamplingPanel(QWidget* parent) : QWidget(parent) {
  auto* layout = new QVBoxLayout(this);
  auto* form = new QFormLayout;
  temperature_ = new QDoubleSpinBox(this);
  temperature_->setRange(0, 5);
  temperature_->setSingleStep(0.1);
  temperature_->setDecimals(2);
  temperature_->setToolTip(tr("0 = greedy"));
  top_k_ = new QSpinBox(this);
  top_k_->setRange(0, 256);
  top_k_->setSpecialValueText(tr("all"));
  top_p_ = new QDoubleSpinBox(this);
  top_p_->setRange(0.01, 1);
  top_p_->setSingleStep(0.05);
  top_p_->setDecimals(2);
  seed_ = new QSpinBox(this);
  seed_->setRange(0, std::numeric_limits<int>::max());
  form->addRow(tr("Temperature"), temperature_);
  form->addRow(tr("Top-k"), top_k_);
  form->addRow(tr("Top-p"), top_p_);
  form->addRow(tr("Seed"), seed_);
  samples_ = new QSpinBox(this);
  samples_->setRange(1, 64);
  samples_->setToolTip(tr("How many samples, with seeds S, S+1, ...; images show them in a grid"));
  form->addRow(tr("Samples"), samples_);
  shown_ = new QSpinBox(this);
  shown_->setRange(1, 1);
  shown_->setToolTip(tr("Which sample the audio and text views show"));
  form->addRow(tr("Show sample"), shown_);
  connect(shown_, &QSpinBox::valueChanged, this,
          [this](int v) { emit shown_sample_changed(v - 1); });
  layout->addLayout(form);

  auto* buttons = new QHBoxLayout;
  generate_ = new QPushButton(tr("Generate"), this);
  generate_->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_Return));
  generate_->setToolTip(tr("Complete the image from the prompt (Ctrl+Enter)"));
  stop_ = new QPushButton(tr("Stop"), this);
  stop_->setShortcut(QKeySequence(Qt::Key_Escape));
  stop_->setToolTip(tr("Stop the generation (Esc)"));
  buttons->addWidget(generate_);
  buttons->addWidget(stop_);
  layout->addLayout(buttons);
  progress_ = new QProgressBar(this);
  progress_->setRange(0, 1000);
  progress_->setValue(0);
  layout->addWidget(progress_);
  rate_ = new QLabel(this);
  layout->addWidget(rate_);
  layout->addStretch(1);

  set_params({});
  connect(generate_, &QPushButton::clicked, this, &SamplingPanel::generate_requested);
  connect(stop_, &QPushButton::clicked, this, &SamplingPanel::stop_requested);
}

attnscope::SamplingParams SamplingPanel::params() const {
  attnscope::SamplingParams p;
  p.temperature = static_cast<float>(temperature_->value());
  p.top_k = top_k_->value();
  p.top_p = static_cast<float>(top_p_->value());
  p.seed = static_cast<uint64_t>(seed_->value());
  return p;
}

void SamplingPanel::set_params(const attnscope::SamplingParams& p) {
  temperature_->setValue(p.temperature);
  top_k_->setValue(p.top_k);
  top_p_->setValue(p.top_p);
  seed_->setValue(static_cast<int>(std::min<uint64_t>(p.seed, std::numeric_limits<int>::max())));
}

int SamplingPanel::samples() const {
  return samples_->value();
}

void SamplingPanel::set_samples(int n) {
  samples_->setValue(n);
}

int SamplingPanel::shown_sample() const {
  return shown_->value() - 1;
}

void SamplingPanel::set_shown_sample(int index) {
  shown_->setValue(index + 1);
}

void SamplingPanel::show_snapshot(const session::Snapshot& s) {
  const bool running = s.state == session::RunState::kRunning;
  // New samples appear as the run reaches them; while it goes, the newest is followed.
  const int have = std::max<int>(1, static_cast<int>(s.samples.size()));
  const bool follow = running && shown_->value() == shown_->maximum();
  shown_->setMaximum(have);
  if (follow) shown_->setValue(have);
  shown_->setSuffix(tr(" of %1").arg(have));

  generate_->setEnabled(s.model && !running);
  stop_->setEnabled(running);
  if (!s.run) {
    progress_->setValue(0);
    progress_->setFormat(QStringLiteral("%p%"));
    rate_->setText(s.model ? QString() : tr("Open a model (Ctrl+O)"));
    return;
  }
  const int64_t n = s.run->length(), known = s.run->known(s.filled);
  progress_->setValue(static_cast<int>(1000 * known / std::max<int64_t>(n, 1)));
  progress_->setFormat(QStringLiteral("%1 / %2").arg(known).arg(n));
  switch (s.state) {
    case session::RunState::kRunning:
      rate_->setText(
          tr("%1 tokens/s, %2 s left").arg(s.tokens_per_s, 0, 'f', 0).arg(s.eta_s, 0, 'f', 1));
      break;
    case session::RunState::kIdle:
      rate_->setText(tr("ready: %1 prompt tokens kept").arg(s.run->prompt_length()));
      break;
    default:
      rate_->setText(QStringLiteral("%1 (%2 tokens/s)")
                         .arg(QString::fromStdString(s.message))
                         .arg(s.tokens_per_s, 0, 'f', 0));
      break;
  }
}

}  // namespace ui
