// CPU implementations of the shared dense ops. Matrix products go to oneDNN (measured here
// at 160-175 GFLOP/s on one core); tiny products (one decode row) stay in a plain loop that
// the compiler vectorises, because sgemm's setup costs more than the work.
#include "ops/ops.h"

#include <oneapi/dnnl/dnnl.h>

#include <cmath>
#include <cstring>

#include "attention/fast_exp.h"

namespace attnscope {

void op_matmul(const float* a, const float* b, float* c, int64_t m, int64_t k, int64_t n,
               bool accumulate) {
  if (m <= 4) {
    for (int64_t r = 0; r < m; ++r) {
      float* cr = c + r * n;
      if (!accumulate) std::memset(cr, 0, sizeof(float) * static_cast<size_t>(n));
      const float* ar = a + r * k;
      for (int64_t i = 0; i < k; ++i) {
        const float av = ar[i];
        const float* br = b + i * n;
        for (int64_t j = 0; j < n; ++j) cr[j] += av * br[j];
      }
    }
    return;
  }
  dnnl_sgemm('N', 'N', m, n, k, 1.0f, a, k, b, n, accumulate ? 1.0f : 0.0f, c, n);
}

void op_matmul_nt(const float* a, const float* b, float* c, int64_t m, int64_t k, int64_t n) {
  dnnl_sgemm('N', 'T', m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
}

void op_layernorm(const float* x, const float* g, const float* b, float* y, int64_t n, int64_t D) {
  for (int64_t r = 0; r < n; ++r) {
    const float* xr = x + r * D;
    float* yr = y + r * D;
    double mean = 0, var = 0;
    for (int64_t i = 0; i < D; ++i) mean += xr[i];
    mean /= static_cast<double>(D);
    for (int64_t i = 0; i < D; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    var /= static_cast<double>(D);
    const float inv = static_cast<float>(1.0 / std::sqrt(var + 1e-5));
    const float mu = static_cast<float>(mean);
    for (int64_t i = 0; i < D; ++i) yr[i] = (xr[i] - mu) * inv * g[i] + b[i];
  }
}

void op_gelu(float* x, int64_t count) {
  const float k = 0.7978845608028654f;  // sqrt(2/pi)
#pragma omp simd
  for (int64_t i = 0; i < count; ++i) {
    float v = x[i];
    x[i] = 0.5f * v * (1.0f + tanh_vec(k * (v + 0.044715f * v * v * v)));
  }
}

void op_add_bias(float* y, const float* bias, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) y[r * n + j] += bias[j];
}

void op_add(float* y, const float* x, int64_t count) {
  for (int64_t i = 0; i < count; ++i) y[i] += x[i];
}

void op_split_heads(const float* x, float* out, int64_t n, int heads, int d) {
  const int64_t D = static_cast<int64_t>(heads) * d;
  for (int h = 0; h < heads; ++h)
    for (int64_t t = 0; t < n; ++t)
      std::memcpy(out + (h * n + t) * d, x + t * D + h * d, sizeof(float) * static_cast<size_t>(d));
}

void op_merge_heads(const float* x, float* out, int64_t n, int heads, int d) {
  const int64_t D = static_cast<int64_t>(heads) * d;
  for (int h = 0; h < heads; ++h)
    for (int64_t t = 0; t < n; ++t)
      std::memcpy(out + t * D + h * d, x + (h * n + t) * d, sizeof(float) * static_cast<size_t>(d));
}

double op_log_softmax(const float* x, float* y, int count) {
  float mx = x[0];
  for (int i = 1; i < count; ++i) mx = x[i] > mx ? x[i] : mx;
  double s = 0;
  for (int i = 0; i < count; ++i) s += std::exp(static_cast<double>(x[i] - mx));
  const double lse = mx + std::log(s);
  for (int i = 0; i < count; ++i) y[i] = static_cast<float>(x[i] - lse);
  return lse;
}

}  // namespace attnscope
