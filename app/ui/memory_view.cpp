// Memory view: the log-log plot, its PNG and the CSV of the same numbers.
#include "memory_view.h"

#include <QDir>
#include <QFileInfo>
#include <QPainter>
#include <QPainterPath>
#include <cmath>

#include "attnscope/inspect.h"

namespace ui {

using attnscope::MemoryPoint;

namespace {

double total(const attnscope::MemBytes& b) {
  double t = 0;
  for (double v : b) t += v;
  return t;
}

QString bytes_label(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB", "PB"};
  int u = 0;
  while (b >= 1000 && u < 5) {
    b /= 1000;
    ++u;
  }
  return QStringLiteral("%1 %2").arg(b, 0, 'g', 3).arg(QLatin1String(units[u]));
}

QString length_label(double n) {
  if (n >= 1 << 20) return QStringLiteral("%1M").arg(n / (1 << 20), 0, 'g', 3);
  if (n >= 1024) return QStringLiteral("%1K").arg(n / 1024, 0, 'g', 3);
  return QString::number(n);
}

const QColor kFamilyColors[] = {QColor(230, 230, 230), QColor(86, 180, 233), QColor(230, 159, 0),
                                QColor(0, 158, 115), QColor(204, 121, 167)};

struct Seed {
  double n, bytes;
  const char* label;
  bool left;  // label left of the point
};
// The seeds' headline figures: a dense 64-layer, 4-head transformer with its attention
// matrices stored vs recomputed (Sparse Transformer), and the Reformer blog's claim.
const Seed kSeeds[] = {
    {12288, 154e9, "64x64 image: 154 GB stored", true},
    {12288, 2.4e9, "2.4 GB recomputed", true},
    {24000, 590e9, "24,000 audio samples: 590 GB stored", false},
    {24000, 9.2e9, "9.2 GB recomputed", false},
    {1048576, 16e9, "Reformer: 1M tokens in 16 GB", true},
};

}  // namespace

QByteArray memory_csv(const session::InspectResult& r) {
  QByteArray out = "family,length,category,estimate_bytes,measured_bytes\n";
  for (const session::FamilyCurve& c : r.curves)
    for (const MemoryPoint& p : c.points) {
      for (int k = 0; k < static_cast<int>(attnscope::MemCategory::kCount); ++k) {
        const auto cat = static_cast<attnscope::MemCategory>(k);
        out +=
            QStringLiteral("%1,%2,%3,%4,%5\n")
                .arg(QString::fromStdString(c.family))
                .arg(p.length)
                .arg(QLatin1String(attnscope::mem_category_name(cat)))
                .arg(p.estimate[static_cast<size_t>(k)], 0, 'f', 0)
                .arg(p.measured ? QString::number(p.measured_bytes[static_cast<size_t>(k)], 'f', 0)
                                : QString())
                .toUtf8();
      }
      out += QStringLiteral("%1,%2,dense_stored_attention,%3,\n")
                 .arg(QString::fromStdString(c.family))
                 .arg(p.length)
                 .arg(p.dense_stored_attention, 0, 'f', 0)
                 .toUtf8();
    }
  return out;
}

MemoryView::MemoryView(session::Session* s, QWidget* parent)
    : InspectView(s, session::InspectKind::kMemory, parent) {
  setMinimumSize(400, 300);
}

void MemoryView::reload() {
  // The curves depend on the model's widths only: ask again only when the model changes.
  if (result_ && result_->model == shown()->model) return;
  request({});
}

void MemoryView::paintEvent(QPaintEvent*) {
  QPainter p(this);
  p.drawImage(0, 0, render_plot(size()));
}

QImage MemoryView::render_plot(QSize size) const {
  QImage img(size, QImage::Format_RGB888);
  img.fill(QColor(28, 28, 31));
  QPainter p(&img);
  p.setRenderHint(QPainter::Antialiasing);
  QFont font = p.font();
  font.setPointSizeF(10);
  p.setFont(font);
  p.setPen(QColor(220, 220, 220));
  if (!result_ || result_->curves.empty()) {
    p.drawText(img.rect(), Qt::AlignCenter,
               pending() ? tr("Measuring memory (a forward per family and length)…")
                         : tr("Open a model to see how memory grows with length."));
    return img;
  }
  // Decades that hold every series and the seeds' figures.
  double lo = 1e9, hi = 1e12;
  for (const session::FamilyCurve& c : result_->curves)
    for (const MemoryPoint& m : c.points) {
      lo = std::min(lo, total(m.estimate));
      if (m.measured) lo = std::min(lo, total(m.measured_bytes));
      hi = std::max(hi, m.dense_stored_attention);
    }
  const double x0 = std::log10(200.0), x1 = std::log10(1.3e6);
  const double y0 = std::floor(std::log10(std::max(lo, 1.0))), y1 = std::ceil(std::log10(hi));
  const QRectF plot(90, 40, size.width() - 90 - 330, size.height() - 40 - 60);
  auto map = [&](double n, double b) {
    return QPointF(plot.left() + (std::log10(n) - x0) / (x1 - x0) * plot.width(),
                   plot.bottom() - (std::log10(std::max(b, 1.0)) - y0) / (y1 - y0) * plot.height());
  };
  p.drawText(QRectF(0, 6, size.width(), 24), Qt::AlignCenter,
             tr("Peak inference memory vs sequence length (log-log) · widths of %1")
                 .arg(QString::fromStdString(result_->model->config_text)));
  // Grid and ticks: decades of bytes, powers of 4 of lengths.
  for (int e = static_cast<int>(y0); e <= static_cast<int>(y1); ++e) {
    const QPointF a = map(std::pow(10, x0), std::pow(10, e));
    p.setPen(QColor(60, 60, 66));
    p.drawLine(QPointF(plot.left(), a.y()), QPointF(plot.right(), a.y()));
    p.setPen(QColor(220, 220, 220));
    p.drawText(QRectF(0, a.y() - 9, plot.left() - 6, 18), Qt::AlignRight | Qt::AlignVCenter,
               bytes_label(std::pow(10, e)));
  }
  for (double n = 256; n <= 1.1e6; n *= 4) {
    const QPointF a = map(n, 1);
    p.setPen(QColor(60, 60, 66));
    p.drawLine(QPointF(a.x(), plot.top()), QPointF(a.x(), plot.bottom()));
    p.setPen(QColor(220, 220, 220));
    p.drawText(QRectF(a.x() - 30, plot.bottom() + 4, 60, 18), Qt::AlignCenter, length_label(n));
  }
  p.drawText(QRectF(plot.left(), plot.bottom() + 24, plot.width(), 20), Qt::AlignCenter,
             tr("sequence length N (tokens)"));
  p.save();
  p.translate(14, plot.center().y());
  p.rotate(-90);
  p.drawText(QRectF(-plot.height() / 2, -10, plot.height(), 20), Qt::AlignCenter,
             tr("peak bytes (1 KB = 1000 B)"));
  p.restore();
  p.setClipRect(plot);
  // The dense stored-attention series (from the dense family's points), dashed.
  const session::FamilyCurve& dense = result_->curves.front();
  QPainterPath stored;
  for (const MemoryPoint& m : dense.points) {
    const QPointF a = map(static_cast<double>(m.length), m.dense_stored_attention);
    stored.elementCount() == 0 ? stored.moveTo(a) : stored.lineTo(a);
  }
  p.setPen(QPen(QColor(240, 80, 80), 2, Qt::DashLine));
  p.drawPath(stored);
  for (size_t c = 0; c < result_->curves.size(); ++c) {
    const session::FamilyCurve& curve = result_->curves[c];
    const QColor color = kFamilyColors[c % 5];
    QPainterPath line;
    for (const MemoryPoint& m : curve.points) {
      const QPointF a = map(static_cast<double>(m.length), total(m.estimate));
      line.elementCount() == 0 ? line.moveTo(a) : line.lineTo(a);
    }
    // Dense first and wider, so a family that costs the same leaves it visible beneath.
    p.setPen(QPen(color, c == 0 ? 5 : 2));
    p.setBrush(Qt::NoBrush);
    p.drawPath(line);
    p.setBrush(color);
    for (const MemoryPoint& m : curve.points)
      if (m.measured)
        p.drawEllipse(map(static_cast<double>(m.length), total(m.measured_bytes)), 4, 4);
  }
  p.setPen(QPen(QColor(255, 215, 0), 1, Qt::DotLine));
  for (size_t i = 0; i + 1 < 4; i += 2)
    p.drawLine(map(kSeeds[i].n, kSeeds[i].bytes), map(kSeeds[i + 1].n, kSeeds[i + 1].bytes));
  p.setPen(QColor(255, 215, 0));
  p.setBrush(QColor(255, 215, 0));
  for (const Seed& s : kSeeds) {
    const QPointF a = map(s.n, s.bytes);
    p.drawRect(QRectF(a.x() - 4, a.y() - 4, 8, 8));
    p.drawText(QRectF(s.left ? a.x() - 308 : a.x() + 8, a.y() - 9, 300, 18),
               (s.left ? Qt::AlignRight : Qt::AlignLeft) | Qt::AlignVCenter,
               QString::fromLatin1(s.label));
  }
  p.setClipping(false);
  // Legend.
  double ly = plot.top();
  const double lx = plot.right() + 16;
  auto legend = [&](const QColor& c, Qt::PenStyle style, const QString& text) {
    p.setPen(QPen(c, 2, style));
    p.drawLine(QPointF(lx, ly + 9), QPointF(lx + 24, ly + 9));
    p.setPen(QColor(220, 220, 220));
    p.drawText(QRectF(lx + 30, ly, 220, 18), Qt::AlignLeft | Qt::AlignVCenter, text);
    ly += 22;
  };
  for (size_t c = 0; c < result_->curves.size(); ++c)
    legend(kFamilyColors[c % 5], Qt::SolidLine, QString::fromStdString(result_->curves[c].family));
  legend(QColor(240, 80, 80), Qt::DashLine, tr("dense, attention matrices stored"));
  legend(QColor(255, 215, 0), Qt::DotLine, tr("seeds' headline figures"));
  p.setPen(QColor(170, 170, 170));
  p.drawText(QRectF(lx, ly + 8, 310, 140), Qt::TextWordWrap,
             tr("Lines: analytic estimate (weights, activations, attention scratch, decode "
                "caches). Dots: measured on this machine (one forward, lengths up to %1). "
                "Seeds: a dense 64-layer, 4-head transformer (Sparse Transformer article) and the "
                "Reformer blog.")
                 .arg(session::kMemoryMeasured.back()));
  return img;
}

QString MemoryView::export_name() const {
  return model_stem() + QStringLiteral("-memory.png");
}

attnscope::Status MemoryView::export_to(const QString& path, QStringList* written) const {
  if (!result_ || result_->curves.empty())
    return attnscope::invalid_argument("there is no memory curve to export yet: open a model");
  const QFileInfo f(path);
  const QString csv = f.dir().filePath(f.completeBaseName() + QStringLiteral(".csv"));
  return write_files(
      {{path, png_bytes(render_plot(QSize(1400, 800)))}, {csv, memory_csv(*result_)}}, written);
}

}  // namespace ui
