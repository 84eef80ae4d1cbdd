// Prompt panel: a PNG/JPEG prompt read as the model's tokens (scaled to its size, with a
// preview and a message saying what was done) and how many rows of it to keep.
#pragma once

#include <QImage>
#include <QWidget>
#include <vector>

#include "attnscope/config.h"
#include "attnscope/status.h"

class QLabel;
class QPushButton;
class QSpinBox;

namespace ui {

class PromptPanel : public QWidget {
  Q_OBJECT

 public:
  explicit PromptPanel(QWidget* parent = nullptr);

  // The model the prompt is read for; re-reads the image when one is loaded. Fails (and
  // forgets the image) when it cannot be read for this model.
  attnscope::Status set_modality(const attnscope::Modality& m);
  // Reads path for the current model (or remembers it until there is one).
  attnscope::Status load(const QString& path);
  void clear();
  QString path() const { return path_; }
  int keep_rows() const;
  void set_keep_rows(int rows);
  // The whole image's tokens, W*H*C; empty without an image.
  const std::vector<uint8_t>& tokens() const { return tokens_; }
  QString message() const;

 signals:
  void open_requested();
  void prompt_changed();  // new tokens or a new number of rows

 private:
  attnscope::Status read();
  void update_preview();

  attnscope::Modality modality_;
  bool has_model_ = false;
  QString path_;
  std::vector<uint8_t> tokens_;
  QPushButton* open_;
  QLabel* preview_;
  QLabel* message_;
  QSpinBox* keep_;
};

}  // namespace ui
