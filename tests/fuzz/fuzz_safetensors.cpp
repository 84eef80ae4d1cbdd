// libFuzzer harness: the model reader (the safetensors format check, then the whole load with
// Attnscope's rules, the configuration and the weights). Any input must give a value or a
// Status: a crash, leak or sanitizer report is a bug.
#include <cstdint>

#include "attnscope/safetensors.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = fuzz_scratch_path(".safetensors");
  if (!fuzz_write_scratch(path, data, size)) return 0;
  const attnscope::Status format = attnscope::safetensors_check_format(path);
  auto loaded = attnscope::safetensors_load(path);
  // The load applies the format's rules first: it never accepts what they refuse.
  if (loaded && !format.is_ok()) __builtin_trap();
  return 0;
}
