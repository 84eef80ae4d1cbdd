// libFuzzer harness: the WAV reader (RIFF chunks, fmt, 8/16/24/32-bit integer and float
// samples, any channel count) on bytes in memory.
#include <cmath>
#include <cstdint>

#include "attnscope/audio.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto clip = attnscope::audio_wav_parse(data, size, "fuzz.wav");
  if (clip) {
    for (float s : clip->samples)
      if (!(s >= -1.0f && s <= 1.0f)) __builtin_trap();  // samples are clamped, never NaN
  }
  return 0;
}
