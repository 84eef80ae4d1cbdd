// Shared helpers of the family tests: random token sequences, the relative error used for
// decode-vs-forward comparisons, and the logits of decoding a whole sequence step by step.
#pragma once

#include <QtGlobal>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "attnscope/model.h"
#include "core/rng.h"

inline std::vector<uint8_t> random_tokens(uint64_t seed, int64_t n) {
  attnscope::Rng rng(seed);
  std::vector<uint8_t> x(static_cast<size_t>(n));
  for (auto& t : x) t = static_cast<uint8_t>(rng.next_u64() & 0xff);
  return x;
}

// max |a - b| / max(1, |b|) over count values.
inline double max_err(const float* a, const float* b, int64_t count) {
  double e = 0.0;
  for (int64_t i = 0; i < count; ++i)
    e = std::max(e,
                 std::abs(static_cast<double>(a[i]) - b[i]) / std::max(1.0, std::abs(1.0 * b[i])));
  return e;
}

// (n, 256) logits of decode steps over x[0..n).
inline std::vector<float> decode_all(const attnscope::Model& m, const std::vector<uint8_t>& x,
                                     int64_t n) {
  std::vector<float> out(static_cast<size_t>(n * attnscope::kVocab));
  auto st = m.decode_begin();
  for (int64_t p = 0; p < n; ++p) {
    attnscope::Status s = m.decode_step(*st, p > 0 ? x[static_cast<size_t>(p - 1)] : -1,
                                        &out[static_cast<size_t>(p * attnscope::kVocab)]);
    Q_ASSERT(s.is_ok());
    (void)s;
  }
  return out;
}
