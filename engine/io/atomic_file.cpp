// AtomicFileSet (see attnscope/atomic_file.h): temporary files beside their targets, written,
// flushed and renamed into place together, and removed on every path that does not commit.
#include "attnscope/atomic_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>

namespace attnscope {

namespace {

Status write_error(const std::string& path, int err) {
  return internal_error("cannot write '" + path + "': " + std::strerror(err));
}

Status write_all(int fd, const std::string& path, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return write_error(path, w < 0 ? errno : EIO);
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::ok();
}

mode_t umask_mode() {
  const mode_t mask = ::umask(0);
  ::umask(mask);
  return 0666 & ~mask;
}

}  // namespace

AtomicFileSet::~AtomicFileSet() {
  for (const Entry& e : entries_) ::unlink(e.temp.c_str());
}

Status AtomicFileSet::add(const std::string& path, const std::vector<uint8_t>& bytes) {
  return add_streamed(
      path, [&bytes](const FileAppender& append) { return append(bytes.data(), bytes.size()); });
}

Status AtomicFileSet::add_streamed(const std::string& path,
                                   const std::function<Status(const FileAppender& append)>& fill) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string name = ".";  // built by appending: GCC 12 misreads "." + string (-Wrestrict)
  name += target.filename().string();
  name += ".tmp-XXXXXX";
  // Registered before the file exists: whatever happens next, the destructor can remove it.
  entries_.push_back({(dir / name).string(), path});
  std::string& temp = entries_.back().temp;
  const int fd = ::mkstemp(temp.data());
  if (fd < 0) {
    const int err = errno;
    entries_.pop_back();
    std::string why =
        "cannot create a temporary file in '" + dir.string() + "': " + std::strerror(err);
    return err == ENOENT ? not_found(std::move(why)) : internal_error(std::move(why));
  }

  Status st;
  try {
    st = fill([fd, &path](const void* data, size_t n) { return write_all(fd, path, data, n); });
  } catch (const std::exception& e) {
    st = internal_error("cannot write '" + path + "': " + e.what());
  }
  const mode_t mode = mode_ >= 0 ? static_cast<mode_t>(mode_) : umask_mode();
  if (st.is_ok() && (::fchmod(fd, mode) != 0 || ::fsync(fd) != 0)) st = write_error(path, errno);
  if (::close(fd) != 0 && st.is_ok()) st = write_error(path, errno);
  if (!st.is_ok()) {
    ::unlink(temp.c_str());
    entries_.pop_back();
  }
  return st;
}

Status AtomicFileSet::commit() {
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (std::rename(entries_[i].temp.c_str(), entries_[i].target.c_str()) != 0) {
      const int err = errno;
      for (size_t j = 0; j < i; ++j) ::unlink(entries_[j].target.c_str());
      for (size_t j = i; j < entries_.size(); ++j) ::unlink(entries_[j].temp.c_str());
      const std::string target = entries_[i].target;
      entries_.clear();
      return internal_error("cannot move the output into '" + target + "': " + std::strerror(err));
    }
  }
  entries_.clear();
  return Status::ok();
}

Status atomic_write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  AtomicFileSet file(0644);
  ATTN_RETURN_IF_ERROR(file.add(path, bytes));
  return file.commit();
}

}  // namespace attnscope
