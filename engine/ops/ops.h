// Dense ops on the CPU shared by every family: matrix products (oneDNN sgemm), layer norm,
// GELU, head split/merge, softmax helpers. Shapes are given in each comment; all row-major.
#pragma once

#include <cstdint>

namespace attnscope {

// c (m, n) = a (m, k) · b (k, n), or c += a · b when accumulate. Small m (decode) uses a
// vectorised loop; larger m goes to oneDNN's sgemm.
void op_matmul(const float* a, const float* b, float* c, int64_t m, int64_t k, int64_t n,
               bool accumulate = false);
// c (m, n) = a (m, k) · b (n, k)^T: scores from queries and keys.
void op_matmul_nt(const float* a, const float* b, float* c, int64_t m, int64_t k, int64_t n);
// y (n, D) = (x - mean) / sqrt(var + 1e-5) * g + b, per row.
void op_layernorm(const float* x, const float* g, const float* b, float* y, int64_t n, int64_t D);
// In place, tanh approximation (GPT-2's).
void op_gelu(float* x, int64_t count);
// y (rows, n) += bias (n) on every row.
void op_add_bias(float* y, const float* bias, int64_t rows, int64_t n);
// y += x, count elements.
void op_add(float* y, const float* x, int64_t count);
// x (n, H*d) -> out (H, n, d).
void op_split_heads(const float* x, float* out, int64_t n, int heads, int d);
// x (H, n, d) -> out (n, H*d).
void op_merge_heads(const float* x, float* out, int64_t n, int heads, int d);
// Writes log-softmax of x (count) into y; returns logsumexp.
double op_log_softmax(const float* x, float* y, int count);

}  // namespace attnscope
