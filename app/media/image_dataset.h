// Images for training data sets: the Qt decoder that attnscope::dataset_load calls through
// DataOptions::image_decoder (the engine itself reads no image formats).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "attnscope/config.h"
#include "attnscope/status.h"
#include "attnscope/train.h"

namespace cli {

// Reads a PNG or JPEG as the modality's tokens (W x H, rows top to bottom, channels
// interleaved as in image_format_for). An image of another size is centre-cropped to the
// model's aspect ratio first when opt.crop, then scaled (smooth) to W x H. For 1 or 3 channels
// the alpha channel is composited onto opt.background (any colour QColor parses: "#ffffff",
// "white"); 4 channels keep it. Compatible with attnscope::DataOptions::image_decoder.
attnscope::Expected<std::vector<uint8_t>> image_dataset_decode(const std::string& path,
                                                               const attnscope::Modality& m,
                                                               const attnscope::DataOptions& opt);

}  // namespace cli
