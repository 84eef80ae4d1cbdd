// InspectView: what the attention, pattern, LSH and memory tabs share: asking the Session
// for an InspectResult when the run settles and the tab is on show, knowing whether an answer
// is still due (scripted screenshots wait for it), exporting, and the image helpers.
#pragma once

#include <QImage>
#include <QStringList>
#include <QWidget>
#include <chrono>
#include <memory>
#include <utility>
#include <vector>

#include "attnscope/inspect.h"
#include "attnscope/status.h"
#include "session/session.h"

namespace ui {

class InspectView : public QWidget {
  Q_OBJECT

 public:
  InspectView(session::Session* s, session::InspectKind kind, QWidget* parent);

  // An inspection asked for and not yet answered.
  bool pending() const { return waiting_ != 0; }
  const session::InspectResult* result() const { return result_.get(); }
  // "shapes-dense-attention.png": the model's stem and the view.
  virtual QString export_name() const = 0;
  // Writes the view's export(s) atomically; *written names the files.
  virtual attnscope::Status export_to(const QString& path, QStringList* written) const = 0;

 protected:
  // Asks again for the current snapshot (the run settled, the model changed, a control moved).
  virtual void reload() = 0;
  // True for a view that follows a run under way (asks again at most every
  // Session::kLiveInspectInterval while tokens come); the others wait for the run to settle.
  virtual bool follows_run() const { return false; }
  virtual void show_result(const session::InspectResult& r) = 0;
  void request(session::InspectRequest r);
  void showEvent(QShowEvent* e) override;
  // The snapshot the view last reloaded for, null before.
  const session::Snapshot* shown() const { return shown_.get(); }
  QString model_stem() const;

  session::Session* session_;
  std::shared_ptr<const session::InspectResult> result_;

 private:
  void on_published();
  session::InspectKind kind_;
  uint64_t waiting_ = 0;
  std::chrono::steady_clock::time_point last_live_{};
  std::shared_ptr<const session::Snapshot> shown_;
};

// The run's known tokens as an RGB image (image modality; other modalities as grey rows of
// ceil(sqrt(N)) bytes), and where position p lies in it.
struct PixelMap {
  int w = 0, h = 0, channels = 1;
  QPoint pixel(int64_t p) const {
    const int64_t px = p / channels;
    return {static_cast<int>(px % w), static_cast<int>(px / w)};
  }
  int64_t position(QPoint px, int channel) const {
    return (static_cast<int64_t>(px.y()) * w + px.x()) * channels + channel;
  }
};
PixelMap pixel_map(const attnscope::Modality& m);
QImage run_image(const session::RunStore& run, int64_t known, const PixelMap& map);

// Layer l's kind in the papers' words ("strided A1, l = 64, block 32"); empty if unknown.
QString layer_kind(const session::ModelSummary& m, int layer);
// "layer 2: strided A1, ... · keys: positions (3072 keys, each covers 3 positions)"
QString row_summary(const session::ModelSummary& m, int layer, const attnscope::AttnRow& row);

QByteArray png_bytes(const QImage& img);
// Writes every (path, bytes) pair: all appear or none (engine AtomicFileSet).
attnscope::Status write_files(const std::vector<std::pair<QString, QByteArray>>& files,
                              QStringList* written);

}  // namespace ui
