// What the CUDA parity tests share: tolerances per precision, random inputs, the relative error
// max |gpu - cpu| / max |cpu| over a tensor, and the QVERIFY-based checks built on them.
#pragma once

#include <QtTest>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "attnscope/cuda.h"
#include "core/rng.h"

namespace cuda_checks {

// The exit code of a test that cannot run here (no CUDA build or device): CTest's
// SKIP_RETURN_CODE for every test, so it is reported as skipped, not passed.
constexpr int kSkipExit = 77;

// - float32: the same float arithmetic in another summation order (and exp2f for the CPU's
//   polynomial 2^x): differences of a few ulps times the reduction length, far below 1e-4.
constexpr double kTolF32 = 1e-4;
// - TF32: tensor cores round both operands to 10 mantissa bits (relative 2^-11 ~ 4.9e-4 per
//   operand); over sums of hundreds of terms of random sign the error stays under 5e-3.
constexpr double kTolTF32 = 5e-3;
// - bf16: operands (and attention probabilities) rounded to 8 mantissa bits (2^-9 ~ 2e-3 per
//   operand), float32 accumulation: 2e-2 bounds the accumulated relative error.
constexpr double kTolBF16 = 2e-2;

inline double tol_of(attnscope::CudaPrecision p) {
  using attnscope::CudaPrecision;
  return p == CudaPrecision::kF32 ? kTolF32 : p == CudaPrecision::kTF32 ? kTolTF32 : kTolBF16;
}

inline const attnscope::CudaPrecision kAll[] = {attnscope::CudaPrecision::kF32,
                                                attnscope::CudaPrecision::kTF32,
                                                attnscope::CudaPrecision::kBF16};

inline std::vector<float> random_vec(uint64_t seed, size_t count, double scale = 1.0) {
  attnscope::Rng rng(seed);
  std::vector<float> x(count);
  for (float& v : x) v = static_cast<float>(scale * rng.normal());
  return x;
}

template <typename A, typename B>
double rel_err(const A& got, const B& want) {
  double diff = 0.0, top = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(got[i]) - static_cast<double>(want[i])));
    top = std::max(top, std::abs(static_cast<double>(want[i])));
  }
  return top > 0.0 ? diff / top : diff;
}

}  // namespace cuda_checks

#define CHECK_OK(expr)                                                        \
  do {                                                                        \
    const ::attnscope::Status _s = (expr);                                    \
    QVERIFY2(_s.is_ok(), (std::string(#expr) + ": " + _s.message()).c_str()); \
  } while (0)

#define CHECK_CLOSE(got, want, tol, what)                                                         \
  do {                                                                                            \
    const double _e = ::cuda_checks::rel_err(got, want);                                          \
    QVERIFY2(_e <= (tol), (std::string(what) + ": relative error " + std::to_string(_e) + " > " + \
                           std::to_string(tol))                                                   \
                              .c_str());                                                          \
  } while (0)
