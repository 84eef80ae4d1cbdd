// CUDA device discovery. No driver or no device is a normal answer (0), never a crash.
#include <cuda_runtime.h>

#include <cstring>
#include <string>

#include "attnscope/cuda.h"

namespace attnscope {

int backend_cuda_device_count(std::string* why_none) {
  int count = 0;  // cudaGetDeviceCount leaves it untouched when there is no driver
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    if (why_none) *why_none = std::string("no CUDA device: ") + cudaGetErrorString(err);
    return 0;
  }
  if (count == 0 && why_none) *why_none = "no CUDA device";
  return count;
}

// The ops the device runs (cuda_ops.cu, exec_cuda.cu, attn_*.cu, sample.cu, train_kernels.cu);
// not listed, so run on the CPU: "decode_lsh" (the Reformer's decode), "decode_perceiver_ar" and
// "decode_hourglass" (the device executor decodes one row per step through dense and sparse
// caches only), "attn_lsh_backward".
bool backend_cuda_supports(const char* op_name) {
  if (!op_name) return false;
  static const char* const kOps[] = {"matmul",
                                     "add_bias",
                                     "layernorm",
                                     "gelu",
                                     "add",
                                     "split_heads",
                                     "merge_heads",
                                     "embed",
                                     "scale",
                                     "shift_rows",
                                     "mean_groups",
                                     "repeat_rows",
                                     "attn_dense",
                                     "attn_sparse",
                                     "attn_lsh",
                                     "decode_dense",
                                     "decode_sparse",
                                     "sample",
                                     "matmul_backward",
                                     "layernorm_backward",
                                     "gelu_backward",
                                     "embed_backward",
                                     "xent_backward",
                                     "attn_dense_backward",
                                     "attn_sparse_backward"};
  for (const char* op : kOps)
    if (std::strcmp(op, op_name) == 0) return true;
  return false;
}

}  // namespace attnscope
