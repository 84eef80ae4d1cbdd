// The Sampling panel's controls, its progress display and the test-time knob table.
#include "sampling_panel.h"

#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QProgressBar>
#include <QPushButton>
#include <QSpinBox>
#include <QTableWidget>
#include <QVBoxLayout>
#include <cmath>

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

  knobs_box_ = new QGroupBox(tr("Test-time knobs (next run)"), this);
  knobs_box_->setObjectName(QStringLiteral("knobs"));
  auto* knobs = new QVBoxLayout(knobs_box_);
  auto* knob_form = new QFormLayout;
  hashes_ = new QSpinBox(knobs_box_);
  hashes_->setRange(1, 16);
  hashes_->setToolTip(tr("LSH hash rounds; the weights do not depend on it"));
  latents_ = new QSpinBox(knobs_box_);
  latents_->setRange(1, 1);
  latents_->setToolTip(tr("Perceiver AR latents M (1..N): the last M positions are queries"));
  latent_cache_ = new QComboBox(knobs_box_);
  latent_cache_->addItem(tr("exact"), static_cast<int>(attnscope::PerceiverDecode::kExact));
  latent_cache_->addItem(tr("cached"), static_cast<int>(attnscope::PerceiverDecode::kCached));
  latent_cache_->setToolTip(
      tr("How decoding goes on once M latents are cached.\n"
         "exact: each token's window is the M positions ending at it, so the whole latent "
         "stack runs again for every token (slow; the logits equal the full forward's).\n"
         "cached: the official sampler's most_recent_only scheme: when the caches are full "
         "they are rebuilt from the last M/2 positions, then grow by one row per token; a "
         "token sees M/2..M latents (fast; a different model of the data, compare the "
         "table's bits/dim)."));
  knob_form->addRow(tr("Hash rounds"), hashes_);
  knob_form->addRow(tr("Latents"), latents_);
  knob_form->addRow(tr("Latent cache"), latent_cache_);
  knobs->addLayout(knob_form);
  knob_table_ = new QTableWidget(0, 3, knobs_box_);
  knob_table_->setObjectName(QStringLiteral("knob-table"));
  knob_table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  knob_table_->verticalHeader()->hide();
  knob_table_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  knob_table_->horizontalHeader()->setStretchLastSection(true);
  knob_table_->setToolTip(
      tr("One row per finished run: the knob value, the generation speed "
         "and the bits/dim of the prompt under the model"));
  knobs->addWidget(knob_table_);
  knobs_box_->hide();
  layout->addWidget(knobs_box_);
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

session::Knobs SamplingPanel::knobs() const {
  session::Knobs k;
  if (!knobs_model_) return k;
  if (knobs_model_->config.family == attnscope::Family::kReformer) k.n_hashes = hashes_->value();
  if (knobs_model_->config.family == attnscope::Family::kPerceiverAR) {
    k.latents = latents_->value();
    k.decode = static_cast<attnscope::PerceiverDecode>(latent_cache_->currentData().toInt());
  }
  return k;
}

void SamplingPanel::set_knobs(const session::Knobs& k) {
  if (k.n_hashes > 0) hashes_->setValue(k.n_hashes);
  if (k.latents > 0) {
    latents_->setValue(k.latents);
    latent_cache_->setCurrentIndex(latent_cache_->findData(static_cast<int>(k.decode)));
  }
}

void SamplingPanel::show_knobs(const session::Snapshot& s) {
  const attnscope::Family f = s.model ? s.model->config.family : attnscope::Family::kDense;
  const bool reformer = f == attnscope::Family::kReformer;
  const bool perceiver = f == attnscope::Family::kPerceiverAR;
  knobs_box_->setVisible(reformer || perceiver);
  if (s.model != knobs_model_) {
    // A new model, or the knobs applied: the controls show what the next run uses.
    knobs_model_ = s.model;
    if (s.model) {
      auto* form = static_cast<QFormLayout*>(knobs_box_->layout()->itemAt(0)->layout());
      form->setRowVisible(hashes_, reformer);
      form->setRowVisible(latents_, perceiver);
      form->setRowVisible(latent_cache_, perceiver);
      latents_->setMaximum(static_cast<int>(s.model->config.seq_len()));
      hashes_->setValue(s.model->config.lsh.n_hashes);
      latents_->setValue(s.model->config.perceiver.latents);
      latent_cache_->setCurrentIndex(
          latent_cache_->findData(static_cast<int>(s.model->config.perceiver.decode)));
    }
  }
  if (!reformer && !perceiver) return;
  knob_table_->setHorizontalHeaderLabels(
      {reformer ? tr("Hash rounds") : tr("Latents"), tr("tokens/s"), tr("prompt bits/dim")});
  // Rows only ever accumulate for one model (a new model starts an empty table).
  if (knob_table_->rowCount() == static_cast<int>(s.knob_rows.size())) return;
  knob_table_->setRowCount(static_cast<int>(s.knob_rows.size()));
  for (size_t i = 0; i < s.knob_rows.size(); ++i) {
    const session::KnobRow& r = s.knob_rows[i];
    const double bpd = r.prompt_bits_per_dim;
    const QStringList cells = {
        r.scheme.empty()
            ? QString::number(r.value)
            : QStringLiteral("%1 %2").arg(r.value).arg(QString::fromStdString(r.scheme)),
        QString::number(r.tokens_per_s, 'f', 0),
        std::isnan(bpd) ? tr("— (no prompt)") : QString::number(bpd, 'f', 3)};
    for (int c = 0; c < 3; ++c) {
      auto* item = new QTableWidgetItem(cells[c]);
      item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
      knob_table_->setItem(static_cast<int>(i), c, item);
    }
  }
}

void SamplingPanel::show_snapshot(const session::Snapshot& s) {
  show_knobs(s);
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
