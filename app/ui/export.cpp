// Export through the apps' shared media encoders (app/media) and the engine's atomic files.
#include "export.h"

#include <QBuffer>
#include <QDir>
#include <QFileInfo>
#include <QImageWriter>

#include "attnscope/atomic_file.h"
#include "media.h"

namespace ui {

QString export_default_name(const session::Snapshot& s, const QString& prompt_path, uint64_t seed,
                            int shown_sample) {
  QString name = s.model ? QFileInfo(QString::fromStdString(s.model->path)).completeBaseName()
                         : QStringLiteral("attnscope");
  if (!prompt_path.isEmpty()) name += QLatin1Char('-') + QFileInfo(prompt_path).completeBaseName();
  const attnscope::ModalityKind kind =
      s.run ? s.run->modality().kind : attnscope::ModalityKind::kImage;
  const int count = static_cast<int>(s.samples.size());
  switch (kind) {
    case attnscope::ModalityKind::kAudio:
      return name + QStringLiteral("-seed%1.wav").arg(seed + std::max(shown_sample, 0));
    case attnscope::ModalityKind::kText:
      return name + QStringLiteral("-seed%1.txt").arg(seed + std::max(shown_sample, 0));
    default:
      return count > 1 ? name + QStringLiteral("-seeds%1-%2.png").arg(seed).arg(seed + count - 1)
                       : name + QStringLiteral("-seed%1.png").arg(seed);
  }
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

  // Every sample of the run (pending positions black); one sample is a grid of one.
  std::vector<std::vector<uint8_t>> grid;
  for (const auto& run : s.samples.empty() ? decltype(s.samples){s.run} : s.samples) {
    const int64_t known = run->known(run == s.run ? s.filled : run->filled());
    std::vector<uint8_t> tokens(static_cast<size_t>(run->length()), 0);
    std::copy(run->tokens(), run->tokens() + known, tokens.begin());
    grid.push_back(std::move(tokens));
  }
  auto native = cli::image_encode_grid(grid, m, target);
  if (!native) return native.status();

  QImage img = QImage::fromData(native->data(), static_cast<int>(native->size()), "png");
  if (img.isNull()) return attnscope::internal_error("cannot decode the grid just encoded");
  const QImage big = img.scaled(img.width() * kExportScale, img.height() * kExportScale,
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

attnscope::Status export_output(const session::Snapshot& s, int shown_sample, const QString& path,
                                QStringList* written) {
  using attnscope::invalid_argument;
  if (!s.run) return invalid_argument("there is nothing to export: open a model first");
  const attnscope::Modality& m = s.run->modality();
  if (m.kind == attnscope::ModalityKind::kImage) return export_completion_png(s, path, written);
  const std::string target = path.toStdString();
  ATTN_RETURN_IF_ERROR(cli::check_output_folder(target));
  const bool audio = m.kind == attnscope::ModalityKind::kAudio;
  const std::string suffix = audio ? "wav" : "txt";
  if (cli::file_suffix(target) != suffix)
    return invalid_argument("export '" + target + "': the file name must end in ." + suffix);
  auto run = s.run;
  if (!s.samples.empty())
    run = s.samples[static_cast<size_t>(
        std::clamp(shown_sample, 0, static_cast<int>(s.samples.size()) - 1))];
  const int64_t known = run->known(run == s.run ? s.filled : run->filled());
  const std::vector<uint8_t> tokens(run->tokens(), run->tokens() + known);
  ATTN_RETURN_IF_ERROR(
      attnscope::atomic_write_file(target, audio ? cli::audio_encode_tokens(tokens, m) : tokens));
  *written = {path};
  return attnscope::Status::ok();
}

}  // namespace ui
