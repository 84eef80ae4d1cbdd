// The Compare tab: its controls, the two panes (image nearest-neighbour scaled, waveform or
// text, the prompt marked) and the figures under each, all from snapshots.
#include "compare_view.h"

#include <QFileInfo>
#include <QFontDatabase>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QPainter>
#include <QPainterPath>
#include <QProgressBar>
#include <QPushButton>
#include <QTextDocument>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>

#include "attnscope/audio.h"
#include "inspect_view.h"

namespace ui {

namespace {

QString bits(double b) {
  return std::isnan(b) ? QStringLiteral("—") : QString::number(b, 'f', 3);
}

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
    for (int y = 0; y < m.height; ++y)
      for (int x = 0; x < m.width; ++x) {
        const size_t at = (static_cast<size_t>(y) * m.width + x) * c;
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
};

CompareView::CompareView(session::Session* s, QWidget* parent) : QWidget(parent), session_(s) {
  auto* layout = new QVBoxLayout(this);
  auto* bar = new QHBoxLayout;
  load_ = new QPushButton(tr("Load second model…"), this);
  load_->setToolTip(tr("A model of the same modality and size as the open one"));
  run_ = new QPushButton(tr("Compare"), this);
  run_->setToolTip(tr("Complete the prompt with both models: same sampling parameters and seed"));
  second_ = new QLabel(this);
  bar->addWidget(load_);
  bar->addWidget(run_);
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
  layout->addWidget(sides_, 1);

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
      stats_[i]->setText(
          tr("<b>%1</b> tokens/s<br>completion (%4 positions): <b>%2</b> bits/dim<br>prompt (%5 "
             "positions): <b>%3</b> bits/dim")
              .arg(side.tokens_per_s, 0, 'f', 0)
              .arg(bits(side.completion_bits_per_dim), bits(side.prompt_bits_per_dim))
              .arg(r.length)
              .arg(r.prompt_length));
    } else {
      stats_[i]->setText(tr("generating: %1 / %2 positions")
                             .arg(static_cast<qlonglong>(side.tokens.size()))
                             .arg(r.length));
    }
    panes_[i]->show_side(shown_, i);
  }
}

QString CompareView::export_name() const {
  const QString b = shown_ ? stem(shown_->sides[1].name) : QStringLiteral("second");
  return QStringLiteral("%1-vs-%2-compare.png").arg(stem(model_path_), b);
}

attnscope::Status CompareView::export_to(const QString& path, QStringList* written) {
  if (!shown_)
    return attnscope::Status(attnscope::StatusCode::kInvalidArgument,
                             "There is no comparison to export: load a second model and Compare.");
  return write_files({{path, png_bytes(sides_->grab().toImage())}}, written);
}

}  // namespace ui
