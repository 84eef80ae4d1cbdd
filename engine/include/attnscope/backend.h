// Backends: the CPU always; CUDA when the build has it and a device answers. A backend says
// which ops it runs; whatever it declines runs on the CPU (the ordinary path, not an error).
#pragma once

#include <string>

namespace attnscope {

enum class BackendKind { kCpu, kCuda };

struct BackendChoice {
  BackendKind kind = BackendKind::kCpu;
  std::string note;  // one informative line: which backend and why
};

// Number of CUDA devices; 0 when the build has no CUDA or there is no driver or device.
int backend_cuda_device_count(std::string* why_none);
// Picks CUDA when asked for and available, else the CPU; never fails.
BackendChoice backend_select(bool want_cuda);
// Whether the CUDA backend runs an op (names as engine/backend/cuda/device.cu lists them:
// "attn_dense", "attn_sparse_backward", "decode_lsh", ...); false for every op in a build
// without CUDA. What it declines runs on the CPU: the Reformer's decode ("decode_lsh") and
// LSH attention's backward ("attn_lsh_backward").
bool backend_cuda_supports(const char* op_name);

}  // namespace attnscope
