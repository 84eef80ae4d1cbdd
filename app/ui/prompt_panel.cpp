// Reading the prompt through the apps' shared media code (app/media): images scaled to the
// model's size with a preview (regenerated rows dimmed), WAV clips resampled and mu-law encoded,
// typed text as UTF-8 bytes cut at a character boundary.
#include "prompt_panel.h"

#include <QDoubleSpinBox>
#include <QFileInfo>
#include <QFormLayout>
#include <QLabel>
#include <QPainter>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QVBoxLayout>
#include <cmath>

#include "media.h"

namespace ui {

namespace {
constexpr int kPreviewSide = 192;
using attnscope::ModalityKind;

// The longest prefix of at most max bytes that does not end inside a UTF-8 character.
size_t utf8_prefix(const QByteArray& bytes, size_t max) {
  if (static_cast<size_t>(bytes.size()) <= max) return static_cast<size_t>(bytes.size());
  size_t n = max;
  while (n > 0 && (static_cast<uint8_t>(bytes[static_cast<qsizetype>(n)]) & 0xC0) == 0x80) --n;
  return n;
}
}  // namespace

PromptPanel::PromptPanel(QWidget* parent) : QWidget(parent) {
  auto* layout = new QVBoxLayout(this);
  open_ = new QPushButton(tr("Open image…"), this);
  open_->setToolTip(tr("A PNG or JPEG; it is scaled to the model's size"));
  layout->addWidget(open_);
  preview_ = new QLabel(this);
  preview_->setAlignment(Qt::AlignCenter);
  preview_->setMinimumSize(kPreviewSide, kPreviewSide);
  preview_->setFrameShape(QFrame::StyledPanel);
  layout->addWidget(preview_);
  text_ = new QPlainTextEdit(this);
  text_->setObjectName(QStringLiteral("prompt-text"));
  text_->setPlaceholderText(tr("Type the start of the text"));
  text_->setToolTip(tr("Its UTF-8 bytes are the prompt; the model writes the rest"));
  text_->setVisible(false);
  layout->addWidget(text_);
  message_ = new QLabel(tr("No prompt: the whole image is generated."), this);
  message_->setWordWrap(true);
  layout->addWidget(message_);
  form_ = new QFormLayout;
  keep_ = new QSpinBox(this);
  keep_->setRange(0, 0);
  keep_->setToolTip(tr("Rows of the prompt kept exactly; the rest is generated"));
  form_->addRow(tr("Rows to keep"), keep_);
  keep_seconds_ = new QDoubleSpinBox(this);
  keep_seconds_->setRange(0, 0);
  keep_seconds_->setDecimals(3);
  keep_seconds_->setSingleStep(0.05);
  keep_seconds_->setSuffix(tr(" s"));
  keep_seconds_->setToolTip(tr("Seconds of the clip kept exactly; the rest is generated"));
  form_->addRow(tr("Seconds to keep"), keep_seconds_);
  form_->setRowVisible(keep_seconds_, false);
  layout->addLayout(form_);
  layout->addStretch(1);
  connect(open_, &QPushButton::clicked, this, &PromptPanel::open_requested);
  connect(keep_, &QSpinBox::valueChanged, this, [this] {
    update_preview();
    emit prompt_changed();
  });
  connect(keep_seconds_, &QDoubleSpinBox::valueChanged, this, &PromptPanel::prompt_changed);
  connect(text_, &QPlainTextEdit::textChanged, this, [this] {
    update_text_message();
    emit prompt_changed();
  });
  update_preview();
}

int PromptPanel::keep_rows() const {
  return keep_->value();
}

void PromptPanel::set_keep_rows(int rows) {
  keep_->setValue(rows);
}

double PromptPanel::keep_seconds() const {
  return keep_seconds_->value();
}

void PromptPanel::set_keep_seconds(double seconds) {
  keep_seconds_->setValue(seconds);
}

void PromptPanel::set_text(const QString& text) {
  text_->setPlainText(text);
}

QString PromptPanel::text() const {
  return text_->toPlainText();
}

QString PromptPanel::message() const {
  return message_->text();
}

QString PromptPanel::empty_message() const {
  switch (modality_.kind) {
    case ModalityKind::kAudio:
      return tr("No prompt: the whole clip is generated.");
    case ModalityKind::kText:
      return tr("No prompt: the whole text is generated.");
    default:
      return tr("No prompt: the whole image is generated.");
  }
}

std::vector<uint8_t> PromptPanel::kept_tokens() const {
  if (!has_model_) return {};
  size_t n = 0;
  switch (modality_.kind) {
    case ModalityKind::kImage:
      n = static_cast<size_t>(keep_->value()) * static_cast<size_t>(modality_.width) *
          static_cast<size_t>(modality_.channels);
      break;
    case ModalityKind::kAudio:
      n = static_cast<size_t>(std::lround(keep_seconds_->value() * modality_.rate));
      break;
    case ModalityKind::kText: {
      const QByteArray bytes = text_->toPlainText().toUtf8();
      const size_t cut = utf8_prefix(bytes, static_cast<size_t>(modality_.seq_len()));
      return std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<qsizetype>(cut));
    }
  }
  n = std::min({n, tokens_.size(), static_cast<size_t>(modality_.seq_len())});
  return std::vector<uint8_t>(tokens_.begin(), tokens_.begin() + static_cast<ptrdiff_t>(n));
}

attnscope::Status PromptPanel::set_modality(const attnscope::Modality& m) {
  const bool same = has_model_ && m.describe() == modality_.describe();
  const bool kind_changed = !has_model_ || m.kind != modality_.kind;
  modality_ = m;
  has_model_ = true;
  const bool image = m.kind == ModalityKind::kImage;
  const bool audio = m.kind == ModalityKind::kAudio;
  const bool text = m.kind == ModalityKind::kText;
  open_->setVisible(!text);
  open_->setEnabled(image || audio);
  open_->setText(audio ? tr("Open WAV…") : tr("Open image…"));
  open_->setToolTip(audio ? tr("A WAV clip; it is resampled to the model's rate and mu-law coded")
                          : tr("A PNG or JPEG; it is scaled to the model's size"));
  preview_->setVisible(image);
  text_->setVisible(text);
  form_->setRowVisible(keep_, image);
  form_->setRowVisible(keep_seconds_, audio);
  {
    const QSignalBlocker block(keep_);
    keep_->setRange(0, image ? m.height : 0);
    if (!same) keep_->setValue(image ? m.height / 2 : 0);
  }
  {
    const QSignalBlocker block(keep_seconds_);
    keep_seconds_->setRange(0, audio ? m.seconds : 0);
    if (!same) keep_seconds_->setValue(audio ? m.seconds / 2 : 0);
  }
  // A file of another kind than the model reads is forgotten, not reported.
  if (kind_changed && !path_.isEmpty() &&
      (text || (audio != (cli::file_suffix(path_.toStdString()) == "wav"))))
    path_.clear();
  if (text) {
    tokens_.clear();
    update_text_message();
    return attnscope::Status::ok();
  }
  if (path_.isEmpty()) {
    tokens_.clear();
    message_->setText(empty_message());
    update_preview();
    return attnscope::Status::ok();
  }
  return read();
}

attnscope::Status PromptPanel::load(const QString& path) {
  const QString previous = path_;
  path_ = path;
  if (!has_model_) {
    message_->setText(tr("%1 will be read when a model is open.").arg(QFileInfo(path).fileName()));
    return attnscope::Status::ok();
  }
  if (modality_.kind == ModalityKind::kText) {
    path_ = previous;
    return attnscope::invalid_argument(
        "a text model takes typed text as its prompt, not the file '" + path.toStdString() + "'");
  }
  attnscope::Status st = read();
  if (!st) {
    path_ = previous;
    if (!path_.isEmpty()) (void)read();
  }
  return st;
}

void PromptPanel::clear() {
  path_.clear();
  tokens_.clear();
  message_->setText(empty_message());
  update_preview();
  emit prompt_changed();
}

attnscope::Status PromptPanel::read() {
  std::string note;
  const bool audio = modality_.kind == ModalityKind::kAudio;
  auto tokens = audio ? cli::audio_read_tokens(path_.toStdString(), modality_, &note)
                      : cli::image_read_tokens(path_.toStdString(), modality_,
                                               /*allow_scale=*/true, &note);
  if (!tokens) {
    path_.clear();
    tokens_.clear();
    message_->setText(empty_message());
    update_preview();
    emit prompt_changed();
    return tokens.status();
  }
  tokens_ = std::move(*tokens);
  const QString name = QFileInfo(path_).fileName();
  if (audio) {
    const double secs = static_cast<double>(tokens_.size()) / modality_.rate;
    QString text =
        tr("%1: %2 s at %3 Hz, mu-law").arg(name).arg(secs, 0, 'f', 2).arg(modality_.rate);
    if (!note.empty()) text += QStringLiteral(" (%1)").arg(QString::fromStdString(note));
    if (secs < keep_seconds_->value())
      text += tr("; shorter than the seconds to keep, so all of it is kept");
    message_->setText(text);
  } else {
    message_->setText(note.empty() ? tr("%1 (%2x%3, the model's size)")
                                         .arg(name)
                                         .arg(modality_.width)
                                         .arg(modality_.height)
                                   : tr("%1: %2").arg(name, QString::fromStdString(note)));
  }
  update_preview();
  emit prompt_changed();
  return attnscope::Status::ok();
}

void PromptPanel::update_text_message() {
  if (!has_model_ || modality_.kind != ModalityKind::kText) return;
  const QByteArray bytes = text_->toPlainText().toUtf8();
  const int64_t max = modality_.seq_len();
  if (bytes.isEmpty())
    message_->setText(empty_message());
  else if (bytes.size() > max)
    message_->setText(tr("%1 bytes typed; the model holds %2, so the prompt is cut to the first "
                         "%3 bytes and nothing is left to generate.")
                          .arg(bytes.size())
                          .arg(max)
                          .arg(utf8_prefix(bytes, static_cast<size_t>(max))));
  else
    message_->setText(
        tr("%1 prompt bytes (UTF-8); %2 are generated.").arg(bytes.size()).arg(max - bytes.size()));
}

void PromptPanel::update_preview() {
  if (modality_.kind != ModalityKind::kImage) return;
  if (tokens_.empty()) {
    preview_->setPixmap(QPixmap());
    preview_->setText(has_model_ ? tr("no image") : tr("open a model first"));
    return;
  }
  auto format = cli::image_format_for(modality_);
  if (!format) return;
  const int w = modality_.width, h = modality_.height;
  QImage img(w, h, *format);
  const size_t row = static_cast<size_t>(w) * static_cast<size_t>(modality_.channels);
  for (int y = 0; y < h; ++y)
    std::memcpy(img.scanLine(y), tokens_.data() + row * static_cast<size_t>(y), row);
  const int scale = std::max(1, kPreviewSide / std::max(w, h));
  QImage big = img.convertToFormat(QImage::Format_RGB32)
                   .scaled(w * scale, h * scale, Qt::IgnoreAspectRatio, Qt::FastTransformation);
  QPainter painter(&big);
  const int cut = keep_->value() * scale;
  painter.fillRect(QRect(0, cut, big.width(), big.height() - cut), QColor(0, 0, 0, 150));
  painter.setPen(QPen(QColor(255, 200, 0), 2));
  painter.drawLine(0, cut, big.width(), cut);
  painter.end();
  preview_->setPixmap(QPixmap::fromImage(big));
}

}  // namespace ui
