// Prompt panel, per modality: a PNG/JPEG image (scaled to the model's size, with a preview) and
// the rows to keep; a WAV clip (resampled, mu-law) and the seconds to keep; or typed text (UTF-8
// bytes, cut to the model's length). A message says what was done to the input.
#pragma once

#include <QImage>
#include <QWidget>
#include <vector>

#include "attnscope/config.h"
#include "attnscope/status.h"

class QDoubleSpinBox;
class QFormLayout;
class QLabel;
class QPlainTextEdit;
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
  // Reads path (an image, or a WAV for audio models) for the current model (or remembers it
  // until there is one).
  attnscope::Status load(const QString& path);
  void clear();
  QString path() const { return path_; }
  int keep_rows() const;
  void set_keep_rows(int rows);
  double keep_seconds() const;
  void set_keep_seconds(double seconds);
  // Text models: the prompt text.
  void set_text(const QString& text);
  QString text() const;
  // The whole input's tokens: the image (W*H*C) or the clip (any length); empty without one.
  const std::vector<uint8_t>& tokens() const { return tokens_; }
  // What the session keeps, for every modality: the first rows of the image, the first
  // seconds of the clip, or the text's bytes (cut to the model's length).
  std::vector<uint8_t> kept_tokens() const;
  QString message() const;

 signals:
  void open_requested();
  void prompt_changed();  // new tokens or a new number of rows

 private:
  attnscope::Status read();
  void update_preview();
  void update_text_message();
  QString empty_message() const;

  attnscope::Modality modality_;
  bool has_model_ = false;
  QString path_;
  std::vector<uint8_t> tokens_;
  QPushButton* open_;
  QLabel* preview_;
  QLabel* message_;
  QFormLayout* form_;
  QSpinBox* keep_;
  QDoubleSpinBox* keep_seconds_;
  QPlainTextEdit* text_;
};

}  // namespace ui
