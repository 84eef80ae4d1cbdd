// The text view: rebuilt from the snapshot whenever more bytes are known (a few thousand bytes
// at most, so a rebuild per publish is cheap), following the end while a run goes.
#include "text_view.h"

#include <QLabel>
#include <QPlainTextEdit>
#include <QScrollBar>
#include <QTextCharFormat>
#include <QTextCursor>
#include <QVBoxLayout>

namespace ui {

QString text_view_decode(const uint8_t* bytes, int64_t n) {
  QString s = QString::fromUtf8(reinterpret_cast<const char*>(bytes), static_cast<qsizetype>(n));
  for (QChar& c : s)
    if (c.unicode() < 0x20 && c != QLatin1Char('\n') && c != QLatin1Char('\t'))
      c = QChar(static_cast<char16_t>(0x2400 + c.unicode()));
  return s;
}

TextView::TextView(session::Session* session, QWidget* parent)
    : QWidget(parent), session_(session) {
  auto* layout = new QVBoxLayout(this);
  info_ = new QLabel(this);
  layout->addWidget(info_);
  edit_ = new QPlainTextEdit(this);
  edit_->setObjectName(QStringLiteral("text-output"));
  edit_->setReadOnly(true);
  QFont mono(QStringLiteral("monospace"));
  mono.setStyleHint(QFont::TypeWriter);
  mono.setPointSize(12);
  edit_->setFont(mono);
  layout->addWidget(edit_, 1);
  connect(session_, &session::Session::published, this, &TextView::on_published);
  on_published();
}

void TextView::set_sample(int index) {
  sample_ = std::max(index, 0);
  built_run_ = nullptr;
  on_published();
}

void TextView::on_published() {
  const auto s = session_->snapshot();
  if (!s->run || s->run->modality().kind != attnscope::ModalityKind::kText) {
    if (built_run_ || built_known_ != -1) edit_->clear();
    built_run_ = nullptr;
    built_known_ = -1;
    info_->setText(tr("Open a text model (Ctrl+O)"));
    return;
  }
  const session::RunStore* run = s->run.get();
  if (!s->samples.empty())
    run = s->samples[static_cast<size_t>(
                         std::min<int>(sample_, static_cast<int>(s->samples.size()) - 1))]
              .get();
  const int64_t known = run == s->run.get() ? run->known(s->filled) : run->known(run->filled());
  const int64_t prompt = run->prompt_length();
  info_->setText(tr("prompt %1 bytes (blue, bold) · generated %2 of %3 bytes")
                     .arg(prompt)
                     .arg(known - prompt)
                     .arg(run->length() - prompt));
  if (run == built_run_ && known == built_known_) return;
  built_run_ = run;
  built_known_ = known;

  QScrollBar* bar = edit_->verticalScrollBar();
  const bool at_end = bar->value() == bar->maximum();
  edit_->clear();
  QTextCursor cursor(edit_->document());
  QTextCharFormat prompt_format;
  prompt_format.setBackground(QColor(40, 70, 130));
  prompt_format.setForeground(QColor(220, 235, 255));
  prompt_format.setFontWeight(QFont::Bold);
  const QString head = text_view_decode(run->tokens(), prompt);
  cursor.insertText(head, prompt_format);
  prompt_chars_ = static_cast<int>(head.size());
  cursor.insertText(text_view_decode(run->tokens() + prompt, known - prompt), QTextCharFormat());
  if (at_end || s->state == session::RunState::kRunning) bar->setValue(bar->maximum());
}

}  // namespace ui
