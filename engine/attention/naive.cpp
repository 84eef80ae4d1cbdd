// The float64 oracle: attention under an arbitrary mask, computed row by row in double.
// Every other attention kind is tested against it with its own mask.
#include <cmath>
#include <limits>
#include <vector>

#include "attnscope/attention.h"

namespace attnscope {

// q is (H, nq, d); k, v are (H, nk, d); out is (H, nq, d).
void attn_naive_forward_f64(const double* q, const double* k, const double* v, double* out,
                            int heads, int64_t nq, int64_t nk, int d, const AttnMask& allowed) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<double> s(static_cast<size_t>(nk));
  std::vector<char> ok(static_cast<size_t>(nk));
  for (int h = 0; h < heads; ++h) {
    const double* qh = q + static_cast<int64_t>(h) * nq * d;
    const double* kh = k + static_cast<int64_t>(h) * nk * d;
    const double* vh = v + static_cast<int64_t>(h) * nk * d;
    for (int64_t i = 0; i < nq; ++i) {
      double* o = out + (static_cast<int64_t>(h) * nq + i) * d;
      for (int c = 0; c < d; ++c) o[c] = 0.0;
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < nk; ++j) {
        ok[j] = allowed(h, i, j) ? 1 : 0;
        if (!ok[j]) continue;
        double dot = 0.0;
        for (int c = 0; c < d; ++c) dot += qh[i * d + c] * kh[j * d + c];
        s[j] = dot * scale;
        mx = std::max(mx, s[j]);
      }
      if (mx == -std::numeric_limits<double>::infinity()) continue;
      double sum = 0.0;
      for (int64_t j = 0; j < nk; ++j) {
        if (!ok[j]) continue;
        const double p = std::exp(s[j] - mx);
        sum += p;
        for (int c = 0; c < d; ++c) o[c] += p * vh[j * d + c];
      }
      for (int c = 0; c < d; ++c) o[c] /= sum;
    }
  }
}

}  // namespace attnscope
