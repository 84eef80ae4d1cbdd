// Prompt panel, per modality: a PNG/JPEG image (scaled to the model's size, with a preview) and
// the rows to keep or a painted mask of pixels to regenerate; a WAV clip (resampled, mu-law) and
// the seconds to keep; or typed text (UTF-8 bytes, cut to the model's length).
#pragma once

#include <QImage>
#include <QWidget>
#include <vector>

#include "attnscope/config.h"
#include "attnscope/status.h"

class QCheckBox;
class QComboBox;
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

  // Image models: "Regenerate painted pixels" instead of "Keep rows". Then keep_mask() has one
  // entry per token of tokens() (W*H*C): 0 for every channel of a painted pixel, 1 elsewhere;
  // it is empty in row mode or without an image.
  bool painted_mode() const;
  std::vector<uint8_t> keep_mask() const;
  int painted_pixels() const;
  void clear_mask();
  // Where the centre of image pixel (x, y) is on the preview widget (for tests and tooltips).
  QPoint preview_point(int x, int y) const;
  QWidget* preview() const;

 signals:
  void open_requested();
  void prompt_changed();  // new tokens, a new number of rows or a new mask

 protected:
  bool eventFilter(QObject* watched, QEvent* event) override;

 private:
  // The image pixel under a preview widget position; (-1, -1) outside the image.
  QPoint preview_pixel(QPoint pos) const;
  // Paints or erases a brush-sized square at image pixel (x, y) without announcing it: a drag
  // announces the mask once, at its end.
  void paint_square(int x, int y, bool erase);
  void update_mask_controls();
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
  // The painted mask: one byte per image pixel, 1 = regenerate.
  std::vector<uint8_t> painted_;
  int preview_scale_ = 1;
  bool painting_ = false;  // a drag on the preview is under way
  bool paint_erases_ = false;
  QWidget* mask_box_;
  QPushButton* paint_mode_;
  QSpinBox* brush_;
  QCheckBox* erase_;
  QPushButton* clear_mask_;
  QComboBox* mask_choice_;
  QLabel* mask_info_;
};

}  // namespace ui
