// The host-pointer functions of attnscope/cuda.h and backend/cuda/testing.h: device discovery,
// precision names, and ops that copy their inputs to the device, run the device op of kernels.cuh
// on a per-thread context and copy the result back. Every buffer is allocated before anything is
// copied, so an impossible size fails with the allocation's Status (file:line) before touching
// memory.
#include <algorithm>
#include <cctype>
#include <climits>

#include "backend/cuda/common.cuh"

namespace attnscope {

Status cuda_available(std::string* info) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the non-sticky error
    return unsupported(std::string("no CUDA device: ") + cudaGetErrorString(err));
  }
  if (count == 0) return unsupported("no CUDA device");
  int dev = 0;
  ATTN_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp prop{};
  ATTN_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  int driver = 0;
  ATTN_CUDA_CHECK(cudaDriverGetVersion(&driver));
  const std::string desc = std::string(prop.name) + ", compute capability " +
                           std::to_string(prop.major) + "." + std::to_string(prop.minor) +
                           ", driver " + std::to_string(driver / 1000) + "." +
                           std::to_string(driver % 1000 / 10);
  if (info) *info = desc;
  if (prop.major < 9)
    return unsupported("CUDA device " + desc +
                       ": this build has code for sm_90 and newer (PTX compute_90) only");
  return Status::ok();
}

namespace cuda {

Expected<CudaCtx*> host_ctx() {
  thread_local std::unique_ptr<CudaCtx> ctx;
  if (!ctx) {
    ATTN_RETURN_IF_ERROR(cuda_available());
    auto c = CudaCtx::create(CudaPrecision::kF32);
    if (!c) return c.status();
    ctx = std::move(*c);
  }
  return ctx.get();
}

}  // namespace cuda

using cuda::CudaCtx;
using cuda::DeviceBuffer;

Status cuda_matmul(const float* a, const float* b, float* c, int64_t m, int64_t k, int64_t n,
                   CudaPrecision p) {
  size_t na, nb, nc;
  ATTN_RETURN_IF_ERROR(cuda::element_count("cuda_matmul", {m, k}, &na));
  ATTN_RETURN_IF_ERROR(cuda::element_count("cuda_matmul", {k, n}, &nb));
  ATTN_RETURN_IF_ERROR(cuda::element_count("cuda_matmul", {m, n}, &nc));
  auto ctx = cuda::host_ctx();
  if (!ctx) return ctx.status();
  CudaCtx& x = **ctx;
  DeviceBuffer<float> da, db, dc;
  ATTN_RETURN_IF_ERROR(da.alloc(na));
  ATTN_RETURN_IF_ERROR(db.alloc(nb));
  ATTN_RETURN_IF_ERROR(dc.alloc(nc));
  ATTN_RETURN_IF_ERROR(da.upload(a, na, x.stream));
  ATTN_RETURN_IF_ERROR(db.upload(b, nb, x.stream));
  ATTN_RETURN_IF_ERROR(cuda::matmul(x, da.get(), db.get(), dc.get(), m, k, n, p));
  ATTN_RETURN_IF_ERROR(dc.download(c, nc, x.stream));
  return x.sync();
}

Status cuda_layernorm(const float* xh, const float* g, const float* b, float* y, int64_t n,
                      int64_t D) {
  size_t nx, nd;
  ATTN_RETURN_IF_ERROR(cuda::element_count("cuda_layernorm", {n, D}, &nx));
  ATTN_RETURN_IF_ERROR(cuda::element_count("cuda_layernorm", {D}, &nd));
  auto ctx = cuda::host_ctx();
  if (!ctx) return ctx.status();
  CudaCtx& x = **ctx;
  DeviceBuffer<float> dx, dg, db;
  ATTN_RETURN_IF_ERROR(dx.alloc(nx));
  ATTN_RETURN_IF_ERROR(dg.alloc(nd));
  ATTN_RETURN_IF_ERROR(db.alloc(nd));
  ATTN_RETURN_IF_ERROR(dx.upload(xh, nx, x.stream));
  ATTN_RETURN_IF_ERROR(dg.upload(g, nd, x.stream));
  ATTN_RETURN_IF_ERROR(db.upload(b, nd, x.stream));
  ATTN_RETURN_IF_ERROR(cuda::layernorm(x, dx.get(), dg.get(), db.get(), dx.get(), n, D));
  ATTN_RETURN_IF_ERROR(dx.download(y, nx, x.stream));
  return x.sync();
}

Status cuda_gelu(float* xh, int64_t count) {
  size_t nx;
  ATTN_RETURN_IF_ERROR(cuda::element_count("cuda_gelu", {count}, &nx));
  auto ctx = cuda::host_ctx();
  if (!ctx) return ctx.status();
  CudaCtx& x = **ctx;
  DeviceBuffer<float> dx;
  ATTN_RETURN_IF_ERROR(dx.alloc(nx));
  ATTN_RETURN_IF_ERROR(dx.upload(xh, nx, x.stream));
  ATTN_RETURN_IF_ERROR(cuda::gelu(x, dx.get(), count));
  ATTN_RETURN_IF_ERROR(dx.download(xh, nx, x.stream));
  return x.sync();
}

Status cuda_attn_dense_forward(const float* q, const float* k, const float* v, float* out,
                               int heads, int64_t nq, int64_t nk, int d, int64_t q_offset,
                               CudaPrecision p) {
  size_t nqe, nke;
  ATTN_RETURN_IF_ERROR(cuda::element_count("cuda_attn_dense_forward", {heads, nq, d}, &nqe));
  ATTN_RETURN_IF_ERROR(cuda::element_count("cuda_attn_dense_forward", {heads, nk, d}, &nke));
  auto ctx = cuda::host_ctx();
  if (!ctx) return ctx.status();
  CudaCtx& x = **ctx;
  DeviceBuffer<float> dq, dk, dv, dout;
  ATTN_RETURN_IF_ERROR(dq.alloc(nqe));
  ATTN_RETURN_IF_ERROR(dk.alloc(nke));
  ATTN_RETURN_IF_ERROR(dv.alloc(nke));
  ATTN_RETURN_IF_ERROR(dout.alloc(nqe));
  ATTN_RETURN_IF_ERROR(dq.upload(q, nqe, x.stream));
  ATTN_RETURN_IF_ERROR(dk.upload(k, nke, x.stream));
  ATTN_RETURN_IF_ERROR(dv.upload(v, nke, x.stream));
  ATTN_RETURN_IF_ERROR(
      cuda::attn_dense(x, dq.get(), dk.get(), dv.get(), dout.get(), heads, nq, nk, d, q_offset, p));
  ATTN_RETURN_IF_ERROR(dout.download(out, nqe, x.stream));
  return x.sync();
}

Status cuda_attn_sparse_forward(const float* q, const float* k, const float* v, float* out,
                                int heads, int64_t n, int d, const SparseConfig& cfg, int layer,
                                CudaPrecision p) {
  size_t ne;
  ATTN_RETURN_IF_ERROR(cuda::element_count("cuda_attn_sparse_forward", {heads, n, d}, &ne));
  auto ctx = cuda::host_ctx();
  if (!ctx) return ctx.status();
  CudaCtx& x = **ctx;
  auto plan = cuda::sparse_plan(cfg, layer, heads, n);
  if (!plan) return plan.status();
  DeviceBuffer<float> dq, dk, dv, dout;
  ATTN_RETURN_IF_ERROR(dq.alloc(ne));
  ATTN_RETURN_IF_ERROR(dk.alloc(ne));
  ATTN_RETURN_IF_ERROR(dv.alloc(ne));
  ATTN_RETURN_IF_ERROR(dout.alloc(ne));
  ATTN_RETURN_IF_ERROR(dq.upload(q, ne, x.stream));
  ATTN_RETURN_IF_ERROR(dk.upload(k, ne, x.stream));
  ATTN_RETURN_IF_ERROR(dv.upload(v, ne, x.stream));
  ATTN_RETURN_IF_ERROR(
      cuda::attn_sparse(x, **plan, dq.get(), dk.get(), dv.get(), dout.get(), d, p));
  ATTN_RETURN_IF_ERROR(dout.download(out, ne, x.stream));
  return x.sync();
}

Status cuda_attn_lsh_forward(const float* qk, const float* v, float* out, int heads, int64_t n,
                             int d, const LshSpec& spec, const float* rotations, LshTrace* trace) {
  size_t ne, nr, nt;
  ATTN_RETURN_IF_ERROR(cuda::element_count("cuda_attn_lsh_forward", {heads, n, d}, &ne));
  ATTN_RETURN_IF_ERROR(
      cuda::element_count("cuda_attn_lsh_forward", {spec.n_hashes, d, spec.n_buckets / 2}, &nr));
  ATTN_RETURN_IF_ERROR(
      cuda::element_count("cuda_attn_lsh_forward", {heads, spec.n_hashes, n}, &nt));
  auto ctx = cuda::host_ctx();
  if (!ctx) return ctx.status();
  CudaCtx& x = **ctx;
  DeviceBuffer<float> dqk, dv, dout, drot;
  DeviceBuffer<int> dbuckets, dorder;
  ATTN_RETURN_IF_ERROR(dqk.alloc(ne));
  ATTN_RETURN_IF_ERROR(dv.alloc(ne));
  ATTN_RETURN_IF_ERROR(dout.alloc(ne));
  ATTN_RETURN_IF_ERROR(drot.alloc(nr));
  if (trace) {
    ATTN_RETURN_IF_ERROR(dbuckets.alloc(nt));
    ATTN_RETURN_IF_ERROR(dorder.alloc(nt));
  }
  ATTN_RETURN_IF_ERROR(dqk.upload(qk, ne, x.stream));
  ATTN_RETURN_IF_ERROR(dv.upload(v, ne, x.stream));
  ATTN_RETURN_IF_ERROR(drot.upload(rotations, nr, x.stream));
  ATTN_RETURN_IF_ERROR(cuda::attn_lsh(x, dqk.get(), dv.get(), dout.get(), heads, n, d, spec,
                                      drot.get(), trace ? dbuckets.get() : nullptr,
                                      trace ? dorder.get() : nullptr));
  ATTN_RETURN_IF_ERROR(dout.download(out, ne, x.stream));
  if (trace) {
    trace->buckets.assign(nt, 0);
    trace->order.assign(nt, 0);
    ATTN_RETURN_IF_ERROR(dbuckets.download(trace->buckets.data(), nt, x.stream));
    ATTN_RETURN_IF_ERROR(dorder.download(trace->order.data(), nt, x.stream));
  }
  return x.sync();
}

namespace {

// The decode entry points' one staging: q (heads, d) and the caches (heads, cap, d) to the
// device, run(ctx, q, k, v, out) there, out (heads, d) back.
template <typename Run>
Status decode_staged(const char* what, const float* q, const float* kcache, const float* vcache,
                     float* out, int heads, int64_t cap, int d, Run run) {
  size_t nq, nc;
  ATTN_RETURN_IF_ERROR(cuda::element_count(what, {heads, d}, &nq));
  ATTN_RETURN_IF_ERROR(cuda::element_count(what, {heads, cap, d}, &nc));
  auto ctx = cuda::host_ctx();
  if (!ctx) return ctx.status();
  CudaCtx& x = **ctx;
  DeviceBuffer<float> dq, dk, dv, dout;
  ATTN_RETURN_IF_ERROR(dq.alloc(nq));
  ATTN_RETURN_IF_ERROR(dk.alloc(nc));
  ATTN_RETURN_IF_ERROR(dv.alloc(nc));
  ATTN_RETURN_IF_ERROR(dout.alloc(nq));
  ATTN_RETURN_IF_ERROR(dq.upload(q, nq, x.stream));
  ATTN_RETURN_IF_ERROR(dk.upload(kcache, nc, x.stream));
  ATTN_RETURN_IF_ERROR(dv.upload(vcache, nc, x.stream));
  ATTN_RETURN_IF_ERROR(run(x, dq.get(), dk.get(), dv.get(), dout.get()));
  ATTN_RETURN_IF_ERROR(dout.download(out, nq, x.stream));
  return x.sync();
}

}  // namespace

Status cuda_attn_dense_decode(const float* q, const float* kcache, const float* vcache, float* out,
                              int heads, int64_t cap, int64_t n_keys, int d) {
  return decode_staged(
      "cuda_attn_dense_decode", q, kcache, vcache, out, heads, cap, d,
      [&](CudaCtx& x, const float* dq, const float* dk, const float* dv, float* dout) {
        return cuda::attn_decode_dense(x, dq, dk, dv, dout, heads, cap, n_keys, d);
      });
}

Status cuda_attn_sparse_decode(const float* q, const float* kcache, const float* vcache, float* out,
                               int heads, int64_t cap, int64_t i, int d, const SparseConfig& cfg,
                               int layer) {
  return decode_staged(
      "cuda_attn_sparse_decode", q, kcache, vcache, out, heads, cap, d,
      [&](CudaCtx& x, const float* dq, const float* dk, const float* dv, float* dout) {
        return cuda::attn_decode_sparse(x, dq, dk, dv, dout, heads, cap, i, d, cfg, layer);
      });
}

Expected<int> cuda_sample_token(const float* logits, float temperature, int top_k, float top_p,
                                double u) {
  auto ctx = cuda::host_ctx();
  if (!ctx) return ctx.status();
  CudaCtx& x = **ctx;
  DeviceBuffer<float> dl;
  DeviceBuffer<int> dt;
  ATTN_RETURN_IF_ERROR(dl.alloc(kVocab));
  ATTN_RETURN_IF_ERROR(dt.alloc(1));
  ATTN_RETURN_IF_ERROR(dl.upload(logits, kVocab, x.stream));
  ATTN_RETURN_IF_ERROR(cuda::sample_token(x, dl.get(), temperature, top_k, top_p, u, dt.get()));
  int token = -1;
  ATTN_RETURN_IF_ERROR(dt.download(&token, 1, x.stream));
  ATTN_RETURN_IF_ERROR(x.sync());
  return token;
}

}  // namespace attnscope
