// The Compare tab: its controls, the two panes (image nearest-neighbour scaled, waveform or
// text, the prompt marked) and the figures under each, all from snapshots.
#include "compare_view.h"

#include <QCheckBox>
#include <QFileInfo>
#include <QFontDatabase>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QPainter>
#include <QPainterPath>
#include <QProgressBar>
#include <QPushButton>
#include <QRegularExpression>
#include <QTextDocument>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>

#include "attnscope/audio.h"
#include "inspect_view.h"
#include "render/colormap.h"

namespace ui {

namespace {

// Positions a completion samples: after the kept prefix, or the unkept ones of a mask.
int64_t completed(const session::CompareResult& r) {
  return r.keep.empty() ? r.length - r.prompt_length
                        : static_cast<int64_t>(std::count(r.keep.begin(), r.keep.end(), 0));
}

QString bits(double b) {
  return std::isnan(b) ? QStringLiteral("—") : QString::number(b, 'f', 3);
}

// The surprise overlay's scale: -log2 P(true value) per channel, 0 (certain) to 8 bits (a
// uniform guess over 256 values) and above, clamped.
constexpr int kSurpriseMaxBits = 8;

QString stem(const std::string& name) {
  return QFileInfo(QString::fromStdString(name)).completeBaseName();
}

}  // namespace

// One model's output: the image, waveform or text of its tokens so far, the prompt marked.
class ComparePane : public QWidget {
 public:
  explicit ComparePane(QWidget* parent) : QWidget(parent) {
    setMinimumSize(160, 160);
    setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Expanding);
  }
  void show_side(std::shared_ptr<const session::CompareResult> r, int side) {
    result_ = std::move(r);
    side_ = side;
    update();
  }
  void set_surprise(bool on) {
    surprise_ = on;
    update();
  }

 protected:
  void paintEvent(QPaintEvent*) override {
    QPainter p(this);
    p.fillRect(rect(), QColor(32, 32, 36));
    if (!result_) {
      p.setPen(QColor(160, 160, 160));
      p.drawText(rect(), Qt::AlignCenter | Qt::TextWordWrap,
                 tr("Load a second model, then Compare"));
      return;
    }
    switch (result_->modality.kind) {
      case attnscope::ModalityKind::kImage:
        paint_image(p);
        break;
      case attnscope::ModalityKind::kAudio:
        paint_audio(p);
        break;
      case attnscope::ModalityKind::kText:
        paint_text(p);
        break;
    }
  }

 private:
  const std::vector<uint8_t>& tokens() const { return result_->sides[side_].tokens; }

  void paint_image(QPainter& p) {
    const attnscope::Modality& m = result_->modality;
    const std::vector<uint8_t>& t = tokens();
    QImage img(m.width, m.height, QImage::Format_RGB888);
    img.fill(QColor(56, 56, 60));
    const int c = m.channels;
    const std::vector<float>& bits = result_->sides[side_].surprise_bits;
    const bool surprise = surprise_ && bits.size() == static_cast<size_t>(result_->length);
    for (int y = 0; y < m.height; ++y)
      for (int x = 0; x < m.width; ++x) {
        const size_t at = (static_cast<size_t>(y) * m.width + x) * c;
        if (surprise) {
          // The pixel's mean surprise over its channels, on the legend's 0-8 bit scale.
          double sum = 0;
          for (int k = 0; k < c; ++k) sum += bits[at + k];
          const render::Rgb8 v = render::viridis(sum / c / kSurpriseMaxBits);
          img.setPixelColor(x, y, QColor(v.r, v.g, v.b));
          continue;
        }
        if (at + c > t.size()) continue;
        const uint8_t r = t[at], g = c >= 3 ? t[at + 1] : r, b = c >= 3 ? t[at + 2] : r;
        img.setPixelColor(x, y, QColor(r, g, b));
      }
    // The largest whole-number scale that fits (a fraction only when the pane is too small).
    const double fit = std::min(static_cast<double>(width() - 8) / m.width,
                                static_cast<double>(height() - 8) / m.height);
    const double scale = fit >= 1 ? std::floor(fit) : std::max(fit, 0.1);
    const QSizeF size(m.width * scale, m.height * scale);
    const QRectF target(QPointF((width() - size.width()) / 2, (height() - size.height()) / 2),
                        size);
    p.setRenderHint(QPainter::SmoothPixmapTransform, false);
    p.drawImage(target, img);
    // The prompt's last kept row: a line under it, as the canvas marks prompt pixels.
    const int64_t row_tokens = static_cast<int64_t>(m.width) * c;
    const int64_t rows = row_tokens > 0 ? result_->prompt_length / row_tokens : 0;
    if (rows > 0 && rows < m.height) {
      const double y = target.top() + rows * scale;
      p.setPen(QPen(QColor(255, 200, 40), 2, Qt::DashLine));
      p.drawLine(QPointF(target.left(), y), QPointF(target.right(), y));
    }
  }

  void paint_audio(QPainter& p) {
    const std::vector<uint8_t>& t = tokens();
    const int64_t n = std::max<int64_t>(result_->length, 1);
    const QRectF area = QRectF(rect()).adjusted(8, 8, -8, -8);
    const double mid = area.center().y(), half = area.height() / 2;
    p.setPen(QColor(80, 80, 90));
    p.drawLine(QPointF(area.left(), mid), QPointF(area.right(), mid));
    const int columns = std::max(1, static_cast<int>(area.width()));
    for (int x = 0; x < columns; ++x) {
      const int64_t from = n * x / columns, to = std::max(from + 1, n * (x + 1) / columns);
      if (from >= static_cast<int64_t>(t.size())) break;
      float lo = 1, hi = -1;
      for (int64_t i = from; i < std::min<int64_t>(to, static_cast<int64_t>(t.size())); ++i) {
        const float v = attnscope::audio_mulaw_decode(t[static_cast<size_t>(i)]);
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
      p.setPen(from < result_->prompt_length ? QColor(150, 150, 150) : QColor(90, 170, 255));
      const double px = area.left() + x + 0.5;
      p.drawLine(QPointF(px, mid - hi * half), QPointF(px, mid - lo * half));
    }
    if (result_->prompt_length > 0 && result_->prompt_length < n) {
      const double x = area.left() + area.width() * result_->prompt_length / n;
      p.setPen(QPen(QColor(255, 200, 40), 1, Qt::DashLine));
      p.drawLine(QPointF(x, area.top()), QPointF(x, area.bottom()));
    }
  }

  void paint_text(QPainter& p) {
    const std::vector<uint8_t>& t = tokens();
    const size_t kept = std::min(t.size(), static_cast<size_t>(result_->prompt_length));
    const auto text = [&](size_t from, size_t to) {
      return QString::fromUtf8(reinterpret_cast<const char*>(t.data()) + from,
                               static_cast<qsizetype>(to - from))
          .toHtmlEscaped();
    };
    QTextDocument doc;
    doc.setDefaultFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
    doc.setTextWidth(width() - 16);
    doc.setHtml(QStringLiteral("<pre style='white-space: pre-wrap; color: #e6e6e6'>"
                               "<span style='color: #9a9a9a'>%1</span>%2</pre>")
                    .arg(text(0, kept), text(kept, t.size())));
    p.translate(8, 8);
    doc.drawContents(&p, QRectF(0, 0, width() - 16, height() - 16));
  }

  std::shared_ptr<const session::CompareResult> result_;
  int side_ = 0;
  bool surprise_ = false;
};

// The surprise overlay's colour bar: viridis from 0 to kSurpriseMaxBits bits, with ticks.
class SurpriseLegend : public QWidget {
 public:
  explicit SurpriseLegend(QWidget* parent) : QWidget(parent) { setFixedHeight(40); }

 protected:
  void paintEvent(QPaintEvent*) override {
    QPainter p(this);
    const QRectF bar(8, 4, width() - 16, 12);
    for (int x = 0; x < static_cast<int>(bar.width()); ++x) {
      const render::Rgb8 v = render::viridis(x / std::max(bar.width() - 1, 1.0));
      p.setPen(QColor(v.r, v.g, v.b));
      p.drawLine(QPointF(bar.left() + x, bar.top()), QPointF(bar.left() + x, bar.bottom()));
    }
    p.setPen(palette().color(QPalette::WindowText));
    const QFontMetrics fm = p.fontMetrics();
    for (int b = 0; b <= kSurpriseMaxBits; b += 2) {
      const double x = bar.left() + bar.width() * b / kSurpriseMaxBits;
      p.drawLine(QPointF(x, bar.bottom()), QPointF(x, bar.bottom() + 3));
      const QString label =
          b == kSurpriseMaxBits ? QStringLiteral("≥ %1 bits").arg(b) : QString::number(b);
      const double w = fm.horizontalAdvance(label);
      p.drawText(QPointF(std::clamp(x - w / 2, 0.0, width() - w), bar.bottom() + 4 + fm.ascent()),
                 label);
    }
  }
};

CompareView::CompareView(session::Session* s, QWidget* parent) : QWidget(parent), session_(s) {
  auto* layout = new QVBoxLayout(this);
  auto* bar = new QHBoxLayout;
  load_ = new QPushButton(tr("Load second model…"), this);
  load_->setToolTip(tr("A model of the same modality and size as the open one"));
  run_ = new QPushButton(tr("Compare"), this);
  run_->setToolTip(tr("Complete the prompt with both models: same sampling parameters and seed"));
  second_ = new QLabel(this);
  surprise_ = new QCheckBox(tr("Surprise"), this);
  surprise_->setObjectName(QStringLiteral("compare-surprise"));
  surprise_->setToolTip(
      tr("Colour each pixel by how surprised each model is by the real image: -log2 P(true "
         "value), averaged over the pixel's channels. Dark: the model expected it."));
  bar->addWidget(load_);
  bar->addWidget(run_);
  bar->addWidget(surprise_);
  bar->addWidget(second_, 1);
  layout->addLayout(bar);
  message_ = new QLabel(this);
  message_->setObjectName(QStringLiteral("compare-message"));
  message_->setWordWrap(true);
  message_->setStyleSheet(QStringLiteral("color: #d04040; font-weight: bold"));
  message_->hide();
  layout->addWidget(message_);
  progress_ = new QProgressBar(this);
  progress_->setRange(0, 1000);
  progress_->setValue(0);
  layout->addWidget(progress_);

  sides_ = new QWidget(this);
  auto* grid = new QGridLayout(sides_);
  for (int i = 0; i < 2; ++i) {
    titles_[i] = new QLabel(sides_);
    titles_[i]->setObjectName(QStringLiteral("compare-title-%1").arg(i));
    titles_[i]->setWordWrap(true);
    panes_[i] = new ComparePane(sides_);
    stats_[i] = new QLabel(sides_);
    stats_[i]->setObjectName(QStringLiteral("compare-stats-%1").arg(i));
    stats_[i]->setWordWrap(true);
    grid->addWidget(titles_[i], 0, i);
    grid->addWidget(panes_[i], 1, i);
    grid->addWidget(stats_[i], 2, i);
    grid->setColumnStretch(i, 1);
  }
  grid->setRowStretch(1, 1);
  legend_ = new SurpriseLegend(sides_);
  legend_->setToolTip(tr("Surprise: -log2 P(true value) in bits per channel"));
  grid->addWidget(legend_, 3, 0, 1, 2);
  legend_->hide();
  layout->addWidget(sides_, 1);
  connect(surprise_, &QCheckBox::toggled, this, [this](bool on) {
    for (ComparePane* pane : panes_) pane->set_surprise(on);
    legend_->setVisible(on && shown_ && shown_->has_truth &&
                        shown_->modality.kind == attnscope::ModalityKind::kImage);
  });

  connect(load_, &QPushButton::clicked, this, &CompareView::load_requested);
  connect(run_, &QPushButton::clicked, this, &CompareView::compare_requested);
  connect(s, &session::Session::published, this, &CompareView::on_published);
  connect(s, &session::Session::failed, this, &CompareView::on_failed);
  connect(s, &session::Session::compare_loaded, this, [this] { show_message({}); });
  on_published();
}

void CompareView::show_message(const QString& text) {
  message_->setText(text);
  message_->setVisible(!text.isEmpty());
}

void CompareView::on_failed(const QString& what, const QString& message) {
  if (what == session::Session::tr("Compare")) show_message(message);
}

void CompareView::on_published() {
  const auto s = session_->snapshot();
  const bool running = s->state == session::RunState::kRunning;
  load_->setEnabled(s->model != nullptr && !running);
  run_->setEnabled(s->model && !s->compare_model.empty() && !running);
  second_->setText(s->compare_model.empty()
                       ? tr("No second model loaded")
                       : tr("Second model: %1").arg(QString::fromStdString(s->compare_model)));
  if (s->model) model_path_ = s->model->path;
  if (s->compare == shown_) return;
  shown_ = s->compare;
  if (!shown_) {
    progress_->setValue(0);
    progress_->setFormat(QStringLiteral("%p%"));
    for (int i = 0; i < 2; ++i) {
      titles_[i]->clear();
      stats_[i]->clear();
      panes_[i]->show_side(nullptr, i);
    }
    return;
  }
  show_message({});
  const session::CompareResult& r = *shown_;
  const int64_t total = std::max<int64_t>(2 * r.length, 1);
  progress_->setValue(static_cast<int>(1000 * r.done / total));
  progress_->setFormat(
      tr("%1 / %2 positions (both models, seed %3)").arg(r.done).arg(2 * r.length).arg(r.seed));
  for (int i = 0; i < 2; ++i) {
    const session::CompareSide& side = r.sides[i];
    titles_[i]->setText(QStringLiteral("<b>%1</b> %2<br>%3")
                            .arg(i == 0 ? tr("Open model:") : tr("Second model:"),
                                 QString::fromStdString(side.name).toHtmlEscaped(),
                                 QString::fromStdString(side.config_text).toHtmlEscaped()));
    if (side.done) {
      const QString truth =
          r.has_truth ? tr("true image, the %1 completed positions: <b>%2</b> bits/dim")
                            .arg(completed(r))
                            .arg(bits(side.truth_bits_per_dim))
                      : tr("true image: — (type or load a whole image or clip to score on)");
      stats_[i]->setText(tr("%1<br><b>%2</b> tokens/s · own sample under itself: %3 bits/dim "
                            "(low is not right) · prompt (%4 positions): %5 bits/dim")
                             .arg(truth)
                             .arg(side.tokens_per_s, 0, 'f', 0)
                             .arg(bits(side.completion_bits_per_dim))
                             .arg(r.prompt_length)
                             .arg(bits(side.prompt_bits_per_dim)));
    } else {
      stats_[i]->setText(tr("generating: %1 / %2 positions")
                             .arg(static_cast<qlonglong>(side.tokens.size()))
                             .arg(r.length));
    }
    panes_[i]->show_side(shown_, i);
  }
  legend_->setVisible(surprise_->isChecked() && r.has_truth &&
                      r.modality.kind == attnscope::ModalityKind::kImage);
}

QString CompareView::export_name() const {
  const QString b = shown_ ? stem(shown_->sides[1].name) : QStringLiteral("second");
  return QStringLiteral("%1-vs-%2-compare.png").arg(stem(model_path_), b);
}

attnscope::Status CompareView::export_to(const QString& path, QStringList* written) {
  if (!shown_)
    return attnscope::Status(attnscope::StatusCode::kInvalidArgument,
                             "There is no comparison to export: load a second model and Compare.");
  // The picture and, beside it, the figures as CSV (one row per model).
  const session::CompareResult& r = *shown_;
  QString csv = QStringLiteral(
      "model,config,seed,prompt_positions,completed_positions,tokens_per_s,"
      "true_image_bits_per_dim,own_sample_bits_per_dim,prompt_bits_per_dim\n");
  const auto field = [](QString v) {
    return QStringLiteral("\"%1\"").arg(v.replace(QLatin1Char('"'), QStringLiteral("\"\"")));
  };
  const auto num = [](double v) { return std::isnan(v) ? QString() : QString::number(v, 'f', 4); };
  for (const session::CompareSide& side : r.sides)
    csv += QStringLiteral("%1,%2,%3,%4,%5,%6,%7,%8,%9\n")
               .arg(field(QString::fromStdString(side.name)),
                    field(QString::fromStdString(side.config_text)))
               .arg(r.seed)
               .arg(r.prompt_length)
               .arg(completed(r))
               .arg(side.tokens_per_s, 0, 'f', 1)
               .arg(r.has_truth ? num(side.truth_bits_per_dim) : QString(),
                    num(side.completion_bits_per_dim), num(side.prompt_bits_per_dim));
  QString csv_path = path;
  csv_path.replace(
      QRegularExpression(QStringLiteral("\\.png$"), QRegularExpression::CaseInsensitiveOption),
      QString());
  csv_path += QStringLiteral(".csv");
  return write_files({{path, png_bytes(sides_->grab().toImage())}, {csv_path, csv.toUtf8()}},
                     written);
}

}  // namespace ui
