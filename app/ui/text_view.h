// TextView: a text model's output as it is generated, the prompt's bytes set apart (tinted and
// bold) from the generated ones; bytes that are not valid UTF-8 show as U+FFFD, control bytes as
// their Unicode control pictures.
#pragma once

#include <QWidget>

#include "session/session.h"

class QLabel;
class QPlainTextEdit;

namespace ui {

// UTF-8 bytes as text: invalid sequences become U+FFFD, C0 controls other than newline and tab
// become U+2400 + byte ("␀"), so every byte is visible.
QString text_view_decode(const uint8_t* bytes, int64_t n);

class TextView : public QWidget {
  Q_OBJECT

 public:
  explicit TextView(session::Session* session, QWidget* parent = nullptr);

  // Which sample of a several-sample run is shown (0-based; clamped to those there are).
  void set_sample(int index);
  QPlainTextEdit* editor() const { return edit_; }
  // The characters of the prompt part at the start of editor()'s text.
  int prompt_chars() const { return prompt_chars_; }

 private:
  void on_published();

  session::Session* session_;
  QPlainTextEdit* edit_;
  QLabel* info_;
  int sample_ = 0;
  int prompt_chars_ = 0;
  const session::RunStore* built_run_ = nullptr;
  int64_t built_known_ = -1;
};

}  // namespace ui
