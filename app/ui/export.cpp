// PNG export through the CLI's image encoder and the engine's atomic file set.
#include "export.h"

#include <QBuffer>
#include <QDir>
#include <QFileInfo>
#include <QImageWriter>

#include "attnscope/atomic_file.h"
#include "media.h"

namespace ui {

QString export_default_name(const session::Snapshot& s, const QString& prompt_path, uint64_t seed) {
  QString name = s.model ? QFileInfo(QString::fromStdString(s.model->path)).completeBaseName()
                         : QStringLiteral("attnscope");
  if (!prompt_path.isEmpty()) name += QLatin1Char('-') + QFileInfo(prompt_path).completeBaseName();
  return name + QStringLiteral("-seed%1.png").arg(seed);
}

QString export_scaled_path(const QString& path) {
  const QFileInfo f(path);
  const QString name = QStringLiteral("%1-%2x.%3")
                           .arg(f.completeBaseName())
                           .arg(kExportScale)
                           .arg(f.suffix().isEmpty() ? QStringLiteral("png") : f.suffix());
  return f.dir().filePath(name);
}

attnscope::Status export_completion_png(const session::Snapshot& s, const QString& path,
                                        QStringList* written) {
  using attnscope::invalid_argument;
  if (!s.run) return invalid_argument("there is no image to export: open a model first");
  const attnscope::Modality& m = s.run->modality();
  auto format = cli::image_format_for(m);
  if (!format) return format.status();
  const std::string target = path.toStdString();
  ATTN_RETURN_IF_ERROR(cli::check_output_folder(target));
  if (cli::file_suffix(target) != "png")
    return invalid_argument("export '" + target + "': the file name must end in .png");

  const int64_t known = s.run->known(s.filled);
  std::vector<uint8_t> tokens(static_cast<size_t>(s.run->length()), 0);
  std::copy(s.run->tokens(), s.run->tokens() + known, tokens.begin());
  auto native = cli::image_encode_grid({tokens}, m, target);
  if (!native) return native.status();

  QImage img(m.width, m.height, *format);
  const size_t row = static_cast<size_t>(m.width) * static_cast<size_t>(m.channels);
  for (int y = 0; y < m.height; ++y)
    std::memcpy(img.scanLine(y), tokens.data() + row * static_cast<size_t>(y), row);
  const QImage big = img.scaled(m.width * kExportScale, m.height * kExportScale,
                                Qt::IgnoreAspectRatio, Qt::FastTransformation);
  QByteArray bytes;
  QBuffer buffer(&bytes);
  buffer.open(QIODevice::WriteOnly);
  QImageWriter writer(&buffer, "png");
  const QString scaled_path = export_scaled_path(path);
  if (!writer.write(big))
    return attnscope::internal_error("cannot encode " + scaled_path.toStdString() + ": " +
                                     writer.errorString().toStdString());

  attnscope::AtomicFileSet files(0644);
  ATTN_RETURN_IF_ERROR(files.add(target, *native));
  ATTN_RETURN_IF_ERROR(
      files.add(scaled_path.toStdString(), std::vector<uint8_t>(bytes.begin(), bytes.end())));
  ATTN_RETURN_IF_ERROR(files.commit());
  *written = {path, scaled_path};
  return attnscope::Status::ok();
}

}  // namespace ui
