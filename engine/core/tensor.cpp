// Tensor storage and the process-wide memory ledger.
#include "attnscope/tensor.h"

#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace attnscope {

const char* mem_category_name(MemCategory c) {
  switch (c) {
    case MemCategory::kWeights:
      return "weights";
    case MemCategory::kActivations:
      return "activations";
    case MemCategory::kAttentionScratch:
      return "attention scratch";
    case MemCategory::kCaches:
      return "caches";
    case MemCategory::kGradients:
      return "gradients";
    case MemCategory::kOptimizer:
      return "optimizer state";
    case MemCategory::kCount:
      break;
  }
  return "?";
}

std::string mem_format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 4) {
    bytes /= 1024.0;
    ++u;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

MemTracker& MemTracker::instance() {
  static MemTracker tracker;
  return tracker;
}

static void raise_peak(std::atomic<size_t>& peak, size_t value) {
  size_t seen = peak.load(std::memory_order_relaxed);
  while (value > seen && !peak.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
  }
}

void MemTracker::on_alloc(MemCategory c, size_t bytes) {
  auto i = static_cast<size_t>(c);
  raise_peak(peak_[i], current_[i].fetch_add(bytes, std::memory_order_relaxed) + bytes);
  raise_peak(total_peak_, total_.fetch_add(bytes, std::memory_order_relaxed) + bytes);
}

void MemTracker::on_free(MemCategory c, size_t bytes) {
  current_[static_cast<size_t>(c)].fetch_sub(bytes, std::memory_order_relaxed);
  total_.fetch_sub(bytes, std::memory_order_relaxed);
}

MemSnapshot MemTracker::snapshot() const {
  MemSnapshot s;
  for (size_t i = 0; i < s.by_category.size(); ++i) {
    s.by_category[i].current = current_[i].load(std::memory_order_relaxed);
    s.by_category[i].peak = peak_[i].load(std::memory_order_relaxed);
  }
  s.total_current = total_.load(std::memory_order_relaxed);
  s.total_peak = total_peak_.load(std::memory_order_relaxed);
  return s;
}

void MemTracker::reset_peaks() {
  for (size_t i = 0; i < peak_.size(); ++i) peak_[i].store(current_[i].load());
  total_peak_.store(total_.load());
}

int64_t Tensor::numel() const {
  if (shape_.empty()) return 0;
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

std::string Tensor::shape_string() const {
  std::string s = "(";
  for (size_t i = 0; i < shape_.size(); ++i) s += (i ? ", " : "") + std::to_string(shape_[i]);
  return s + ")";
}

Tensor Tensor::zeros(std::vector<int64_t> shape, MemCategory category) {
  Tensor t;
  t.shape_ = std::move(shape);
  int64_t n = t.numel();
  if (n <= 0) return t;
  size_t bytes = static_cast<size_t>(n) * sizeof(float);
  size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, rounded);
  MemTracker::instance().on_alloc(category, bytes);
  t.storage_ = std::shared_ptr<void>(p, [bytes, category](void* q) {
    std::free(q);
    MemTracker::instance().on_free(category, bytes);
  });
  t.data_ = static_cast<float*>(p);
  return t;
}

Tensor Tensor::borrow(float* data, std::vector<int64_t> shape, std::shared_ptr<void> keepalive) {
  Tensor t;
  t.shape_ = std::move(shape);
  t.data_ = data;
  t.storage_ = std::move(keepalive);
  return t;
}

void mem_retain_freed_blocks() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

}  // namespace attnscope
