// A vectorisable 2^x for the softmax loops of the attention kernels (dense, sparse, LSH).
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace attnscope {

// 2^x for x <= 0 in a form the compiler vectorises (glibc's expf does not vectorise without
// -ffast-math, nor does std::floor here; nearbyint does). Degree-7 Taylor polynomial of 2^r
// on r in [-0.5, 0.5]: relative error below 1e-8, under float rounding. x <= -127 (and
// -inf) gives exactly 0.
inline float exp2_nonpos(float x) {
  x = x > -127.0f ? x : -127.0f;
  const float n = std::nearbyint(x);
  const float r = x - n;
  float p = 1.525273380405984e-05f;
  p = p * r + 1.5403530393381608e-04f;
  p = p * r + 1.3333558146428443e-03f;
  p = p * r + 9.618129107628477e-03f;
  p = p * r + 5.550410866482158e-02f;
  p = p * r + 2.402265069591007e-01f;
  p = p * r + 6.931471805599453e-01f;
  p = p * r + 1.0f;
  const int32_t e = (static_cast<int32_t>(n) + 127) << 23;
  return p * std::bit_cast<float>(e);
}

}  // namespace attnscope
