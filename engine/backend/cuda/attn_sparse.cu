// Block-sparse Sparse Transformer attention on the device: the CPU's passes (the same row
// orders, allowed ranges and tile selection as engine/attention/sparse.cpp, built with
// detail::AttnPass::add_segment) flattened to device arrays once per (layer, n), then run by
// the fused block kernel of attn_core.cuh into one online-softmax state.
#include <algorithm>
#include <cmath>
#include <map>
#include <utility>
#include <vector>

#include "attention/blocks.h"
#include "backend/cuda/sparse_plan.cuh"

namespace attnscope::cuda {

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
    ATTN_RETURN_IF_ERROR(attn::run_pass(ctx, a, L.row_blocks, L.n_heads, d, mode));
  }
  state_finish_kernel<<<grid_for(rows * d), kThreads, 0, ctx.stream>>>(out, l, rows, d);
  ATTN_CUDA_CHECK_LAUNCH();
  return Status::ok();
}

}  // namespace

Status sparse_plan_validate(const SparseConfig& cfg) {
  ATTN_RETURN_IF_ERROR(attn_sparse_validate(cfg));
  if (cfg.block > attn::kBK)
    return invalid_argument("sparse attention: block " + std::to_string(cfg.block) +
                            " must be in 1..64 on the GPU");
  return Status::ok();
}

namespace {

// The key-major layout of a pass: every (row block, kept tile) pair of the row-major one
// exactly once, grouped by tile. Adjacent tiles with the same row blocks merge up to
// kGroupKeys keys (the backward CTA's key width).
constexpr int kGroupKeys = attn::kBK;

void key_major_layout(const AttnPass& p, std::vector<int4>& groups, std::vector<int2>& blocks) {
  std::map<std::pair<int64_t, int64_t>, std::vector<int2>> by_tile;  // ordered by k0
  for (const auto& rb : p.rows)
    for (int64_t t = rb.t0; t < rb.t1; ++t)
      by_tile[{p.tiles[t].k0, p.tiles[t].k1}].push_back(
          make_int2(static_cast<int>(rb.q0), static_cast<int>(rb.q1)));
  const std::vector<int2>* prev = nullptr;
  for (const auto& [tile, rbs] : by_tile) {
    const bool same = prev && prev->size() == rbs.size() &&
                      std::equal(rbs.begin(), rbs.end(), prev->begin(),
                                 [](int2 x, int2 y) { return x.x == y.x && x.y == y.y; });
    if (same && groups.back().y == tile.first && tile.second - groups.back().x <= kGroupKeys) {
      groups.back().y = static_cast<int>(tile.second);
      continue;
    }
    const int r0 = static_cast<int>(blocks.size());
    blocks.insert(blocks.end(), rbs.begin(), rbs.end());
    groups.push_back(make_int4(static_cast<int>(tile.first), static_cast<int>(tile.second), r0,
                               static_cast<int>(blocks.size())));
    prev = &rbs;
  }
}

}  // namespace

Expected<SparsePlanPtr> sparse_plan_build(const SparseConfig& cfg, int layer, int heads, int64_t n,
                                          bool key_major) {
  ATTN_RETURN_IF_ERROR(sparse_plan_validate(cfg));
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
      L.n_heads = static_cast<int>(hs.size());
      L.has_qpos = !p.qpos.empty();
      L.has_kpos = !p.kpos.empty();
      std::vector<int4> rows, groups;
      std::vector<int2> tiles, blocks;
      for (const auto& rb : p.rows)
        rows.push_back(make_int4(static_cast<int>(rb.q0), static_cast<int>(rb.q1),
                                 static_cast<int>(rb.t0), static_cast<int>(rb.t1)));
      for (const auto& t : p.tiles)
        tiles.push_back(make_int2(static_cast<int>(t.k0), static_cast<int>(t.k1)));
      if (key_major) key_major_layout(p, groups, blocks);
      L.row_blocks = static_cast<int64_t>(rows.size());
      L.key_groups = static_cast<int64_t>(groups.size());
      const std::vector<int> qpos = to_int(p.qpos), kpos = to_int(p.kpos), lo = to_int(p.lo),
                             hi = to_int(p.hi);
      ATTN_RETURN_IF_ERROR(L.qpos.upload(qpos.data(), qpos.size(), s));
      ATTN_RETURN_IF_ERROR(L.kpos.upload(kpos.data(), kpos.size(), s));
      ATTN_RETURN_IF_ERROR(L.lo.upload(lo.data(), lo.size(), s));
      ATTN_RETURN_IF_ERROR(L.hi.upload(hi.data(), hi.size(), s));
      ATTN_RETURN_IF_ERROR(L.heads.upload(hs.data(), hs.size(), s));
      ATTN_RETURN_IF_ERROR(L.rows.upload(rows.data(), rows.size(), s));
      ATTN_RETURN_IF_ERROR(L.tiles.upload(tiles.data(), tiles.size(), s));
      ATTN_RETURN_IF_ERROR(L.groups.upload(groups.data(), groups.size(), s));
      ATTN_RETURN_IF_ERROR(L.blocks.upload(blocks.data(), blocks.size(), s));
      // The host vectors die at the end of this iteration: finish the copies first.
      ATTN_CUDA_CHECK(cudaStreamSynchronize(s));
      plan->launches.push_back(std::move(L));
    }
  }
  return std::move(plan);
}

Expected<SparsePlanPtr> sparse_plan(const SparseConfig& cfg, int layer, int heads, int64_t n) {
  return sparse_plan_build(cfg, layer, heads, n, false);
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
