// The Reformer's scoring rule, written once for every executor (the CPU forward and decode,
// the trainer's tape, the CUDA kernels, the model's decode step and the inspect views):
// shared-QK keys are the qk rows normalised with trax's floor on |x|^2, a query scores
// itself at a finite -1e5 (so a token whose window holds only itself still attends to it,
// trax's exclude_self, while any other key outweighs it). The chunk window is
// attn_lsh_window (attnscope/attention.h).
#pragma once

#include <math.h>

#include "core/host_device.h"

namespace attnscope::detail {

// The score of a query against itself.
constexpr double kLshSelfScore = -1e5;
// trax's floor on |x|^2 when normalising a key.
constexpr double kLshNormFloor = 1e-6;

// |x| of a key from its squared norm, with the floor: keys are x / lsh_key_norm(|x|^2).
ATTN_HOST_DEVICE inline double lsh_key_norm(double sumsq) {
  return ::sqrt(sumsq > kLshNormFloor ? sumsq : kLshNormFloor);
}

}  // namespace attnscope::detail
