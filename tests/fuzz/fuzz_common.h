// The fuzz harnesses' scratch file: readers that take a path get the input through one file in
// the temporary folder, private to this process, rewritten for every input.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

struct FuzzScratch {
  std::string path;
  ~FuzzScratch() { ::unlink(path.c_str()); }
};

inline const std::string& fuzz_scratch_path(const char* suffix) {
  static const FuzzScratch scratch{[&] {
    const char* tmp = std::getenv("TMPDIR");
    return std::string(tmp && *tmp ? tmp : "/tmp") + "/attnscope-fuzz-" +
           std::to_string(::getpid()) + suffix;
  }()};
  return scratch.path;
}

inline bool fuzz_write_scratch(const std::string& path, const uint8_t* data, size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  const bool ok = std::fwrite(data, 1, size, f) == size;
  return std::fclose(f) == 0 && ok;
}
