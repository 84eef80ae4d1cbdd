// Block-sparse Sparse Transformer attention on the device: the CPU's passes (the same row
// orders, allowed ranges and tile selection as engine/attention/sparse.cpp, built with
// detail::AttnPass::add_segment) flattened to device arrays once per (layer, n), then run by
// the fused block kernel of attn_core.cuh into one online-softmax state.
#include <algorithm>
#include <cmath>
#include <map>

#include "attention/blocks.h"
#include "backend/cuda/attn_core.cuh"

namespace attnscope::cuda {

// One launch: one pass of one head set.
struct SparseLaunch {
  int64_t blocks = 0;
  int n_heads = 0;
  bool has_qpos = false, has_kpos = false;
  DeviceBuffer<int> qpos, kpos, lo, hi, heads;
  DeviceBuffer<int4> rows;
  DeviceBuffer<int2> tiles;
};

struct SparsePlan {
  int heads = 0;
  int64_t n = 0;
  int64_t entries = 0;
  std::vector<SparseLaunch> launches;
};

void SparsePlanDeleter::operator()(SparsePlan* p) const {
  delete p;
}

int64_t sparse_plan_entries(const SparsePlan& plan) {
  return plan.entries;
}

namespace {

using detail::AttnPass;

// Query rows per device row block: the CTA's 64 (the CPU uses cfg.block rows; the tile
// selection per row block is the same rule, so only the masked share inside kept tiles grows).
constexpr int kPlanRows = attn::kBQ;

// attn_sparse_validate, and a block that fits the kernel's key tile.
Status validate(const SparseConfig& cfg) {
  ATTN_RETURN_IF_ERROR(attn_sparse_validate(cfg));
  if (cfg.block > attn::kBK)
    return invalid_argument("sparse attention: block " + std::to_string(cfg.block) +
                            " must be in 1..64 on the GPU");
  return Status::ok();
}

// The passes of one (pattern, set) at length n: detail::sparse_pass_ranges (sparse.cpp, the
// one definition) tiled with row blocks of kPlanRows rows and key tiles of cfg.block keys.
std::vector<AttnPass> build_passes(const SparseConfig& cfg, SparseSet set, int64_t n) {
  return detail::sparse_build_passes(cfg, set, n, kPlanRows, cfg.block);
}

template <typename V>
std::vector<int> to_int(const V& x) {
  return std::vector<int>(x.begin(), x.end());
}

// State (H, n): out = 0, m = -inf, l = 0.
__global__ void state_init_kernel(float* out, float* m, float* l, int64_t rows, int d) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < rows * d;
       i += int64_t{gridDim.x} * blockDim.x) {
    out[i] = 0.0f;
    if (i < rows) m[i] = -INFINITY, l[i] = 0.0f;
  }
}

// out /= l row by row; rows that saw no key become zeros.
__global__ void state_finish_kernel(float* out, const float* l, int64_t rows, int d) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < rows * d;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float li = l[i / d];
    out[i] = li > 0.0f ? out[i] / li : 0.0f;
  }
}

template <typename TIn>
Status sparse_impl(CudaCtx& ctx, const SparsePlan& plan, const TIn* q, const TIn* k, const TIn* v,
                   float* out, int d, attn::Mode mode) {
  if (d <= 0) return invalid_argument("attn_sparse: d must be > 0");
  const int64_t rows = static_cast<int64_t>(plan.heads) * plan.n;
  if (rows == 0) return Status::ok();
  auto st = ctx.scratch(sizeof(float) * static_cast<size_t>(2 * rows), 0);
  if (!st) return st.status();
  float* m = static_cast<float*>(*st);
  float* l = m + rows;
  state_init_kernel<<<grid_for(rows * d), kThreads, 0, ctx.stream>>>(out, m, l, rows, d);
  ATTN_CUDA_CHECK_LAUNCH();
  for (const SparseLaunch& L : plan.launches) {
    attn::PassArgs<TIn> a{};
    a.q = q, a.k = k, a.v = v, a.out = out, a.m_state = m, a.l_state = l;
    a.nq = a.nk = plan.n;
    a.qpos = L.has_qpos ? L.qpos.get() : nullptr;
    a.kpos = L.has_kpos ? L.kpos.get() : nullptr;
    a.lo = L.lo.get(), a.hi = L.hi.get();
    a.rows = L.rows.get(), a.tiles = L.tiles.get();
    a.heads = L.heads.get();
    a.alpha = 1.4426950408889634f / std::sqrt(static_cast<float>(d));
    a.first = a.last = false;
    a.reverse = false;
    a.vec = attn::aligned16(q) && attn::aligned16(k) && attn::aligned16(v);
    ATTN_RETURN_IF_ERROR(attn::run_pass(ctx, a, L.blocks, L.n_heads, d, mode));
  }
  state_finish_kernel<<<grid_for(rows * d), kThreads, 0, ctx.stream>>>(out, l, rows, d);
  ATTN_CUDA_CHECK_LAUNCH();
  return Status::ok();
}

}  // namespace

Expected<SparsePlanPtr> sparse_plan(const SparseConfig& cfg, int layer, int heads, int64_t n) {
  ATTN_RETURN_IF_ERROR(validate(cfg));
  if (heads < 0 || n < 0) return invalid_argument("sparse_plan: heads and n must be >= 0");
  if (n >= INT32_MAX) return invalid_argument("sparse_plan: length exceeds 2^31");
  if (heads > 65535) return invalid_argument("sparse_plan: more than 65535 heads");
  SparsePlanPtr plan(new SparsePlan());
  plan->heads = heads;
  plan->n = n;
  std::map<SparseSet, std::vector<int>> sets;
  for (int h = 0; h < heads; ++h) sets[attn_sparse_set(cfg, layer, h, heads)].push_back(h);
  cudaStream_t s = nullptr;  // uploads are synchronous on the legacy stream (plan build time)
  for (const auto& [set, hs] : sets) {
    for (const AttnPass& p : build_passes(cfg, set, n)) {
      plan->entries += p.entries() * static_cast<int64_t>(hs.size());
      if (p.rows.empty()) continue;
      SparseLaunch L;
      L.blocks = static_cast<int64_t>(p.rows.size());
      L.n_heads = static_cast<int>(hs.size());
      L.has_qpos = !p.qpos.empty();
      L.has_kpos = !p.kpos.empty();
      std::vector<int4> rows;
      for (const auto& rb : p.rows)
        rows.push_back(make_int4(static_cast<int>(rb.q0), static_cast<int>(rb.q1),
                                 static_cast<int>(rb.t0), static_cast<int>(rb.t1)));
      std::vector<int2> tiles;
      for (const auto& t : p.tiles)
        tiles.push_back(make_int2(static_cast<int>(t.k0), static_cast<int>(t.k1)));
      const std::vector<int> qpos = to_int(p.qpos), kpos = to_int(p.kpos), lo = to_int(p.lo),
                             hi = to_int(p.hi);
      ATTN_RETURN_IF_ERROR(L.qpos.upload(qpos.data(), qpos.size(), s));
      ATTN_RETURN_IF_ERROR(L.kpos.upload(kpos.data(), kpos.size(), s));
      ATTN_RETURN_IF_ERROR(L.lo.upload(lo.data(), lo.size(), s));
      ATTN_RETURN_IF_ERROR(L.hi.upload(hi.data(), hi.size(), s));
      ATTN_RETURN_IF_ERROR(L.heads.upload(hs.data(), hs.size(), s));
      ATTN_RETURN_IF_ERROR(L.rows.upload(rows.data(), rows.size(), s));
      ATTN_RETURN_IF_ERROR(L.tiles.upload(tiles.data(), tiles.size(), s));
      plan->launches.push_back(std::move(L));
    }
  }
  // The host vectors above die at scope exit: finish the copies before returning.
  ATTN_CUDA_CHECK(cudaStreamSynchronize(s));
  return std::move(plan);
}

Status attn_sparse(CudaCtx& ctx, const SparsePlan& plan, const float* q, const float* k,
                   const float* v, float* out, int d, CudaPrecision p) {
  return sparse_impl(ctx, plan, q, k, v, out, d, attn::mode_of(p));
}

Status attn_sparse_bf16(CudaCtx& ctx, const SparsePlan& plan, const __nv_bfloat16* q,
                        const __nv_bfloat16* k, const __nv_bfloat16* v, float* out, int d) {
  return sparse_impl(ctx, plan, q, k, v, out, d, attn::Mode::kBF16);
}

}  // namespace attnscope::cuda
