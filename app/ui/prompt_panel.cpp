// Reading the prompt image through the CLI's image <-> token code (app/cli/media), and the
// preview: the image at a whole-number scale with the rows that will be regenerated dimmed.
#include "prompt_panel.h"

#include <QFileInfo>
#include <QFormLayout>
#include <QLabel>
#include <QPainter>
#include <QPushButton>
#include <QSpinBox>
#include <QVBoxLayout>

#include "media.h"

namespace ui {

namespace {
constexpr int kPreviewSide = 192;
}

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
  message_ = new QLabel(tr("No prompt: the whole image is generated."), this);
  message_->setWordWrap(true);
  layout->addWidget(message_);
  auto* form = new QFormLayout;
  keep_ = new QSpinBox(this);
  keep_->setRange(0, 0);
  keep_->setToolTip(tr("Rows of the prompt kept exactly; the rest is generated"));
  form->addRow(tr("Rows to keep"), keep_);
  layout->addLayout(form);
  layout->addStretch(1);
  connect(open_, &QPushButton::clicked, this, &PromptPanel::open_requested);
  connect(keep_, &QSpinBox::valueChanged, this, [this] {
    update_preview();
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

QString PromptPanel::message() const {
  return message_->text();
}

attnscope::Status PromptPanel::set_modality(const attnscope::Modality& m) {
  const bool same = has_model_ && m.describe() == modality_.describe();
  modality_ = m;
  has_model_ = true;
  const bool image = m.kind == attnscope::ModalityKind::kImage;
  open_->setEnabled(image);
  const QSignalBlocker block(keep_);
  keep_->setRange(0, image ? m.height : 0);
  if (!same) keep_->setValue(image ? m.height / 2 : 0);
  if (path_.isEmpty()) {
    tokens_.clear();
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
  message_->setText(tr("No prompt: the whole image is generated."));
  update_preview();
  emit prompt_changed();
}

attnscope::Status PromptPanel::read() {
  std::string note;
  auto tokens = cli::image_read_tokens(path_.toStdString(), modality_, /*allow_scale=*/true, &note);
  if (!tokens) {
    path_.clear();
    tokens_.clear();
    message_->setText(tr("No prompt: the whole image is generated."));
    update_preview();
    emit prompt_changed();
    return tokens.status();
  }
  tokens_ = std::move(*tokens);
  const QString name = QFileInfo(path_).fileName();
  message_->setText(
      note.empty()
          ? tr("%1 (%2x%3, the model's size)").arg(name).arg(modality_.width).arg(modality_.height)
          : tr("%1: %2").arg(name, QString::fromStdString(note)));
  update_preview();
  emit prompt_changed();
  return attnscope::Status::ok();
}

void PromptPanel::update_preview() {
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
