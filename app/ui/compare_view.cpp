// The Compare tab: its controls, the per-model table and the grid of completions (images
// nearest-neighbour scaled, waveforms or text, the prompt marked), all from snapshots.
#include "compare_view.h"

#include <QCheckBox>
#include <QEvent>
#include <QFileInfo>
#include <QFontDatabase>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QHelpEvent>
#include <QLabel>
#include <QPainter>
#include <QProgressBar>
#include <QPushButton>
#include <QRegularExpression>
#include <QScrollArea>
#include <QSpinBox>
#include <QTableWidget>
#include <QTextDocument>
#include <QToolTip>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>

#include "attnscope/audio.h"
#include "attnscope/tensor.h"
#include "inspect_view.h"
#include "render/colormap.h"

namespace ui {

namespace {

QString bits(double b) {
  return std::isnan(b) ? QStringLiteral("—") : QString::number(b, 'f', 3);
}

// "865,792"
QString grouped(int64_t v) {
  QString digits = QString::number(v);
  for (int i = static_cast<int>(digits.size()) - 3; i > (v < 0 ? 1 : 0); i -= 3)
    digits.insert(i, QLatin1Char(','));
  return digits;
}

QString bytes_text(double b) {
  return QString::fromStdString(attnscope::mem_format_bytes(b));
}

// The surprise overlay's scale: -log2 P(true value) per channel, 0 (certain) to 8 bits (a
// uniform guess over 256 values) and above, clamped.
constexpr int kSurpriseMaxBits = 8;

QString stem(const std::string& name) {
  return QFileInfo(QString::fromStdString(name)).completeBaseName();
}

const QColor kPending(56, 56, 60);
const QColor kPromptMark(255, 200, 40);

// An image sequence (or its surprise) into target, nearest-neighbour at the largest whole
// scale that fits, the prompt's last kept row marked.
void paint_image(QPainter& p, const QRect& area, const attnscope::Modality& m,
                 const std::vector<uint8_t>& t, const std::vector<float>* surprise,
                 int64_t prompt_length, bool prefix) {
  QImage img(m.width, m.height, QImage::Format_RGB888);
  img.fill(kPending);
  const int c = m.channels;
  for (int y = 0; y < m.height; ++y)
    for (int x = 0; x < m.width; ++x) {
      const size_t at = (static_cast<size_t>(y) * m.width + x) * c;
      if (surprise) {
        // The pixel's mean surprise over its channels, on the legend's 0-8 bit scale.
        double sum = 0;
        for (int k = 0; k < c; ++k) sum += (*surprise)[at + k];
        const render::Rgb8 v = render::viridis(sum / c / kSurpriseMaxBits);
        img.setPixelColor(x, y, QColor(v.r, v.g, v.b));
        continue;
      }
      if (at + c > t.size()) continue;
      const uint8_t r = t[at], g = c >= 3 ? t[at + 1] : r, b = c >= 3 ? t[at + 2] : r;
      img.setPixelColor(x, y, QColor(r, g, b));
    }
  const double fit = std::min(static_cast<double>(area.width()) / m.width,
                              static_cast<double>(area.height()) / m.height);
  const double scale = fit >= 1 ? std::floor(fit) : std::max(fit, 0.1);
  const QSizeF size(m.width * scale, m.height * scale);
  const QRectF target(QPointF(area.left() + (area.width() - size.width()) / 2,
                              area.top() + (area.height() - size.height()) / 2),
                      size);
  p.setRenderHint(QPainter::SmoothPixmapTransform, false);
  p.drawImage(target, img);
  const int64_t row_tokens = static_cast<int64_t>(m.width) * c;
  const int64_t rows = prefix && row_tokens > 0 ? prompt_length / row_tokens : 0;
  if (rows > 0 && rows < m.height) {
    const double y = target.top() + rows * scale;
    p.setPen(QPen(kPromptMark, 1, Qt::DashLine));
    p.drawLine(QPointF(target.left(), y), QPointF(target.right(), y));
  }
}

// A waveform of mu-law tokens, min/max per pixel column, prompt grey, completion blue.
void paint_audio(QPainter& p, const QRect& area, const std::vector<uint8_t>& t, int64_t length,
                 int64_t prompt_length) {
  const int64_t n = std::max<int64_t>(length, 1);
  const double mid = area.center().y(), half = area.height() / 2.0;
  p.fillRect(area, QColor(24, 24, 28));
  p.setPen(QColor(80, 80, 90));
  p.drawLine(QPointF(area.left(), mid), QPointF(area.right(), mid));
  const int columns = std::max(1, area.width());
  for (int x = 0; x < columns; ++x) {
    const int64_t from = n * x / columns, to = std::max(from + 1, n * (x + 1) / columns);
    if (from >= static_cast<int64_t>(t.size())) break;
    float lo = 1, hi = -1;
    for (int64_t i = from; i < std::min<int64_t>(to, static_cast<int64_t>(t.size())); ++i) {
      const float v = attnscope::audio_mulaw_decode(t[static_cast<size_t>(i)]);
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    p.setPen(from < prompt_length ? QColor(150, 150, 150) : QColor(90, 170, 255));
    const double px = area.left() + x + 0.5;
    p.drawLine(QPointF(px, mid - hi * half), QPointF(px, mid - lo * half));
  }
  if (prompt_length > 0 && prompt_length < n) {
    const double x = area.left() + area.width() * static_cast<double>(prompt_length) / n;
    p.setPen(QPen(kPromptMark, 1, Qt::DashLine));
    p.drawLine(QPointF(x, area.top()), QPointF(x, area.bottom()));
  }
}

// Text bytes, the prompt grey and the completion light.
void paint_text(QPainter& p, const QRect& area, const std::vector<uint8_t>& t,
                int64_t prompt_length) {
  const size_t kept = std::min(t.size(), static_cast<size_t>(std::max<int64_t>(prompt_length, 0)));
  const auto text = [&](size_t from, size_t to) {
    return QString::fromUtf8(reinterpret_cast<const char*>(t.data()) + from,
                             static_cast<qsizetype>(to - from))
        .toHtmlEscaped();
  };
  p.fillRect(area, QColor(24, 24, 28));
  QTextDocument doc;
  QFont font = QFontDatabase::systemFont(QFontDatabase::FixedFont);
  font.setPointSizeF(font.pointSizeF() * 0.85);
  doc.setDefaultFont(font);
  doc.setTextWidth(area.width() - 8);
  doc.setHtml(QStringLiteral("<pre style='white-space: pre-wrap; color: #e6e6e6'>"
                             "<span style='color: #9a9a9a'>%1</span>%2</pre>")
                  .arg(text(0, kept), text(kept, t.size())));
  p.save();
  p.translate(area.left() + 4, area.top() + 4);
  doc.drawContents(&p, QRectF(0, 0, area.width() - 8, area.height() - 8));
  p.restore();
}

}  // namespace

// ---- the grid ------------------------------------------------------------------------------

CompareGrid::CompareGrid(QWidget* parent) : QWidget(parent) {
  setObjectName(QStringLiteral("compare-grid"));
  setMouseTracking(true);
  setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Preferred);
}

void CompareGrid::show_result(std::shared_ptr<const session::CompareResult> r) {
  const bool shape_changed = !result_ || !r || result_->rows.size() != r->rows.size() ||
                             result_->prompts.size() != r->prompts.size() ||
                             result_->seeds.size() != r->seeds.size();
  result_ = std::move(r);
  if (shape_changed) updateGeometry();
  update();
}

void CompareGrid::set_surprise(bool on) {
  surprise_ = on;
  update();
}

int CompareGrid::columns() const {
  return result_ ? static_cast<int>(result_->prompts.size() * result_->seeds.size()) : 0;
}

CompareGrid::Layout CompareGrid::layout_for(int width) const {
  Layout l;
  const QFontMetrics fm = fontMetrics();
  l.label_w =
      std::clamp(fm.horizontalAdvance(QStringLiteral("icons-perceiver-ar (open)")), 120, 220);
  l.header_h = 2 * fm.height() + 6;
  l.caption_h = fm.height() + 2;
  const int cols = std::max(1, columns());
  const int room = std::max(0, width - l.label_w - 8) / cols - l.gap;
  if (!result_) return l;
  switch (result_->modality.kind) {
    case attnscope::ModalityKind::kImage: {
      // A whole multiple of the image's size, 2x at least, 4x at most (so that several
      // models' rows are on show at once).
      const int side = std::max(result_->modality.width, result_->modality.height);
      const int scale = std::clamp(room / std::max(side, 1), 2, 4);
      l.cell_w = std::max(side * scale, fm.horizontalAdvance(QStringLiteral("0.000 b/d")));
      l.cell_h = result_->modality.height * scale;
      break;
    }
    case attnscope::ModalityKind::kAudio:
      l.cell_w = std::clamp(room, 120, 480);
      l.cell_h = std::max(48, l.cell_w / 3);
      break;
    case attnscope::ModalityKind::kText:
      l.cell_w = std::clamp(room, 160, 480);
      l.cell_h = std::max(80, l.cell_w * 2 / 3);
      break;
  }
  l.truth_row = result_->has_truth();
  return l;
}

int CompareGrid::heightForWidth(int width) const {
  if (!result_) return 120;
  const Layout l = layout_for(width);
  const int rows = static_cast<int>(result_->rows.size()) + (l.truth_row ? 1 : 0);
  return l.header_h + rows * (l.cell_h + l.caption_h + l.gap) + 4;
}

QSize CompareGrid::sizeHint() const {
  if (!result_) return {640, 120};
  const Layout l = layout_for(std::max(width(), 640));
  const int w = l.label_w + 8 + columns() * (l.cell_w + l.gap);
  return {w, heightForWidth(w)};
}

QSize CompareGrid::minimumSizeHint() const {
  if (!result_) return {320, 120};
  const Layout l = layout_for(0);  // the smallest cells
  const int w = l.label_w + 8 + columns() * (l.cell_w + l.gap);
  return {w, heightForWidth(w)};
}

void CompareGrid::resizeEvent(QResizeEvent*) {
  updateGeometry();
}

QRect CompareGrid::cell_rect(int row, int prompt, int seed) const {
  if (!result_) return {};
  const Layout l = layout_for(width());
  const int seeds = static_cast<int>(result_->seeds.size());
  if (prompt < 0 || prompt >= static_cast<int>(result_->prompts.size()) || seed < 0 ||
      seed >= seeds || row >= static_cast<int>(result_->rows.size()) ||
      row < (l.truth_row ? -1 : 0))
    return {};
  const int col = prompt * seeds + seed;
  const int line = row + (l.truth_row ? 1 : 0);
  return QRect(l.label_w + 8 + col * (l.cell_w + l.gap),
               l.header_h + line * (l.cell_h + l.caption_h + l.gap), l.cell_w, l.cell_h);
}

QString CompareGrid::cell_text(QPoint at) const {
  if (!result_) return {};
  const session::CompareResult& r = *result_;
  for (int row = -1; row < static_cast<int>(r.rows.size()); ++row)
    for (int p = 0; p < static_cast<int>(r.prompts.size()); ++p)
      for (int k = 0; k < static_cast<int>(r.seeds.size()); ++k) {
        const QRect box = cell_rect(row, p, k);
        if (box.isEmpty() || !box.adjusted(0, 0, 0, fontMetrics().height() + 2).contains(at))
          continue;
        const session::ComparePrompt& pr = r.prompts[static_cast<size_t>(p)];
        const QString prompt = QString::fromStdString(pr.name);
        if (row < 0)
          return tr("The real data of %1: the prompt keeps %2 positions, the models complete %3")
              .arg(prompt)
              .arg(pr.prompt_length)
              .arg(pr.completed);
        const session::CompareRow& m = r.rows[static_cast<size_t>(row)];
        const session::CompareCell& c =
            r.cell(static_cast<size_t>(row), static_cast<size_t>(p), static_cast<size_t>(k));
        QString text = tr("%1 on %2, seed %3\n")
                           .arg(QString::fromStdString(m.name), prompt)
                           .arg(r.seeds[static_cast<size_t>(k)]);
        text += tr("real data, the %1 completed positions: %2 bits/dim\n")
                    .arg(pr.completed)
                    .arg(bits(m.truth_bits_per_dim[static_cast<size_t>(p)]));
        if (c.done)
          text += tr("its own sample under itself: %1 bits/dim (low is not right)\n"
                     "%2 tokens/s")
                      .arg(bits(c.completion_bits_per_dim))
                      .arg(c.tokens_per_s, 0, 'f', 0);
        else
          text += tr("generating");
        return text;
      }
  return {};
}

bool CompareGrid::event(QEvent* e) {
  if (e->type() == QEvent::ToolTip) {
    auto* help = static_cast<QHelpEvent*>(e);
    const QString text = cell_text(help->pos());
    if (text.isEmpty())
      QToolTip::hideText();
    else
      QToolTip::showText(help->globalPos(), text, this);
    return true;
  }
  return QWidget::event(e);
}

void CompareGrid::paintEvent(QPaintEvent*) {
  QPainter p(this);
  p.fillRect(rect(), QColor(32, 32, 36));
  if (!result_) {
    p.setPen(QColor(160, 160, 160));
    p.drawText(rect(), Qt::AlignCenter | Qt::TextWordWrap,
               tr("Add models to compare with the open one (and prompts, if you like), then "
                  "Compare"));
    return;
  }
  const session::CompareResult& r = *result_;
  const Layout l = layout_for(width());
  const QFontMetrics fm = fontMetrics();
  const QColor text(225, 225, 225), dim(160, 160, 160);
  const size_t seeds = r.seeds.size();
  // Column headers: the prompt's name over its first seed, the seed over each.
  for (size_t pi = 0; pi < r.prompts.size(); ++pi)
    for (size_t k = 0; k < seeds; ++k) {
      const QRect box = cell_rect(0, static_cast<int>(pi), static_cast<int>(k));
      const int x = box.left(), w = box.width();
      p.setPen(text);
      if (k == 0) {
        const int span = static_cast<int>(seeds) * (l.cell_w + l.gap) - l.gap;
        p.drawText(
            QRect(x, 2, span, fm.height()), Qt::AlignLeft | Qt::AlignVCenter,
            fm.elidedText(QString::fromStdString(r.prompts[pi].name), Qt::ElideMiddle, span));
      }
      p.setPen(dim);
      p.drawText(QRect(x, 2 + fm.height(), w, fm.height()), Qt::AlignLeft | Qt::AlignVCenter,
                 tr("seed %1").arg(r.seeds[k]));
    }
  const auto row_label = [&](int row, const QString& name, const QString& sub) {
    const QRect box = cell_rect(row, 0, 0);
    p.setPen(text);
    p.drawText(QRect(4, box.top(), l.label_w, fm.height()), Qt::AlignLeft | Qt::AlignVCenter,
               fm.elidedText(name, Qt::ElideMiddle, l.label_w));
    p.setPen(dim);
    p.drawText(QRect(4, box.top() + fm.height(), l.label_w, box.height() - fm.height()),
               Qt::AlignLeft | Qt::AlignTop | Qt::TextWordWrap, sub);
  };
  const auto paint_tokens = [&](const QRect& box, const std::vector<uint8_t>& t,
                                const std::vector<float>* surprise,
                                const session::ComparePrompt& pr) {
    switch (r.modality.kind) {
      case attnscope::ModalityKind::kImage:
        paint_image(p, box, r.modality, t, surprise, pr.prompt_length, pr.keep.empty());
        break;
      case attnscope::ModalityKind::kAudio:
        paint_audio(p, box, t, r.length, pr.keep.empty() ? pr.prompt_length : 0);
        break;
      case attnscope::ModalityKind::kText:
        paint_text(p, box, t, pr.keep.empty() ? pr.prompt_length : 0);
        break;
    }
  };
  if (l.truth_row) {
    row_label(-1, tr("real data"), tr("what each prompt was cut from"));
    for (size_t pi = 0; pi < r.prompts.size(); ++pi) {
      const session::ComparePrompt& pr = r.prompts[pi];
      if (pr.truth.empty()) continue;
      // Once per prompt, over its first seed column.
      paint_tokens(cell_rect(-1, static_cast<int>(pi), 0), pr.truth, nullptr, pr);
    }
  }
  for (size_t row = 0; row < r.rows.size(); ++row) {
    const session::CompareRow& m = r.rows[row];
    const QString family = QString::fromStdString(m.config_text).section(QLatin1Char(','), 0, 0);
    row_label(static_cast<int>(row), stem(m.name),
              row == 0 ? tr("%1 (the open model)").arg(family) : family);
    for (size_t pi = 0; pi < r.prompts.size(); ++pi) {
      const session::ComparePrompt& pr = r.prompts[pi];
      const double truth = m.truth_bits_per_dim.size() > pi ? m.truth_bits_per_dim[pi] : NAN;
      const bool show_surprise = surprise_ && m.surprise_bits.size() > pi &&
                                 m.surprise_bits[pi].size() == static_cast<size_t>(r.length) &&
                                 r.modality.kind == attnscope::ModalityKind::kImage;
      for (size_t k = 0; k < seeds; ++k) {
        const QRect box =
            cell_rect(static_cast<int>(row), static_cast<int>(pi), static_cast<int>(k));
        const session::CompareCell& c = r.cell(row, pi, k);
        paint_tokens(box, c.tokens, show_surprise ? &m.surprise_bits[pi] : nullptr, pr);
        // Under the cell: the model's true-data bits/dim on this prompt (same for each seed).
        p.setPen(c.done ? text : dim);
        const QString caption =
            c.done ? (std::isnan(truth) ? tr("own %1 b/d").arg(bits(c.completion_bits_per_dim))
                                        : tr("%1 b/d").arg(bits(truth)))
                   : tr("…");
        p.drawText(QRect(box.left(), box.bottom() + 1, box.width(), l.caption_h),
                   Qt::AlignLeft | Qt::AlignVCenter, caption);
      }
    }
  }
}

// ---- the surprise legend ------------------------------------------------------------------

namespace {

// The surprise overlay's colour bar: viridis from 0 to kSurpriseMaxBits bits, with ticks.
class SurpriseLegend : public QWidget {
 public:
  explicit SurpriseLegend(QWidget* parent) : QWidget(parent) { setFixedHeight(40); }

 protected:
  void paintEvent(QPaintEvent*) override {
    QPainter p(this);
    const QRectF bar(8, 4, std::min(width() - 16, 480), 12);
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
    const QString what = tr("surprise: -log2 P(true value), bits per channel");
    p.drawText(QPointF(bar.right() + 16, bar.bottom() + 2), what);
  }
};

enum Column { kModel, kConfig, kParams, kRate, kPeak, kTruth, kOwn, kColumns };

}  // namespace

// ---- the view ------------------------------------------------------------------------------

CompareView::CompareView(session::Session* s, QWidget* parent) : QWidget(parent), session_(s) {
  auto* layout = new QVBoxLayout(this);
  auto* bar = new QHBoxLayout;
  load_ = new QPushButton(tr("Add models…"), this);
  load_->setToolTip(tr("Models of the same modality and size as the open one, each a row"));
  clear_models_ = new QPushButton(tr("Clear"), this);
  clear_models_->setToolTip(tr("Remove the added models"));
  prompts_ = new QPushButton(tr("Add prompts…"), this);
  prompts_->setToolTip(
      tr("Images or clips besides the current prompt, each cut as the current prompt is (the "
         "same kept rows, seconds or painted mask); each model is scored on their real data"));
  clear_prompts_ = new QPushButton(tr("Clear"), this);
  clear_prompts_->setToolTip(tr("Remove the added prompts"));
  seeds_ = new QSpinBox(this);
  seeds_->setRange(1, session::Session::kCompareSeedsMax);
  seeds_->setPrefix(tr("seeds: "));
  seeds_->setToolTip(tr("Completions per model and prompt, with seeds seed, seed+1, …"));
  run_ = new QPushButton(tr("Compare"), this);
  run_->setToolTip(
      tr("Complete every prompt with every model and seed, the same sampling "
         "parameters otherwise"));
  surprise_ = new QCheckBox(tr("Surprise"), this);
  surprise_->setObjectName(QStringLiteral("compare-surprise"));
  surprise_->setToolTip(
      tr("Colour each pixel by how surprised each model is by the real image: -log2 P(true "
         "value), averaged over the pixel's channels. Dark: the model expected it."));
  // Two rows, so that the tab fits between the docks on a 1280-pixel screen: what goes in the
  // grid, then how it runs.
  bar->addWidget(load_);
  bar->addWidget(clear_models_);
  bar->addSpacing(12);
  bar->addWidget(prompts_);
  bar->addWidget(clear_prompts_);
  bar->addStretch(1);
  layout->addLayout(bar);
  auto* run_bar = new QHBoxLayout;
  run_bar->addWidget(seeds_);
  run_bar->addWidget(run_);
  run_bar->addWidget(surprise_);
  run_bar->addStretch(1);
  layout->addLayout(run_bar);
  setup_ = new QLabel(this);
  setup_->setObjectName(QStringLiteral("compare-setup"));
  setup_->setWordWrap(true);
  layout->addWidget(setup_);
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

  sheet_ = new QWidget(this);
  auto* sheet = new QVBoxLayout(sheet_);
  table_ = new QTableWidget(0, kColumns, sheet_);
  table_->setObjectName(QStringLiteral("compare-table"));
  table_->setHorizontalHeaderLabels({tr("model"), tr("configuration"), tr("parameters"),
                                     tr("tokens/s"), tr("peak memory"), tr("real data, bits/dim"),
                                     tr("own samples, bits/dim")});
  const QString tips[kColumns] = {
      tr("The model file"),
      tr("Family and shape"),
      tr("Trainable parameters (x 4 bytes in memory as F32)"),
      tr("Sampled positions per second over all its completions (this machine, now)"),
      tr("Measured: the most working memory (activations, caches, scratch) one of its "
         "completions took above the level before it; weights not included"),
      tr("-log2 P(true value) per position over the completed positions of every prompt "
         "with real data: how well it predicts the real images, lower is better"),
      tr("Its own samples scored by itself: low means confident, not right")};
  for (int c = 0; c < kColumns; ++c) table_->horizontalHeaderItem(c)->setToolTip(tips[c]);
  table_->verticalHeader()->hide();
  table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  table_->setSelectionMode(QAbstractItemView::NoSelection);
  table_->setVerticalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
  table_->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
  table_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  table_->horizontalHeader()->setSectionResizeMode(kConfig, QHeaderView::Stretch);
  table_->setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Fixed);
  sheet->addWidget(table_);
  grid_ = new CompareGrid(sheet_);
  sheet->addWidget(grid_);
  legend_ = new SurpriseLegend(sheet_);
  legend_->setToolTip(tr("Surprise: -log2 P(true value) in bits per channel"));
  sheet->addWidget(legend_);
  legend_->hide();
  sheet->addStretch(1);
  scroll_ = new QScrollArea(this);
  scroll_->setWidgetResizable(true);
  scroll_->setFrameShape(QFrame::NoFrame);
  scroll_->setWidget(sheet_);
  layout->addWidget(scroll_, 1);
  connect(surprise_, &QCheckBox::toggled, this, [this](bool on) {
    grid_->set_surprise(on);
    legend_->setVisible(on && shown_ && shown_->has_truth() &&
                        shown_->modality.kind == attnscope::ModalityKind::kImage);
  });

  connect(load_, &QPushButton::clicked, this, &CompareView::load_requested);
  connect(prompts_, &QPushButton::clicked, this, &CompareView::prompts_requested);
  connect(clear_models_, &QPushButton::clicked, this, [this] { session_->clear_compare_models(); });
  connect(clear_prompts_, &QPushButton::clicked, this,
          [this] { session_->set_compare_prompts({}); });
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
  const bool room =
      static_cast<int>(s->compare_models.size()) < session::Session::kCompareModelsMax;
  load_->setEnabled(s->model != nullptr && !running && room);
  clear_models_->setEnabled(!s->compare_models.empty() && !running);
  prompts_->setEnabled(s->model != nullptr && !running &&
                       s->model->config.modality.kind != attnscope::ModalityKind::kText);
  clear_prompts_->setEnabled(!s->compare_prompts.empty() && !running);
  run_->setEnabled(s->model && !s->compare_models.empty() && !running);
  QStringList models, prompts;
  for (const std::string& m : s->compare_models) models << QString::fromStdString(m);
  for (const std::string& p : s->compare_prompts) prompts << QString::fromStdString(p);
  const QString open =
      s->model ? QFileInfo(QString::fromStdString(s->model->path)).fileName() : tr("no model");
  setup_->setText(
      models.isEmpty()
          ? tr("Models: %1 only; add at least one to compare it with.").arg(open)
          : tr("Models: %1 (open), %2. Prompts: the current one%3. %4 completions each.")
                .arg(open, models.join(QStringLiteral(", ")),
                     prompts.isEmpty() ? QString() : QStringLiteral(", ") + prompts.join(", "))
                .arg((1 + prompts.size()) * seeds_->value()));
  if (s->model) model_path_ = s->model->path;
  if (s->compare == shown_) return;
  shown_ = s->compare;
  grid_->show_result(shown_);
  if (!shown_) {
    progress_->setValue(0);
    progress_->setFormat(QStringLiteral("%p%"));
    table_->setRowCount(0);
    table_->setFixedHeight(table_->horizontalHeader()->height() + 4);
    legend_->hide();
    return;
  }
  show_message({});
  const session::CompareResult& r = *shown_;
  progress_->setValue(static_cast<int>(1000 * r.done / std::max<int64_t>(r.total, 1)));
  progress_->setFormat(tr("%1 / %2 positions (%3 models x %4 prompts x %5 seeds)")
                           .arg(r.done)
                           .arg(r.total)
                           .arg(r.rows.size())
                           .arg(r.prompts.size())
                           .arg(r.seeds.size()));
  fill_table();
  legend_->setVisible(surprise_->isChecked() && r.has_truth() &&
                      r.modality.kind == attnscope::ModalityKind::kImage);
}

void CompareView::fill_table() {
  const session::CompareResult& r = *shown_;
  table_->setRowCount(static_cast<int>(r.rows.size()));
  for (size_t i = 0; i < r.rows.size(); ++i) {
    const session::CompareRow& m = r.rows[i];
    double own = 0;
    int own_n = 0;
    for (const session::CompareCell& c : m.cells)
      if (c.done && !std::isnan(c.completion_bits_per_dim)) {
        own += c.completion_bits_per_dim;
        ++own_n;
      }
    const bool any = m.generated > 0;
    const QString cells[kColumns] = {
        QString::fromStdString(m.name),
        QString::fromStdString(m.config_text),
        grouped(m.parameters),
        any ? QString::number(m.tokens_per_s(), 'f', 0) : QStringLiteral("…"),
        any ? bytes_text(static_cast<double>(m.peak_bytes)) : QStringLiteral("…"),
        r.has_truth() ? bits(r.truth_bits_mean(i)) : tr("— (no real data)"),
        own_n > 0 ? bits(own / own_n) : QStringLiteral("…")};
    for (int c = 0; c < kColumns; ++c) {
      auto* item = table_->item(static_cast<int>(i), c);
      if (!item) {
        item = new QTableWidgetItem;
        table_->setItem(static_cast<int>(i), c, item);
      }
      item->setText(cells[c]);
      if (c >= kParams) item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
      if (c == kConfig) item->setToolTip(cells[c]);
    }
  }
  table_->resizeRowsToContents();
  int h = table_->horizontalHeader()->height() + 4;
  for (int i = 0; i < table_->rowCount(); ++i) h += table_->rowHeight(i);
  table_->setFixedHeight(h);
}

QString CompareView::export_name() const {
  if (shown_ && shown_->rows.size() == 2)
    return QStringLiteral("%1-vs-%2-compare.png")
        .arg(stem(model_path_), stem(shown_->rows[1].name));
  const int others = shown_ ? static_cast<int>(shown_->rows.size()) - 1 : 0;
  return QStringLiteral("%1-vs-%2-models-compare.png").arg(stem(model_path_)).arg(others);
}

attnscope::Status CompareView::export_to(const QString& path, QStringList* written) {
  if (!shown_)
    return attnscope::Status(attnscope::StatusCode::kInvalidArgument,
                             "There is no comparison to export: add a model and Compare.");
  // The picture and, beside it, the figures as CSV: one row per model, prompt and seed.
  const session::CompareResult& r = *shown_;
  QString csv = QStringLiteral(
      "model,config,parameters,prompt,seed,prompt_positions,completed_positions,done,"
      "tokens_per_s,model_tokens_per_s,model_peak_bytes,true_data_bits_per_dim,"
      "model_true_data_bits_per_dim,own_sample_bits_per_dim,prompt_bits_per_dim\n");
  const auto field = [](QString v) {
    return QStringLiteral("\"%1\"").arg(v.replace(QLatin1Char('"'), QStringLiteral("\"\"")));
  };
  const auto num = [](double v) { return std::isnan(v) ? QString() : QString::number(v, 'f', 4); };
  for (size_t i = 0; i < r.rows.size(); ++i) {
    const session::CompareRow& m = r.rows[i];
    for (size_t p = 0; p < r.prompts.size(); ++p)
      for (size_t k = 0; k < r.seeds.size(); ++k) {
        const session::CompareCell& c = r.cell(i, p, k);
        csv += QStringList{field(QString::fromStdString(m.name)),
                           field(QString::fromStdString(m.config_text)),
                           QString::number(m.parameters),
                           field(QString::fromStdString(r.prompts[p].name)),
                           QString::number(r.seeds[k]),
                           QString::number(r.prompts[p].prompt_length),
                           QString::number(r.prompts[p].completed),
                           c.done ? QStringLiteral("1") : QStringLiteral("0"),
                           QString::number(c.tokens_per_s, 'f', 1),
                           QString::number(m.tokens_per_s(), 'f', 1),
                           QString::number(m.peak_bytes),
                           num(m.truth_bits_per_dim[p]),
                           num(r.truth_bits_mean(i)),
                           c.done ? num(c.completion_bits_per_dim) : QString(),
                           num(m.prompt_bits_per_dim[p])}
                   .join(QLatin1Char(',')) +
               QLatin1Char('\n');
      }
  }
  QString csv_path = path;
  csv_path.replace(
      QRegularExpression(QStringLiteral("\\.png$"), QRegularExpression::CaseInsensitiveOption),
      QString());
  csv_path += QStringLiteral(".csv");
  return write_files({{path, png_bytes(sheet_->grab().toImage())}, {csv_path, csv.toUtf8()}},
                     written);
}

}  // namespace ui
