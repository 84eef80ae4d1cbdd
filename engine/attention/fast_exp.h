// Vectorisable 2^x (the softmax loops of the attention kernels: dense, sparse, LSH) and tanh
// (GELU, inference and training).
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

// tanh(x) in a form the compiler vectorises (glibc's tanhf does not): with e = exp(-2|x|)
// from exp2_nonpos, tanh|x| = (1 - e) / (1 + e), sign restored. Within 2e-7 of std::tanh over
// all x (absolute; relative near 0 is looser, which GELU's 0.5 x (1 + tanh) never sees);
// exactly +-1 for |x| >= 44.
inline float tanh_vec(float x) {
  const float a = std::fabs(x);
  const float e = exp2_nonpos(-2.885390081777927f * a);  // -2 |x| log2(e)
  const float t = (1.0f - e) / (1.0f + e);
  return std::copysign(t, x);
}

// tanh(x) and its derivative 1 - tanh(x)^2 = 4 e / (1 + e)^2 (e as in tanh_vec), the latter
// without the cancellation of 1 - t*t where |t| nears 1 (GELU's backward).
inline void tanh_sech2_vec(float x, float* t, float* sech2) {
  const float e = exp2_nonpos(-2.885390081777927f * std::fabs(x));
  const float r = 1.0f / (1.0f + e);
  *t = std::copysign((1.0f - e) * r, x);
  *sech2 = 4.0f * e * r * r;
}

}  // namespace attnscope
