// The CUDA backend's entry points for parity tests and benchmarks (models on the device and
// where a model runs: backend.h). Every
// function exists in every build: without CUDA (or without a device) it returns an
// unsupported / not-found Status whose message says why, so callers print a SKIP line.
// Host-pointer functions copy inputs to the device, run the kernel, and copy results back.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "attnscope/attention.h"
#include "attnscope/config.h"
#include "attnscope/status.h"

namespace attnscope {

// Arithmetic of matrix products and attention: float32, TF32 tensor cores (float32
// storage), or bf16 storage with float32 accumulation.
enum class CudaPrecision { kF32, kTF32, kBF16 };
const char* cuda_precision_name(CudaPrecision p);
Expected<CudaPrecision> cuda_precision_from_name(const std::string& s);

// Device discovery, for backend_select (backend.h) and every caller deciding where to run.
// Number of CUDA devices; 0 when the build has no CUDA or there is no driver or device.
int backend_cuda_device_count(std::string* why_none);
// Whether the CUDA backend runs an op (names as engine/backend/cuda/device.cu lists them:
// "attn_dense", "attn_sparse_backward", "decode_lsh", ...); false for every op in a build
// without CUDA. What it declines runs on the CPU: the Reformer's decode ("decode_lsh") and
// LSH attention's backward ("attn_lsh_backward").
bool backend_cuda_supports(const char* op_name);

// ok when a device answers; else why not ("this build has no CUDA backend", "no CUDA
// device: ..."). Device name, compute capability and driver version in *info.
Status cuda_available(std::string* info = nullptr);

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

// ---- benchmarks (device-resident data, CUDA events) ----------------------------------------
struct CudaBenchRow {
  std::string what;  // "dense causal", "block-sparse strided", "bf16 gemm"
  int64_t n = 0;
  int heads = 0, d = 0;
  double ms = 0;       // median of timed runs
  double tflops = 0;   // counted as 4 * N^2 * H * d / 2 for causal attention
  double density = 1;  // block-sparse: share of the causal pairs evaluated
};
// Dense causal forward at each length for head widths in ds (bf16 unless p says otherwise),
// block-sparse (strided, l = sqrt N) at the same lengths, and a bf16 GEMM rate of the same
// run as the hardware anchor.
Expected<std::vector<CudaBenchRow>> cuda_bench_attention(const std::vector<int64_t>& lengths,
                                                         const std::vector<int>& ds,
                                                         int total_width, CudaPrecision p);

}  // namespace attnscope
