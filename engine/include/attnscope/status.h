// Errors as values: Status (ok or a message a user can act on) and Expected<T>.
// Every public engine call returns one of these; nothing in the engine exits or throws.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace attnscope {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad input from the user: file contents, options, sizes
  kNotFound,         // a file or tensor that does not exist
  kUnsupported,      // valid request this build or backend cannot serve
  kCancelled,        // the caller asked to stop
  kInternal,         // a runtime failure (allocation, I/O)
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }
  bool is_ok() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
inline Status not_found(std::string m) {
  return {StatusCode::kNotFound, std::move(m)};
}
inline Status unsupported(std::string m) {
  return {StatusCode::kUnsupported, std::move(m)};
}
inline Status cancelled(std::string m) {
  return {StatusCode::kCancelled, std::move(m)};
}
inline Status internal_error(std::string m) {
  return {StatusCode::kInternal, std::move(m)};
}

// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}
  Expected(Status status) : v_(std::move(status)) {}

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  Status status() const { return has_value() ? Status::ok() : std::get<1>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace attnscope

// Returns the Status of an expression early when it is not ok.
#define ATTN_RETURN_IF_ERROR(expr)    \
  do {                                \
    ::attnscope::Status _st = (expr); \
    if (!_st.is_ok()) return _st;     \
  } while (0)
