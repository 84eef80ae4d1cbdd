// Output file checks, image/text/audio tokens and .npy encoding, shared by attnscope-cli and the
// GUI.
#include "media.h"

#include <fcntl.h>
#include <unistd.h>

#include <QBuffer>
#include <QByteArray>
#include <QImageReader>
#include <QImageWriter>
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "attnscope/audio.h"

namespace cli {

namespace fs = std::filesystem;
using attnscope::internal_error;
using attnscope::invalid_argument;
using attnscope::not_found;

Status check_output_folder(const std::string& path) {
  const fs::path target(path);
  if (target.filename().empty()) return invalid_argument("output '" + path + "' names no file");
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return invalid_argument("output folder '" + dir.string() + "' does not exist");
  if (fs::is_directory(target, ec)) return invalid_argument("output '" + path + "' is a folder");
  return Status::ok();
}

std::string file_suffix(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  if (!ext.empty()) ext.erase(0, 1);
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext;
}

std::string numbered_path(const std::string& path, int index) {
  const fs::path p(path);
  const std::string name = p.stem().string() + "-" + std::to_string(index) + p.extension().string();
  return (p.has_parent_path() ? p.parent_path() / name : fs::path(name)).string();
}

Expected<std::vector<uint8_t>> read_file_bytes(const std::string& path, size_t max_bytes) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return not_found(path + ": no such file");
  if (fs::is_directory(path, ec)) return invalid_argument(path + ": is a folder, not a file");
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) return invalid_argument(path + ": cannot read (" + ec.message() + ")");
  if (size > max_bytes)
    return invalid_argument(path + ": file of " + std::to_string(size) +
                            " bytes is over the limit of " + std::to_string(max_bytes));
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  if (!in || static_cast<uintmax_t>(in.gcount()) != size)
    return invalid_argument(path + ": cannot read the whole file");
  return bytes;
}

namespace {
// Silences stderr (fd 2) while alive: libpng prints its own "libpng error: ..." lines there,
// and an error must stay one line, ours, which names the file and the fault.
class QuietStderr {
 public:
  QuietStderr() : saved_(::dup(STDERR_FILENO)) {
    std::fflush(stderr);
    const int null = ::open("/dev/null", O_WRONLY);
    if (saved_ >= 0 && null >= 0) ::dup2(null, STDERR_FILENO);
    if (null >= 0) ::close(null);
  }
  ~QuietStderr() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
  }
  QuietStderr(const QuietStderr&) = delete;
  QuietStderr& operator=(const QuietStderr&) = delete;

 private:
  int saved_;
};
}  // namespace

Expected<QImage::Format> image_format_for(const Modality& m) {
  if (m.kind != attnscope::ModalityKind::kImage)
    return invalid_argument("the model's modality " + m.describe() + " is not an image");
  switch (m.channels) {
    case 1:
      return QImage::Format_Grayscale8;
    case 3:
      return QImage::Format_RGB888;
    case 4:
      return QImage::Format_RGBA8888;
    default:
      return invalid_argument("images with " + std::to_string(m.channels) +
                              " channels have no image file format (use 1, 3 or 4)");
  }
}

Status image_check_declared_size(const std::string& path) {
  QImageReader reader(QString::fromStdString(path));
  QSize size;
  {
    QuietStderr quiet;
    size = reader.size();  // the header only; invalid when the format does not say
  }
  if (size.isValid() && (size.width() > kMaxImageSide || size.height() > kMaxImageSide))
    return invalid_argument(path + ": the image declares " + std::to_string(size.width()) + "x" +
                            std::to_string(size.height()) + " pixels; at most " +
                            std::to_string(kMaxImageSide) + " pixels a side are read");
  return Status::ok();
}

Expected<std::vector<uint8_t>> image_read_tokens(const std::string& path, const Modality& m,
                                                 bool allow_scale, std::string* note) {
  auto format = image_format_for(m);
  if (!format) return format.status();
  std::error_code ec;
  if (!fs::exists(path, ec)) return not_found(path + ": no such file");
  ATTN_RETURN_IF_ERROR(image_check_declared_size(path));
  QImageReader reader(QString::fromStdString(path));
  QImage img;
  {
    QuietStderr quiet;
    img = reader.read();
  }
  if (img.isNull())
    return invalid_argument(path + ": cannot read as an image (" +
                            reader.errorString().toStdString() + ")");
  img = img.convertToFormat(*format);
  if (img.width() != m.width || img.height() != m.height) {
    const std::string from = std::to_string(img.width()) + "x" + std::to_string(img.height());
    const std::string to = std::to_string(m.width) + "x" + std::to_string(m.height);
    if (!allow_scale)
      return invalid_argument(path + ": image is " + from + ", the model takes " + to);
    img = img.scaled(m.width, m.height, Qt::IgnoreAspectRatio, Qt::SmoothTransformation)
              .convertToFormat(*format);
    *note = "scaled prompt " + from + " -> " + to;
  }
  if (img.isNull()) return internal_error("out of memory converting " + path);
  const size_t row = static_cast<size_t>(m.width) * static_cast<size_t>(m.channels);
  std::vector<uint8_t> tokens(row * static_cast<size_t>(m.height));
  for (int y = 0; y < m.height; ++y)
    std::memcpy(tokens.data() + row * static_cast<size_t>(y), img.constScanLine(y), row);
  return tokens;
}

bool image_suffix_writable(const std::string& suffix) {
  return !suffix.empty() &&
         QImageWriter::supportedImageFormats().contains(QByteArray::fromStdString(suffix));
}

Expected<std::vector<uint8_t>> image_encode_grid(const std::vector<std::vector<uint8_t>>& samples,
                                                 const Modality& m, const std::string& path) {
  auto format = image_format_for(m);
  if (!format) return format.status();
  const int n = static_cast<int>(samples.size());
  const int cols = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n))));
  const int rows = (n + cols - 1) / cols;
  QImage grid(cols * m.width + (cols - 1) * kGridGap, rows * m.height + (rows - 1) * kGridGap,
              *format);
  if (grid.isNull()) return internal_error("out of memory for a grid of " + std::to_string(n));
  grid.fill(0);
  const size_t row = static_cast<size_t>(m.width) * static_cast<size_t>(m.channels);
  for (int s = 0; s < n; ++s) {
    const int x0 = (s % cols) * (m.width + kGridGap), y0 = (s / cols) * (m.height + kGridGap);
    for (int y = 0; y < m.height; ++y)
      std::memcpy(grid.scanLine(y0 + y) + static_cast<size_t>(x0) * m.channels,
                  samples[static_cast<size_t>(s)].data() + row * static_cast<size_t>(y), row);
  }
  QByteArray bytes;
  QBuffer buffer(&bytes);
  buffer.open(QIODevice::WriteOnly);
  const std::string suffix = file_suffix(path);
  QImageWriter writer(&buffer, QByteArray::fromStdString(suffix));
  if (!writer.write(grid))
    return internal_error("cannot encode " + path + " as " + suffix + ": " +
                          writer.errorString().toStdString());
  return std::vector<uint8_t>(bytes.begin(), bytes.end());
}

Expected<std::vector<uint8_t>> audio_read_tokens(const std::string& path, const Modality& m,
                                                 std::string* note) {
  auto clip = attnscope::audio_wav_read(path);
  if (!clip) return clip.status();
  std::vector<float> samples = std::move(clip->samples);
  if (clip->rate != m.rate) {
    samples = attnscope::audio_resample_linear(samples, clip->rate, m.rate);
    *note = "resampled prompt " + std::to_string(clip->rate) + " Hz -> " + std::to_string(m.rate) +
            " Hz";
  }
  return attnscope::audio_mulaw_encode(samples);
}

std::vector<uint8_t> audio_encode_tokens(const std::vector<uint8_t>& tokens, const Modality& m) {
  attnscope::AudioClip clip;
  clip.rate = m.rate;
  clip.samples = attnscope::audio_mulaw_decode(tokens);
  return attnscope::audio_wav_encode(clip);
}

static_assert(std::endian::native == std::endian::little,
              "npy_encode_f32 copies float32 as '<f4': add byte swapping for this machine");

std::vector<uint8_t> npy_encode_f32(const float* data, int64_t rows, int64_t cols) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
                       std::to_string(rows) + ", " + std::to_string(cols) + "), }";
  // Magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64
  // and ended by a newline, as the format asks.
  const size_t total = (10 + header.size() + 1 + 63) / 64 * 64;
  header.resize(total - 10 - 1, ' ');
  header += '\n';
  std::vector<uint8_t> out = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  out.push_back(static_cast<uint8_t>(header.size() & 0xFF));
  out.push_back(static_cast<uint8_t>(header.size() >> 8));
  out.insert(out.end(), header.begin(), header.end());
  const size_t n = static_cast<size_t>(rows * cols) * sizeof(float);
  const auto* bytes = reinterpret_cast<const uint8_t*>(data);
  out.insert(out.end(), bytes, bytes + n);
  return out;
}

}  // namespace cli
