// Tensors (float32, row-major, up to 4 dims) and the tracking allocator that counts every
// byte under a category, with current and peak figures for info, benchmarks and views.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace attnscope {

// kGradients and kOptimizer are used by training only (parameter gradients; AdamW moments).
enum class MemCategory : int {
  kWeights = 0,
  kActivations,
  kAttentionScratch,
  kCaches,
  kGradients,
  kOptimizer,
  kCount
};
const char* mem_category_name(MemCategory c);

// Asks the C library to keep freed blocks of up to 32 MiB for reuse instead of handing each back
// to the system at once: a forward allocates and frees the same activation sizes layer after
// layer, and glibc's defaults made every one of them fresh pages (page faults were a tenth of a
// forward's time). Process-wide, so the programs call it at start-up; the engine never does.
void mem_retain_freed_blocks();

// "12.3 MiB": bytes in binary units for people to read.
std::string mem_format_bytes(double bytes);

struct MemCategoryFigures {
  size_t current = 0;
  size_t peak = 0;
};

struct MemSnapshot {
  std::array<MemCategoryFigures, static_cast<size_t>(MemCategory::kCount)> by_category{};
  size_t total_current = 0;
  size_t total_peak = 0;  // peak of the sum, not the sum of peaks
};

// Process-wide byte accounting. Thread-safe (atomics); the engine's only global state,
// because every allocation anywhere must be seen by one ledger.
class MemTracker {
 public:
  static MemTracker& instance();
  void on_alloc(MemCategory c, size_t bytes);
  void on_free(MemCategory c, size_t bytes);
  MemSnapshot snapshot() const;
  // Sets every peak to its current value, so a measurement can start from here.
  void reset_peaks();

 private:
  std::array<std::atomic<size_t>, static_cast<size_t>(MemCategory::kCount)> current_{};
  std::array<std::atomic<size_t>, static_cast<size_t>(MemCategory::kCount)> peak_{};
  std::atomic<size_t> total_{0};
  std::atomic<size_t> total_peak_{0};
};

// Owns or borrows float32 storage. Owned storage is 64-byte aligned and counted by the
// tracker under its category; borrowed storage (a memory-mapped weight) is counted by its
// owner. Copying a Tensor shares the storage.
class Tensor {
 public:
  Tensor() = default;
  // Zero-filled owned tensor. Returns an empty tensor only when shape has a zero dim.
  static Tensor zeros(std::vector<int64_t> shape, MemCategory category);
  // A view over memory someone else keeps alive (keepalive is held by the tensor).
  static Tensor borrow(float* data, std::vector<int64_t> shape, std::shared_ptr<void> keepalive);

  float* data() { return data_; }
  const float* data() const { return data_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_[static_cast<size_t>(i)]; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const;
  bool empty() const { return data_ == nullptr; }
  std::string shape_string() const;

 private:
  std::shared_ptr<void> storage_;
  float* data_ = nullptr;
  std::vector<int64_t> shape_;
};

// A std allocator that counts its bytes under category C, for working memory kept in
// std::vector (attention tiles, sort buffers, decode rows), so the ledger sees every byte.
template <typename T, MemCategory C>
struct TrackedAllocator {
  using value_type = T;
  TrackedAllocator() = default;
  template <typename U>
  TrackedAllocator(const TrackedAllocator<U, C>&) {}
  T* allocate(size_t n) {
    T* p = std::allocator<T>{}.allocate(n);
    MemTracker::instance().on_alloc(C, n * sizeof(T));
    return p;
  }
  void deallocate(T* p, size_t n) {
    MemTracker::instance().on_free(C, n * sizeof(T));
    std::allocator<T>{}.deallocate(p, n);
  }
  template <typename U>
  struct rebind {
    using other = TrackedAllocator<U, C>;
  };
  friend bool operator==(const TrackedAllocator&, const TrackedAllocator&) { return true; }
};
template <typename T>
using ScratchVector = std::vector<T, TrackedAllocator<T, MemCategory::kAttentionScratch>>;
template <typename T>
using ActivationVector = std::vector<T, TrackedAllocator<T, MemCategory::kActivations>>;
template <typename T>
using GradientVector = std::vector<T, TrackedAllocator<T, MemCategory::kGradients>>;

}  // namespace attnscope
