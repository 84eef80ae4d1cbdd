// libFuzzer harness: the image prompt path (Qt's decoders for PNG, JPEG, BMP, GIF, ..., the
// declared-size check, conversion and scaling to the model's 32x32x3 tokens).
#include <QCoreApplication>
#include <cstdint>
#include <string>

#include "attnscope/config.h"
#include "fuzz_common.h"
#include "media.h"

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  static QCoreApplication app(*argc, *argv);  // image format plugins (JPEG, GIF) need one
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const attnscope::Modality m;  // image:32x32x3, the bundled icon models' size
  const std::string& path = fuzz_scratch_path(".img");
  if (!fuzz_write_scratch(path, data, size)) return 0;
  std::string note;
  auto tokens = cli::image_read_tokens(path, m, /*allow_scale=*/true, &note);
  if (tokens && tokens->size() != 32u * 32u * 3u) __builtin_trap();
  return 0;
}
