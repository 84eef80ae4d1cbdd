// The CUDA executor of the families' one forward (models/family_graph.h): values are device
// matrices, every op is a launch on one stream over the backend's kernels
// (backend/cuda/kernels.cuh, implemented in backend/cuda/exec_cuda.cu), and nothing is recorded
// for a backward. A family's graph instantiated with DeviceGraph is the same definition the
// training tape runs on the CPU; only the executor differs.
//
// Plain C++ (no CUDA headers), so the families' .cpp files can instantiate their graphs for it;
// compiled in CUDA builds only (ATTNSCOPE_HAVE_CUDA).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "attnscope/config.h"
#include "attnscope/cuda.h"
#include "attnscope/status.h"
#include "exec/tape_attn.h"

namespace attnscope::exec {

// A row-major float32 matrix (rows, cols) in device memory. Views (slice_rows, reshape) share
// the owner of the allocation. data is null when the op that made it failed (the graph's
// status says why); the shape is always the op's.
struct DeviceValue {
  int64_t rows = 0, cols = 0;
  float* data = nullptr;
  std::shared_ptr<void> owner;
  int64_t numel() const { return rows * cols; }
};
using DVar = std::shared_ptr<DeviceValue>;
using DParams = std::map<std::string, DVar>;

// The device, its stream and library handles, and what the ops derive once per model and
// reuse (sparse block plans per (layer, length), rotations uploaded per layer). Opaque.
class DeviceRuntime;
Expected<std::shared_ptr<DeviceRuntime>> device_runtime_create(CudaPrecision p);
// Waits for every op queued so far; the first kernel fault surfaces here.
Status device_sync(DeviceRuntime& rt);

// Decoding one position per graph run: per-layer K/V caches (H, cap, d) that the attention ops
// append the step's row to and read back (dense: rows 0..pos; sparse: the pattern's A(pos)).
struct DeviceDecode {
  int64_t pos = 0;
  int64_t cap = 0;
  std::vector<DVar> k, v;  // [layer]: (H * cap, d)
};

class DeviceGraph {
 public:
  using V = DVar;
  using Scalar = float;
  static constexpr bool kRecords = false;

  explicit DeviceGraph(std::shared_ptr<DeviceRuntime> rt) : rt_(std::move(rt)) {}
  // The tape's "record this closure"; nothing to record here.
  template <typename F>
  void push(F&&) {}

  // The first failure of any op. Later ops launch nothing and return values of the right
  // shape with null data, so a graph runs to its end and its caller reports this.
  const Status& status() const { return status_; }
  bool failed() const { return !status_.is_ok(); }
  void fail(Status s) {
    if (status_.is_ok()) static_cast<void>(status_ = std::move(s));
  }
  // Shared by every value the graph allocates (their memory returns to its stream's pool).
  const std::shared_ptr<DeviceRuntime>& runtime() const { return rt_; }

  // Set while decoding: attention ops append to and read these caches (layer =
  // TrainAttnSpec::view_layer), embed reads the previous token from the host sequence.
  DeviceDecode* decode = nullptr;

 private:
  std::shared_ptr<DeviceRuntime> rt_;
  Status status_;
};

// ---- host <-> device ----------------------------------------------------------------------
// host (rows * cols) to a new device value.
DVar upload(DeviceGraph& g, const float* host, int64_t rows, int64_t cols);
// x's rows * cols values to host (waits for the stream).
Status download(DeviceGraph& g, const DVar& x, float* host);
// A zero-filled device value (decode caches).
DVar zeros(DeviceGraph& g, int64_t rows, int64_t cols);

// ---- the ops a family's graph composes (the same shapes and values as exec/tape_ops.h) --
DVar linear(DeviceGraph& g, const DVar& x, const DVar& w, const DVar& b);
DVar layernorm(DeviceGraph& g, const DVar& x, const DVar& gamma, const DVar& beta);
DVar gelu(DeviceGraph& g, const DVar& x);
DVar add(DeviceGraph& g, const DVar& a, const DVar& b);
DVar scale(DeviceGraph& g, const DVar& a, float s);
DVar slice_rows(DeviceGraph& g, const DVar& x, int64_t r0, int64_t count);
DVar concat_rows(DeviceGraph& g, const std::vector<DVar>& parts);
DVar reshape(DeviceGraph& g, const DVar& x, int64_t rows, int64_t cols);
DVar shift_rows(DeviceGraph& g, const DVar& x, int64_t shift, int64_t out_rows);
DVar mean_groups(DeviceGraph& g, const DVar& x, int64_t k);
DVar repeat_rows(DeviceGraph& g, const DVar& x, int64_t k);
// Inputs at positions p0 .. p0+count-1 of the host sequence x (BOS at 0, x[p-1] after).
DVar embed(DeviceGraph& g, const DParams& p, const ModelConfig& cfg, const uint8_t* x, int64_t p0,
           int64_t count);
// FFN(LN2 x) of the block under prefix; chunks is a CPU memory technique (ignored).
DVar ffn_block(DeviceGraph& g, const DParams& p, const std::string& prefix, const DVar& x,
               int chunks);
// q (nq, D), k, v (nk, D), heads in column groups; the kind's device kernel (dense causal with
// q_offset, the sparse block plan of (spec.sparse, spec.layer), shared-QK LSH). While decoding:
// one query row at g.decode->pos against the layer's cache.
DVar attention(DeviceGraph& g, const DVar& q, const DVar& k, const DVar& v, int heads,
               const tape::TrainAttnSpec& spec);
// (n, 256) logits of the final layer norm and head.
DVar head_logits(DeviceGraph& g, const DParams& p, const DVar& hidden);
// Recomputation is a memory technique of the tape: here the sub-graph simply runs.
inline DVar checkpoint(DeviceGraph& g, const std::vector<DVar>& in,
                       const std::function<DVar(DeviceGraph&, const std::vector<DVar>&)>& fn) {
  return fn(g, in);
}

}  // namespace attnscope::exec

namespace attnscope::tape {
using exec::DeviceGraph;
}  // namespace attnscope::tape
