// The CUDA kernels' host-pointer entry points, for the parity tests only
// (tests/engine/test_cuda_parity.cpp, test_cuda_train.cpp): each copies its inputs to the
// device, runs the kernel the device executor runs, and copies the results back. Like cuda.h,
// every function exists in every build and answers unsupported with the reason where there is
// no CUDA (backend/cuda/absent.cpp). Not part of the public API.
#pragma once

#include <cstdint>

#include "attnscope/attention.h"
#include "attnscope/config.h"
#include "attnscope/cuda.h"
#include "attnscope/status.h"

namespace attnscope {

// ---- ops (host pointers), the same shapes and semantics as the CPU ops -----------------
// c (m, n) = a (m, k) · b (k, n) through cuBLAS (cuBLASLt for bf16).
Status cuda_matmul(const float* a, const float* b, float* c, int64_t m, int64_t k, int64_t n,
                   CudaPrecision p);
Status cuda_layernorm(const float* x, const float* g, const float* b, float* y, int64_t n,
                      int64_t D);
Status cuda_gelu(float* x, int64_t count);

// ---- attention (host pointers; layouts as attention.h) -----------------------------------
// Fused causal attention with a query offset (attn_dense_forward_cpu): tiled, online
// softmax, no nq x nk matrix.
Status cuda_attn_dense_forward(const float* q, const float* k, const float* v, float* out,
                               int heads, int64_t nq, int64_t nk, int d, int64_t q_offset,
                               CudaPrecision p);
// Block-sparse (attn_sparse_forward_cpu): empty blocks of the layout never loaded.
Status cuda_attn_sparse_forward(const float* q, const float* k, const float* v, float* out,
                                int heads, int64_t n, int d, const SparseConfig& cfg, int layer,
                                CudaPrecision p);
// Shared-QK LSH (attn_lsh_forward_cpu): hashing, radix sort by (bucket, position),
// chunked attention, round combination. trace may be null.
Status cuda_attn_lsh_forward(const float* qk, const float* v, float* out, int heads, int64_t n,
                             int d, const LshSpec& spec, const float* rotations,
                             LshTrace* trace = nullptr);
// Decode: one query per head against the first n_keys cache rows (attn_dense_decode_cpu).
Status cuda_attn_dense_decode(const float* q, const float* kcache, const float* vcache, float* out,
                              int heads, int64_t cap, int64_t n_keys, int d);
// Decode with the Sparse Transformer pattern of (cfg, layer) for the query at position i: reads
// only the cache rows of A(i) (attn_sparse_decode_cpu); caches hold positions 0..i.
Status cuda_attn_sparse_decode(const float* q, const float* kcache, const float* vcache, float* out,
                               int heads, int64_t cap, int64_t i, int d, const SparseConfig& cfg,
                               int layer);

// ---- backward (training), host pointers ------------------------------------------------
// The same gradients as the CPU training ops (engine/train): every d* output is ADDED to
// (callers zero it first), as the tape accumulates.
// c (m, n) = a (m, k) · b (k, n):  da (m, k) += dc · bᵀ,  db (k, n) += aᵀ · dc (cuBLAS).
Status cuda_matmul_backward(const float* a, const float* b, const float* dc, float* da, float* db,
                            int64_t m, int64_t k, int64_t n, CudaPrecision p);
// y = layernorm(x) * g + b over rows of x (n, D) (eps 1e-5, statistics recomputed from x):
// dx (n, D) += ..., dg (D) += sum over rows of dy * xhat, db (D) += sum over rows of dy.
Status cuda_layernorm_backward(const float* x, const float* g, const float* dy, float* dx,
                               float* dg, float* db, int64_t n, int64_t D);
// y = gelu(x) (tanh form, as ops.h): dx += dy * gelu'(x), count entries.
Status cuda_gelu_backward(const float* x, const float* dy, float* dx, int64_t count);
// Token embedding rows: dtable (256, D) += the rows of dy (n, D) scattered by tokens (n).
Status cuda_embed_backward(const uint8_t* tokens, const float* dy, float* dtable, int64_t n,
                           int64_t D);
// Output head: logits (n, 256), targets (n). *loss_bits = mean over rows of -log2 p(target);
// dlogits (n, 256) += scale * (softmax(logits) - onehot(target)) / n, the gradient of the
// mean loss in nats times scale.
Status cuda_xent_backward(const float* logits, const uint8_t* targets, float* dlogits,
                          double* loss_bits, int64_t n, float scale);
// Fused causal attention backward (tiles recomputed from q, k and the forward's per-row
// logsumexp, no nq x nk matrix; layouts and q_offset as cuda_attn_dense_forward): runs the
// forward for out and the logsumexps, then dq (H, nq, d), dk, dv (H, nk, d) += gradients of
// dout (H, nq, d).
Status cuda_attn_dense_backward(const float* q, const float* k, const float* v, const float* dout,
                                float* dq, float* dk, float* dv, int heads, int64_t nq, int64_t nk,
                                int d, int64_t q_offset, CudaPrecision p);
// Block-sparse backward for the layout of (cfg, layer) (cuda_attn_sparse_forward): empty
// blocks never loaded; dq, dk, dv (H, n, d) += gradients of dout.
Status cuda_attn_sparse_backward(const float* q, const float* k, const float* v, const float* dout,
                                 float* dq, float* dk, float* dv, int heads, int64_t n, int d,
                                 const SparseConfig& cfg, int layer, CudaPrecision p);
// The backward ops the device runs; LSH attention's backward (sort-dependent gather/scatter)
// is declined and runs on the CPU (exec/tape_attn.h).

// ---- sampling --------------------------------------------------------------------------
// One token from logits (256) by Sampler::sample's rules (temperature 0 = argmax, top-k 0 =
// off, top-p in (0, 1]) given the uniform u in [0, 1) that Sampler draws for it: the CPU's
// choice whenever the device's exp agrees with the host's to the last bit.
Expected<int> cuda_sample_token(const float* logits, float temperature, int top_k, float top_p,
                                double u);

}  // namespace attnscope
