// Files in and out of the apps (CLI and GUI): output paths checked before the work, images as byte
// tokens (QImage), text, WAV clips as mu-law tokens, and .npy arrays.
#pragma once

#include <QImage>
#include <cstdint>
#include <string>
#include <vector>

#include "attnscope/config.h"
#include "attnscope/status.h"

namespace cli {

using attnscope::Expected;
using attnscope::Modality;
using attnscope::Status;

// Refuses (kInvalidArgument) an output path whose folder does not exist or is not a folder.
Status check_output_folder(const std::string& path);
// The lower-case suffix of path without the dot ("png"), or "" when it has none.
std::string file_suffix(const std::string& path);
// "out.wav", 3 -> "out-3.wav": the names of numbered outputs.
std::string numbered_path(const std::string& path, int index);

// Reads a whole file; kNotFound when it does not exist. Files over max_bytes are refused.
Expected<std::vector<uint8_t>> read_file_bytes(const std::string& path, size_t max_bytes);

// The QImage format that holds C = 1, 3 or 4 channels byte for byte (grey, RGB, RGBA).
Expected<QImage::Format> image_format_for(const Modality& m);
// Reads an image as the modality's tokens (raster order, channels interleaved). When its size
// differs it is scaled to the model's size if allow_scale (QImage::scaled, smooth; note says
// "scaled prompt 64x64 -> 32x32"), else refused.
// The largest image a prompt or a data set may declare: 8192 pixels a side. Readers check the
// declared size (the file's header) before decoding, so an image bomb (a tiny file declaring
// 30000x30000) is refused in bounded time and memory with this limit named.
constexpr int kMaxImageSide = 8192;
attnscope::Status image_check_declared_size(const std::string& path);

Expected<std::vector<uint8_t>> image_read_tokens(const std::string& path, const Modality& m,
                                                 bool allow_scale, std::string* note);
// Samples of W*H*C tokens laid out in a grid of ceil(sqrt(n)) columns with a gap of
// kGridGap pixels (black, or transparent for RGBA), encoded in the format of path's suffix.
constexpr int kGridGap = 2;
Expected<std::vector<uint8_t>> image_encode_grid(const std::vector<std::vector<uint8_t>>& samples,
                                                 const Modality& m, const std::string& path);
// True when QImageWriter can write files with this suffix.
bool image_suffix_writable(const std::string& suffix);

// Mu-law tokens of a WAV file resampled to the model's rate (note says so when it was).
Expected<std::vector<uint8_t>> audio_read_tokens(const std::string& path, const Modality& m,
                                                 std::string* note);
std::vector<uint8_t> audio_encode_tokens(const std::vector<uint8_t>& tokens, const Modality& m);

// A .npy (format 1.0) file of little-endian float32 values with the given 2-D shape.
std::vector<uint8_t> npy_encode_f32(const float* data, int64_t rows, int64_t cols);

}  // namespace cli
