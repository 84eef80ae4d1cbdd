// Reading the prompt through the apps' shared media code (app/media): images scaled to the
// model's size with a preview (regenerated rows dimmed, painted pixels in magenta) on which a
// mask is painted by dragging, WAV clips resampled and mu-law encoded, typed text as UTF-8 bytes.
#include "prompt_panel.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFileInfo>
#include <QFormLayout>
#include <QGridLayout>
#include <QLabel>
#include <QMouseEvent>
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
enum MaskChoice { kKeepRows = 0, kRegeneratePainted = 1 };
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
  preview_->setFrameShape(QFrame::StyledPanel);
  // Room for the whole scaled image inside the frame.
  preview_->setMinimumSize(kPreviewSide + 2 * preview_->frameWidth(),
                           kPreviewSide + 2 * preview_->frameWidth());
  preview_->setObjectName(QStringLiteral("prompt-preview"));
  preview_->installEventFilter(this);
  layout->addWidget(preview_);

  mask_box_ = new QWidget(this);
  auto* mask_layout = new QGridLayout(mask_box_);
  mask_layout->setContentsMargins(0, 0, 0, 0);
  paint_mode_ = new QPushButton(tr("Paint mask"), mask_box_);
  paint_mode_->setObjectName(QStringLiteral("paint-mask"));
  paint_mode_->setCheckable(true);
  paint_mode_->setToolTip(
      tr("Drag on the preview to paint pixels to regenerate; the right "
         "button erases"));
  mask_layout->addWidget(paint_mode_, 0, 0);
  erase_ = new QCheckBox(tr("Erase"), mask_box_);
  erase_->setObjectName(QStringLiteral("paint-erase"));
  erase_->setToolTip(tr("Dragging with the left button erases paint (as the right button does)"));
  mask_layout->addWidget(erase_, 0, 1);
  brush_ = new QSpinBox(mask_box_);
  brush_->setObjectName(QStringLiteral("paint-brush"));
  brush_->setRange(1, 4);
  brush_->setPrefix(tr("brush "));
  brush_->setSuffix(tr(" px"));
  brush_->setToolTip(tr("Side of the square brush, in image pixels"));
  mask_layout->addWidget(brush_, 0, 2);
  mask_choice_ = new QComboBox(mask_box_);
  mask_choice_->setObjectName(QStringLiteral("mask-choice"));
  mask_choice_->addItem(tr("Keep rows"));
  mask_choice_->addItem(tr("Regenerate painted pixels"));
  mask_choice_->setToolTip(
      tr("Keep the first rows, or keep every pixel but the painted ones: painted pixels are "
         "resampled given everything before them, later pixels are kept verbatim"));
  mask_layout->addWidget(mask_choice_, 1, 0, 1, 2);
  clear_mask_ = new QPushButton(tr("Clear mask"), mask_box_);
  clear_mask_->setObjectName(QStringLiteral("clear-mask"));
  clear_mask_->setToolTip(tr("Forget the painted pixels and keep rows again"));
  mask_layout->addWidget(clear_mask_, 1, 2);
  mask_info_ = new QLabel(mask_box_);
  mask_info_->setWordWrap(true);
  mask_layout->addWidget(mask_info_, 2, 0, 1, 3);
  layout->addWidget(mask_box_);

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
  connect(paint_mode_, &QPushButton::toggled, this,
          [this](bool on) { preview_->setCursor(on ? Qt::CrossCursor : Qt::ArrowCursor); });
  connect(clear_mask_, &QPushButton::clicked, this, &PromptPanel::clear_mask);
  connect(mask_choice_, &QComboBox::currentIndexChanged, this, [this] {
    update_preview();
    emit prompt_changed();
  });
  connect(text_, &QPlainTextEdit::textChanged, this, [this] {
    update_text_message();
    emit prompt_changed();
  });
  update_preview();
}

bool PromptPanel::painted_mode() const {
  return has_model_ && modality_.kind == ModalityKind::kImage &&
         mask_choice_->currentIndex() == kRegeneratePainted;
}

std::vector<uint8_t> PromptPanel::keep_mask() const {
  const size_t channels = static_cast<size_t>(modality_.channels);
  if (!painted_mode() || tokens_.empty() || painted_.size() * channels != tokens_.size()) return {};
  std::vector<uint8_t> keep(tokens_.size(), 1);
  for (size_t px = 0; px < painted_.size(); ++px)
    if (painted_[px])
      std::fill_n(keep.begin() + static_cast<ptrdiff_t>(px * channels), channels, 0);
  return keep;
}

int PromptPanel::painted_pixels() const {
  return static_cast<int>(std::count(painted_.begin(), painted_.end(), 1));
}

void PromptPanel::paint_square(int x, int y, bool erase) {
  if (!has_model_ || modality_.kind != ModalityKind::kImage || tokens_.empty()) return;
  const int w = modality_.width, h = modality_.height, b = brush_->value();
  painted_.resize(static_cast<size_t>(w) * static_cast<size_t>(h), 0);
  for (int py = y - (b - 1) / 2; py < y - (b - 1) / 2 + b; ++py)
    for (int px = x - (b - 1) / 2; px < x - (b - 1) / 2 + b; ++px)
      if (px >= 0 && py >= 0 && px < w && py < h)
        painted_[static_cast<size_t>(py) * static_cast<size_t>(w) + static_cast<size_t>(px)] =
            erase ? 0 : 1;
  if (!erase && mask_choice_->currentIndex() != kRegeneratePainted) {
    const QSignalBlocker block(mask_choice_);
    mask_choice_->setCurrentIndex(kRegeneratePainted);
  }
  update_preview();
}

void PromptPanel::clear_mask() {
  std::fill(painted_.begin(), painted_.end(), 0);
  const bool was_painted = mask_choice_->currentIndex() == kRegeneratePainted;
  {
    const QSignalBlocker block(mask_choice_);
    mask_choice_->setCurrentIndex(kKeepRows);
  }
  update_preview();
  if (was_painted) emit prompt_changed();
}

QWidget* PromptPanel::preview() const {
  return preview_;
}

QPoint PromptPanel::preview_point(int x, int y) const {
  const QRect area = preview_->contentsRect();
  const int w = modality_.width * preview_scale_, h = modality_.height * preview_scale_;
  const QPoint origin(area.x() + (area.width() - w) / 2, area.y() + (area.height() - h) / 2);
  return origin +
         QPoint(x * preview_scale_ + preview_scale_ / 2, y * preview_scale_ + preview_scale_ / 2);
}

QPoint PromptPanel::preview_pixel(QPoint pos) const {
  if (tokens_.empty() || modality_.kind != ModalityKind::kImage) return {-1, -1};
  const QPoint corner = preview_point(0, 0) - QPoint(preview_scale_ / 2, preview_scale_ / 2);
  const QPoint d = pos - corner;
  if (d.x() < 0 || d.y() < 0) return {-1, -1};
  const int x = d.x() / preview_scale_, y = d.y() / preview_scale_;
  if (x >= modality_.width || y >= modality_.height) return {-1, -1};
  return {x, y};
}

bool PromptPanel::eventFilter(QObject* watched, QEvent* event) {
  if (watched != preview_ || !paint_mode_->isChecked()) return QWidget::eventFilter(watched, event);
  const QEvent::Type type = event->type();
  if (type != QEvent::MouseButtonPress && type != QEvent::MouseMove &&
      type != QEvent::MouseButtonRelease)
    return QWidget::eventFilter(watched, event);
  auto* mouse = static_cast<QMouseEvent*>(event);
  if (type == QEvent::MouseButtonPress) {
    if (mouse->button() != Qt::LeftButton && mouse->button() != Qt::RightButton) return false;
    painting_ = true;
    paint_erases_ = mouse->button() == Qt::RightButton || erase_->isChecked();
  }
  if (!painting_) return false;
  const QPoint px = preview_pixel(mouse->position().toPoint());
  if (px.x() >= 0) paint_square(px.x(), px.y(), paint_erases_);
  if (type == QEvent::MouseButtonRelease) {
    painting_ = false;
    if (painted_mode()) emit prompt_changed();
  }
  return true;
}

void PromptPanel::update_mask_controls() {
  // Shown (disabled) before a model too, so the first layout leaves room for it.
  mask_box_->setVisible(!has_model_ || modality_.kind == ModalityKind::kImage);
  mask_box_->setEnabled(!tokens_.empty());
  const bool painted = painted_mode();
  keep_->setEnabled(!painted);
  if (tokens_.empty()) paint_mode_->setChecked(false);
  const int n = painted_pixels();
  if (!painted)
    mask_info_->setText(tr("Or paint pixels to regenerate on the preview."));
  else if (n == 0)
    mask_info_->setText(tr("No pixel painted: the whole image is kept."));
  else
    mask_info_->setText(tr("%n pixel(s) to regenerate; the rest is kept.", nullptr, n));
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
  if (!same) {
    painted_.assign(image ? static_cast<size_t>(m.width) * static_cast<size_t>(m.height) : 0, 0);
    const QSignalBlocker block(mask_choice_);
    mask_choice_->setCurrentIndex(kKeepRows);
  }
  update_mask_controls();
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
  update_mask_controls();
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
  preview_scale_ = scale;
  QImage big = img.convertToFormat(QImage::Format_RGB32)
                   .scaled(w * scale, h * scale, Qt::IgnoreAspectRatio, Qt::FastTransformation);
  QPainter painter(&big);
  if (painted_mode()) {
    // Magenta hatched with white, so paint stands out on magenta pixels of the image too.
    for (size_t i = 0; i < painted_.size(); ++i) {
      if (!painted_[i]) continue;
      const QRect cell(static_cast<int>(i % static_cast<size_t>(w)) * scale,
                       static_cast<int>(i / static_cast<size_t>(w)) * scale, scale, scale);
      painter.fillRect(cell, QColor(255, 0, 255, 170));
      painter.fillRect(cell, QBrush(Qt::white, Qt::BDiagPattern));
    }
  } else {
    const int cut = keep_->value() * scale;
    painter.fillRect(QRect(0, cut, big.width(), big.height() - cut), QColor(0, 0, 0, 150));
    painter.setPen(QPen(QColor(255, 200, 0), 2));
    painter.drawLine(0, cut, big.width(), cut);
  }
  painter.end();
  preview_->setPixmap(QPixmap::fromImage(big));
}

}  // namespace ui
