// The Sparse Transformer layout on the device, built once for the forward and for training's
// backward: the CPU's passes (engine/attention/sparse.cpp, detail::sparse_build_passes) tiled
// with the forward CTA's row blocks and cfg.block-key tiles, flattened to device arrays per
// (layer, n). kernels.cuh declares SparsePlan opaque; the two .cu files that walk its launches
// (attn_sparse.cu, train_kernels.cu) include this.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/cuda/attn_core.cuh"

namespace attnscope::cuda {

// One pass of one head set. Row-major layout (the forward): row blocks (q0, q1, t0, t1) with
// their key tiles (k0, k1). Key-major layout (the backward, only when the plan was built with
// it): key groups (k0, k1, b0, b1) with their row blocks (q0, q1), every (row block, kept
// tile) pair of the forward exactly once.
struct SparseLaunch {
  int n_heads = 0;
  int64_t row_blocks = 0, key_groups = 0;
  bool has_qpos = false, has_kpos = false;
  DeviceBuffer<int> qpos, kpos, lo, hi, heads;
  DeviceBuffer<int4> rows, groups;
  DeviceBuffer<int2> tiles, blocks;
};

struct SparsePlan {
  int heads = 0;
  int64_t n = 0;
  int64_t entries = 0;  // score entries of the row-major layout, over all heads
  std::vector<SparseLaunch> launches;
};

// attn_sparse_validate and the kernels' bound: a block must fit one 64-key tile.
Status sparse_plan_validate(const SparseConfig& cfg);

// sparse_plan (kernels.cuh) with the key-major layout too when key_major is set.
Expected<SparsePlanPtr> sparse_plan_build(const SparseConfig& cfg, int layer, int heads, int64_t n,
                                          bool key_major);

}  // namespace attnscope::cuda
