// Images for training data sets: decoding with QImageReader, centre-crop or scale to the
// model's size, and alpha composited onto the background colour.
#include "image_dataset.h"

#include <QColor>
#include <QImageReader>
#include <cstring>
#include <filesystem>

#include "media.h"

namespace cli {

using attnscope::DataOptions;
using attnscope::internal_error;
using attnscope::invalid_argument;
using attnscope::not_found;

namespace {

// The largest centred rectangle of img with the aspect ratio w : h.
QRect centre_crop(const QImage& img, int w, int h) {
  const int64_t iw = img.width(), ih = img.height();
  if (iw * h > ih * w) {  // wider than the target: cut the sides
    const int cw = static_cast<int>(std::max<int64_t>(1, (ih * w + h / 2) / h));
    return {static_cast<int>((iw - cw) / 2), 0, cw, static_cast<int>(ih)};
  }
  const int ch = static_cast<int>(std::max<int64_t>(1, (iw * h + w / 2) / w));
  return {0, static_cast<int>((ih - ch) / 2), static_cast<int>(iw), ch};
}

}  // namespace

Expected<std::vector<uint8_t>> image_dataset_decode(const std::string& path, const Modality& m,
                                                    const DataOptions& opt) {
  auto format = image_format_for(m);
  if (!format) return format.status();
  const QColor background(QString::fromStdString(opt.background));
  if (!background.isValid())
    return invalid_argument("background '" + opt.background + "' is not a colour");
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return not_found(path + ": no such file");
  ATTN_RETURN_IF_ERROR(image_check_declared_size(path));
  QImageReader reader(QString::fromStdString(path));
  QImage img = reader.read();
  if (img.isNull())
    return invalid_argument(path + ": cannot read as an image (" +
                            reader.errorString().toStdString() + ")");

  // Scaling in premultiplied alpha keeps transparent pixels' colours out of their neighbours.
  img = img.convertToFormat(QImage::Format_RGBA8888_Premultiplied);
  if (opt.crop && (img.width() != m.width || img.height() != m.height))
    img = img.copy(centre_crop(img, m.width, m.height));
  if (img.width() != m.width || img.height() != m.height)
    img = img.scaled(m.width, m.height, Qt::IgnoreAspectRatio, Qt::SmoothTransformation);
  // Smooth scaling may hand back another premultiplied layout: back to bytes R G B A.
  img = img.convertToFormat(QImage::Format_RGBA8888_Premultiplied);
  if (img.isNull()) return internal_error("out of memory converting " + path);

  if (m.channels == 4) {
    img = img.convertToFormat(QImage::Format_RGBA8888);
  } else {
    // out = premultiplied colour + (1 - alpha) * background, per channel; img is (H, W, 4).
    const int bg[3] = {background.red(), background.green(), background.blue()};
    for (int y = 0; y < img.height(); ++y) {
      uint8_t* p = img.scanLine(y);
      for (int x = 0; x < img.width(); ++x, p += 4) {
        const int inv = 255 - p[3];
        for (int c = 0; c < 3; ++c) p[c] = static_cast<uint8_t>(p[c] + (inv * bg[c] + 127) / 255);
        p[3] = 255;
      }
    }
    img = img.convertToFormat(*format);
  }
  if (img.isNull()) return internal_error("out of memory converting " + path);
  // tokens are (H, W, C), row by row.
  const size_t row = static_cast<size_t>(m.width) * static_cast<size_t>(m.channels);
  std::vector<uint8_t> tokens(row * static_cast<size_t>(m.height));
  for (int y = 0; y < m.height; ++y)
    std::memcpy(tokens.data() + row * static_cast<size_t>(y), img.constScanLine(y), row);
  return tokens;
}

}  // namespace cli
