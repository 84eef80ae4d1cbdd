// Attention view: controls, hover/click to choose the query, the heat field and its export.
#include "attention_view.h"

#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QSignalBlocker>
#include <QSpinBox>
#include <QStackedWidget>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>

#include "attention_track.h"
#include "attnscope/audio.h"

namespace ui {

using attnscope::Family;

std::vector<double> attention_per_position(const attnscope::AttnRow& r, int head, int64_t npos) {
  std::vector<double> out(static_cast<size_t>(std::max<int64_t>(0, npos)), 0.0);
  for (int64_t j = 0; j < r.keys; ++j) {
    double w = 0;
    for (int h = 0; h < r.heads; ++h)
      if (head < 0 || h == head) w += r.weights[static_cast<size_t>(h * r.keys + j)];
    if (head < 0 && r.heads > 0) w /= r.heads;
    if (w == 0) continue;
    // Key j covers positions key_offset + j * stride .. + stride - 1, clipped at 0.
    const int64_t lo = std::max<int64_t>(0, r.key_offset + j * r.key_stride);
    const int64_t hi = std::min(npos - 1, r.key_offset + (j + 1) * r.key_stride - 1);
    if (hi < lo) continue;
    const double share = w / static_cast<double>(hi - lo + 1);
    for (int64_t p = lo; p <= hi; ++p) out[static_cast<size_t>(p)] += share;
  }
  return out;
}

std::vector<float> attention_heat(const attnscope::AttnRow& r, int head, const PixelMap& map) {
  std::vector<float> heat(static_cast<size_t>(map.w) * static_cast<size_t>(map.h), 0.0f);
  const int64_t npos = static_cast<int64_t>(map.w) * map.h * map.channels;
  const std::vector<double> per = attention_per_position(r, head, npos);
  for (int64_t p = 0; p < npos; ++p) {
    if (per[static_cast<size_t>(p)] == 0) continue;
    const QPoint px = map.pixel(p);
    heat[static_cast<size_t>(px.y()) * map.w + px.x()] +=
        static_cast<float>(per[static_cast<size_t>(p)]);
  }
  return heat;
}

AttentionView::AttentionView(session::Session* s, QWidget* parent)
    : InspectView(s, session::InspectKind::kAttention, parent) {
  layer_ = new QSpinBox(this);
  head_ = new QComboBox(this);
  channel_ = new QComboBox(this);
  info_ = new QLabel(
      tr("Open a model and a prompt; hover the image to choose a query, click to pin it."), this);
  info_->setWordWrap(true);
  info_->setMinimumHeight(info_->fontMetrics().lineSpacing() * 3);
  info_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  frame_ = new render::FieldFrame(this);
  field_ = frame_->view();
  track_ = new AttentionTrack(this);
  track_->setObjectName(QStringLiteral("attention-track"));
  stack_ = new QStackedWidget(this);
  stack_->addWidget(frame_);
  stack_->addWidget(track_);
  for (QComboBox* box : {head_, channel_}) box->setSizeAdjustPolicy(QComboBox::AdjustToContents);
  auto* controls = new QHBoxLayout;
  controls->addWidget(new QLabel(tr("Layer"), this));
  controls->addWidget(layer_);
  controls->addWidget(new QLabel(tr("Head"), this));
  controls->addWidget(head_);
  channel_label_ = new QLabel(tr("Query channel"), this);
  controls->addWidget(channel_label_);
  controls->addWidget(channel_);
  controls->addStretch(1);
  auto* layout = new QVBoxLayout(this);
  layout->addLayout(controls);
  layout->addWidget(info_);
  layout->addWidget(stack_, 1);
  connect(layer_, &QSpinBox::valueChanged, this, [this] { set_query(query_); });
  connect(head_, &QComboBox::currentIndexChanged, this, [this] { redraw(); });
  connect(field_, &render::FieldView::hovered, this, [this](QPoint px) {
    if (pinned_ || !shown()) return;
    const PixelMap map = pixel_map(shown()->model->config.modality);
    set_query(map.position(px, std::max(0, channel_->currentIndex())));
  });
  // The 1-D track (audio, text): positions directly.
  connect(track_, &AttentionTrack::hovered, this, [this](int64_t p) {
    if (!pinned_ && shown()) set_query(p);
  });
  connect(track_, &AttentionTrack::clicked, this, [this](int64_t p) {
    if (!shown()) return;
    pinned_ = !pinned_;
    set_query(p);
  });
  connect(field_, &render::FieldView::clicked, this, [this](QPoint px) {
    if (!shown()) return;
    const PixelMap map = pixel_map(shown()->model->config.modality);
    pinned_ = !pinned_;
    set_query(map.position(px, std::max(0, channel_->currentIndex())));
  });
}

void AttentionView::set_layer(int layer) {
  layer_->setValue(layer);
}
void AttentionView::set_head(int head) {
  head_->setCurrentIndex(head + 1);
}

void AttentionView::reload() {
  const session::ModelSummary& m = *shown()->model;
  const int layers = attnscope::inspect_layer_count(m.config);
  layer_->setRange(0, std::max(0, layers - 1));
  if (head_->count() != m.config.heads + 1) {
    head_->clear();
    head_->addItem(tr("mean over heads"));
    for (int h = 0; h < m.config.heads; ++h) head_->addItem(tr("head %1").arg(h));
  }
  const PixelMap map = pixel_map(m.config.modality);
  // Channels exist in images only; a 1-D track has one value per position.
  const bool image = m.config.modality.kind == attnscope::ModalityKind::kImage;
  channel_->setVisible(image);
  channel_label_->setVisible(image);
  if (channel_->count() != map.channels) {
    channel_->clear();
    const QStringList names = {tr("R"), tr("G"), tr("B")};
    for (int c = 0; c < map.channels; ++c)
      channel_->addItem(map.channels == 3 ? names[c] : QString::number(c));
  }
  const int64_t known = shown()->run ? shown()->run->known(shown()->filled) : 0;
  // The last known token by default; a query beyond the known tokens moves back to it.
  set_query(query_ < 0 || query_ >= known ? known - 1 : query_);
}

void AttentionView::set_query(int64_t p) {
  if (!shown() || !shown()->run) return;
  const attnscope::ModelConfig& cfg = shown()->model->config;
  const int64_t known = shown()->run->known(shown()->filled);
  if (known < 1) return;
  p = std::clamp<int64_t>(p, 0, known - 1);
  if (cfg.family == Family::kPerceiverAR && layer_->value() >= 0)
    p = std::max(p, known - std::min<int64_t>(cfg.perceiver.latents, known));
  query_ = p;
  session::InspectRequest r;
  r.layer = layer_->value();
  r.query = p;
  request(r);
}

void AttentionView::show_result(const session::InspectResult& r) {
  redraw();
}

void AttentionView::redraw() {
  if (!result_ || !result_->model) return;
  const session::InspectResult& r = *result_;
  const PixelMap map = pixel_map(r.model->config.modality);
  render::Field f;
  f.w = map.w;
  f.h = map.h;
  f.mode = render::FieldMode::kHeat;
  f.base = run_image(*r.run, r.n, map);
  if (!r.error.empty()) {
    info_->setText(tr("Cannot show this query: %1").arg(QString::fromStdString(r.error)));
    return;
  }
  const attnscope::Modality& mod = r.model->config.modality;
  if (mod.kind != attnscope::ModalityKind::kImage) {
    redraw_track();
    return;
  }
  stack_->setCurrentWidget(frame_);
  std::vector<float> heat = attention_heat(r.row, head_->currentIndex() - 1, map);
  // Stretched from the least to the most attended pixel, so that a near-uniform row still
  // shows its structure; pixels with no allowed key keep the image.
  float lo = 0, hi = 0;
  for (float h : heat)
    if (h > 0) {
      lo = lo > 0 ? std::min(lo, h) : h;
      hi = std::max(hi, h);
    }
  f.values.resize(heat.size());
  for (size_t i = 0; i < heat.size(); ++i) {
    const int64_t first = static_cast<int64_t>(i) * map.channels;
    f.values[i] = first >= r.n   ? -1.0f
                  : heat[i] <= 0 ? 0.0f
                  : hi > lo      ? std::max(1e-3f, (heat[i] - lo) / (hi - lo))
                                 : 1.0f;
  }
  field_->set_field(std::move(f));
  render::FieldGuides g;
  if (r.model->config.modality.kind == attnscope::ModalityKind::kImage) {
    g.x = {tr("pixel x"), 0, static_cast<double>(map.w)};
    g.y = {tr("pixel y"), 0, static_cast<double>(map.h)};
  }
  g.bar.shown = hi > 0;
  g.bar.label = tr("attention weight per pixel (share of the query's attention)");
  g.bar.lo = lo;
  g.bar.hi = hi > lo ? hi : lo + 1e-6;
  g.bar.v_lo = 1e-3f;
  g.bar.v_hi = 1.0f;
  g.bar.swatches = {{QColor(40, 40, 44), tr("image dimmed: no weight (not attended)")},
                    {QColor(56, 56, 56), tr("checkered: not generated yet")}};
  field_->set_guides(std::move(g));
  const QPoint q = map.pixel(r.request.query);
  field_->set_marker(q);
  const int ch = static_cast<int>(r.request.query % map.channels);
  {
    const QSignalBlocker block(channel_);
    channel_->setCurrentIndex(ch);
  }
  info_->setText(tr("Query: position %1 (pixel %2, %3, channel %4)%5 · %6\ncolour: weight per "
                    "pixel from %7 (purple) to %8 (yellow), bar on the right; untinted pixels "
                    "get none")
                     .arg(r.request.query)
                     .arg(q.x())
                     .arg(q.y())
                     .arg(ch)
                     .arg(pinned_ ? tr(", pinned") : QString())
                     .arg(row_summary(*r.model, r.request.layer, r.row))
                     .arg(static_cast<double>(lo), 0, 'g', 3)
                     .arg(static_cast<double>(hi), 0, 'g', 3));
}

void AttentionView::redraw_track() {
  const session::InspectResult& r = *result_;
  const attnscope::Modality& mod = r.model->config.modality;
  const bool audio = mod.kind == attnscope::ModalityKind::kAudio;
  const int64_t total = mod.seq_len();
  std::vector<float> signal(static_cast<size_t>(r.n));
  for (int64_t i = 0; i < r.n; ++i)
    signal[static_cast<size_t>(i)] =
        audio ? attnscope::audio_mulaw_decode(r.run->token(i)) : r.run->token(i) / 127.5f - 1.0f;
  std::vector<double> w = attention_per_position(r.row, head_->currentIndex() - 1, r.n);
  double top = 0;
  for (double v : w) top = std::max(top, v);
  track_->set_data(mod, std::move(signal), std::move(w), total, r.request.query);
  stack_->setCurrentWidget(track_);
  const QString when =
      audio ? tr(" (t = %1 s)")
                  .arg(static_cast<double>(r.request.query) / std::max(1, mod.rate), 0, 'f', 3)
            : QString();
  info_->setText(tr("Query: position %1%2%3 · %4 · the most any position gets: %5\nhover the "
                    "track to choose a query, click to pin it")
                     .arg(r.request.query)
                     .arg(when)
                     .arg(pinned_ ? tr(", pinned") : QString())
                     .arg(row_summary(*r.model, r.request.layer, r.row))
                     .arg(top, 0, 'g', 3));
}

QString AttentionView::export_name() const {
  const int64_t q = result_ ? result_->request.query : 0;
  return QStringLiteral("%1-attention-layer%2-query%3.png")
      .arg(model_stem())
      .arg(layer_->value())
      .arg(q);
}

attnscope::Status AttentionView::export_to(const QString& path, QStringList* written) const {
  if (stack_->currentWidget() == track_) {
    if (track_->weights().empty())
      return attnscope::invalid_argument(
          "there is no attention track to export yet: generate first");
    return write_files({{path, png_bytes(track_->grab().toImage())}}, written);
  }
  if (field_->field().values.empty())
    return attnscope::invalid_argument("there is no heatmap to export yet: generate first");
  const render::Field& f = field_->field();
  const int scale = std::max(1, 512 / std::max(f.w, f.h));
  return write_files({{path, png_bytes(render::field_render(f, scale))}}, written);
}

}  // namespace ui
