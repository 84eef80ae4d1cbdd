// The Sparse Transformer's key sets, written once for every executor: which set a
// (layer, head) uses, whether query i may read key j, how many keys A(i) holds and its t-th
// key in the decode order. The CPU kernels (sparse.cpp) and the CUDA decode kernel
// (backend/cuda/attn_decode.cu) both call these; they are plain inline functions, marked
// __host__ __device__ when nvcc compiles them.
//
// Definitions (Child et al. 2019, with the released code's local window):
//   strided  A1(i) = {max(0, i-l+1) .. i}            A2(i) = {j <= i : (i-j) mod l = 0}
//   fixed    A1(i) = {j <= i : j/l = i/l}            A2(i) = {j <= i : j mod l >= l - c}
// The union's A2 part is strictly earlier (strided: i - k l, k >= 1; fixed: the summary
// columns of earlier blocks), so A1 and that part are disjoint.
#pragma once

#include <cstdint>

#include "attnscope/attention.h"
#include "core/host_device.h"

namespace attnscope::detail {

// One head's pattern: strided or fixed, stride l, summary c (fixed only), its set.
struct SparseKeys {
  bool strided = true;
  int64_t l = 1, c = 1;
  SparseSet set = SparseSet::kUnion;
};

ATTN_HOST_DEVICE inline SparseSet sparse_head_set(SparseCombine combine, int layer, int head,
                                                  int heads) {
  if (combine == SparseCombine::kInterleaved)
    return layer % 2 == 0 ? SparseSet::kA1 : SparseSet::kA2;
  if (combine == SparseCombine::kMerged || heads == 1) return SparseSet::kUnion;
  return head < heads / 2 ? SparseSet::kA1 : SparseSet::kA2;  // per head: half and half
}

ATTN_HOST_DEVICE inline SparseKeys sparse_keys_of(const SparseConfig& cfg, SparseSet set) {
  SparseKeys p;
  p.strided = cfg.pattern == SparsePattern::kStrided;
  p.l = cfg.stride;
  p.c = cfg.summary;
  p.set = set;
  return p;
}

ATTN_HOST_DEVICE inline bool sparse_key_allowed(const SparseKeys& p, int64_t i, int64_t j) {
  if (j > i || j < 0) return false;
  const bool a1 = p.strided ? j >= i - p.l + 1 : j / p.l == i / p.l;
  const bool a2 = p.strided ? (i - j) % p.l == 0 : j % p.l >= p.l - p.c;
  return p.set == SparseSet::kA1 ? a1 : p.set == SparseSet::kA2 ? a2 : (a1 || a2);
}

// |A(i)| for i >= 0.
ATTN_HOST_DEVICE inline int64_t sparse_key_count(const SparseKeys& p, int64_t i) {
  const int64_t l = p.l;
  if (p.strided) {
    const int64_t lo1 = i - l + 1 > 0 ? i - l + 1 : 0;
    const int64_t n1 = p.set != SparseSet::kA2 ? i - lo1 + 1 : 0;
    const int64_t n2 = p.set == SparseSet::kA1 ? 0 : p.set == SparseSet::kA2 ? i / l + 1 : i / l;
    return n1 + n2;
  }
  const int64_t own = i / l * l, c = p.c, tail = i % l - (l - c) + 1;
  const int64_t n1 = p.set != SparseSet::kA2 ? i - own + 1 : 0;
  const int64_t n2 = p.set == SparseSet::kA1   ? 0
                     : p.set == SparseSet::kA2 ? i / l * c + (tail > 0 ? tail : 0)
                                               : i / l * c;
  return n1 + n2;
}

// The t-th key of A(i), 0 <= t < sparse_key_count(p, i): A1's keys in ascending order, then
// the A2 part (strided: descending from i, or from i - l in the union; fixed: the summary
// columns in ascending order).
ATTN_HOST_DEVICE inline int64_t sparse_key_at(const SparseKeys& p, int64_t i, int64_t t) {
  const int64_t l = p.l;
  if (p.strided) {
    const int64_t lo1 = i - l + 1 > 0 ? i - l + 1 : 0;
    const int64_t n1 = p.set != SparseSet::kA2 ? i - lo1 + 1 : 0;
    if (t < n1) return lo1 + t;
    const int64_t u = t - n1;
    return p.set == SparseSet::kA2 ? i - u * l : i - (u + 1) * l;
  }
  const int64_t own = i / l * l, c = p.c;
  const int64_t n1 = p.set != SparseSet::kA2 ? i - own + 1 : 0;
  if (t < n1) return own + t;
  const int64_t u = t - n1;
  return u / c * l + (l - c) + u % c;
}

}  // namespace attnscope::detail
