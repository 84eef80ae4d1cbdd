// Output files that appear complete or not at all: each is written to a temporary file beside its
// target, flushed, and renamed over the target only when its set is committed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "attnscope/status.h"

namespace attnscope {

// Appends n bytes to the file being written.
using FileAppender = std::function<Status(const void* data, size_t n)>;

// Files added one by one and renamed into place together by commit(); whatever was not committed
// is removed by the destructor. Until commit() every target is left as it was.
class AtomicFileSet {
 public:
  // The committed files get 0666 less the umask, the mode a plain open() would give them.
  AtomicFileSet() = default;
  // The committed files get exactly these permission bits (e.g. 0644).
  explicit AtomicFileSet(unsigned mode) : mode_(static_cast<int>(mode & 07777)) {}
  AtomicFileSet(const AtomicFileSet&) = delete;
  AtomicFileSet& operator=(const AtomicFileSet&) = delete;
  ~AtomicFileSet();

  // Writes bytes to a temporary file beside path (".NAME.tmp-XXXXXX") and flushes it to disk.
  // Fails, leaving no temporary file, when the folder does not exist (kNotFound) or refuses
  // the file or the bytes (kInternal); the message names the folder or the file.
  Status add(const std::string& path, const std::vector<uint8_t>& bytes);
  // As add(), for contents too large to hold twice: fill hands them to append piece by piece.
  // A failure of fill (its Status, or an exception it throws) fails the add the same way.
  Status add_streamed(const std::string& path,
                      const std::function<Status(const FileAppender& append)>& fill);
  // Renames every added file over its target, in the order added. When a rename fails, the
  // targets already renamed are removed and the temporary files left are removed: the outputs
  // of one set appear all together or not at all.
  Status commit();

 private:
  struct Entry {
    std::string temp, target;
  };
  std::vector<Entry> entries_;
  int mode_ = -1;  // -1: 0666 less the umask
};

// One file through an AtomicFileSet of mode 0644: path is either untouched or complete.
Status atomic_write_file(const std::string& path, const std::vector<uint8_t>& bytes);

}  // namespace attnscope
