// The request/answer cycle of the inspection tabs and their export helpers.
#include "inspect_view.h"

#include <QBuffer>
#include <QFileInfo>
#include <QImageWriter>
#include <cmath>

#include "attnscope/atomic_file.h"

namespace ui {

using session::RunState;

InspectView::InspectView(session::Session* s, session::InspectKind kind, QWidget* parent)
    : QWidget(parent), session_(s), kind_(kind) {
  connect(s, &session::Session::published, this, &InspectView::on_published);
  connect(s, &session::Session::inspected, this,
          [this](std::shared_ptr<const session::InspectResult> r) {
            if (r->request.kind != kind_) return;
            if (r->request.serial == waiting_) waiting_ = 0;
            result_ = std::move(r);
            show_result(*result_);
          });
}

void InspectView::request(session::InspectRequest r) {
  r.kind = kind_;
  waiting_ = session_->inspect(r);
}

void InspectView::on_published() {
  if (!isVisible()) return;
  const auto s = session_->snapshot();
  if (!s->model) return;
  if (s->state == RunState::kRunning) {
    // A following view asks again once its last answer is in and the interval has passed.
    const auto now = std::chrono::steady_clock::now();
    if (!follows_run() || pending() || now - last_live_ < session::Session::kLiveInspectInterval ||
        !s->run || s->run->known(s->filled) < 1)
      return;
    last_live_ = now;
  }
  if (shown_ && shown_->model == s->model && shown_->run == s->run && shown_->filled == s->filled)
    return;
  shown_ = s;
  reload();
}

void InspectView::showEvent(QShowEvent* e) {
  QWidget::showEvent(e);
  on_published();
}

QString InspectView::model_stem() const {
  return shown_ && shown_->model
             ? QFileInfo(QString::fromStdString(shown_->model->path)).completeBaseName()
             : QStringLiteral("attnscope");
}

PixelMap pixel_map(const attnscope::Modality& m) {
  PixelMap map;
  if (m.kind == attnscope::ModalityKind::kImage) {
    map.w = m.width;
    map.h = m.height;
    map.channels = m.channels;
  } else {
    const int64_t n = m.seq_len();
    map.w = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n))));
    map.h = static_cast<int>((n + map.w - 1) / map.w);
  }
  return map;
}

QImage run_image(const session::RunStore& run, int64_t known, const PixelMap& map) {
  QImage img(map.w, map.h, QImage::Format_RGB888);
  img.fill(Qt::black);
  for (int y = 0; y < map.h; ++y)
    for (int x = 0; x < map.w; ++x) {
      const int64_t p = map.position({x, y}, 0);
      if (p + map.channels > known) continue;
      const uint8_t r = run.token(p);
      const uint8_t g = map.channels >= 3 ? run.token(p + 1) : r;
      const uint8_t b = map.channels >= 3 ? run.token(p + 2) : r;
      img.setPixelColor(x, y, QColor(r, g, b));
    }
  return img;
}

QString layer_kind(const session::ModelSummary& m, int layer) {
  return layer >= 0 && layer < static_cast<int>(m.layer_kinds.size())
             ? QString::fromStdString(m.layer_kinds[static_cast<size_t>(layer)])
             : QString();
}

QString row_summary(const session::ModelSummary& m, int layer, const attnscope::AttnRow& row) {
  return QObject::tr("layer %1: %2 · keys: %3 (%4 keys%5)")
      .arg(layer)
      .arg(layer_kind(m, layer))
      .arg(QString::fromStdString(row.key_space))
      .arg(row.keys)
      .arg(row.key_stride > 1 ? QObject::tr(", each covers %1 positions").arg(row.key_stride)
                              : QString());
}

QByteArray png_bytes(const QImage& img) {
  QByteArray bytes;
  QBuffer buffer(&bytes);
  buffer.open(QIODevice::WriteOnly);
  QImageWriter writer(&buffer, "png");
  writer.write(img);
  return bytes;
}

attnscope::Status write_files(const std::vector<std::pair<QString, QByteArray>>& files,
                              QStringList* written) {
  attnscope::AtomicFileSet set(0644);
  for (const auto& [path, bytes] : files) {
    if (bytes.isEmpty()) return attnscope::internal_error("cannot encode " + path.toStdString());
    ATTN_RETURN_IF_ERROR(
        set.add(path.toStdString(), std::vector<uint8_t>(bytes.begin(), bytes.end())));
  }
  ATTN_RETURN_IF_ERROR(set.commit());
  written->clear();
  for (const auto& f : files) written->append(f.first);
  return attnscope::Status::ok();
}

}  // namespace ui
