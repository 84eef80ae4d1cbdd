// CUDA device discovery. No driver or no device is a normal answer (0), never a crash.
#include <cuda_runtime.h>

#include <string>

#include "attnscope/backend.h"

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

bool backend_cuda_supports(const char*) { return false; }

}  // namespace attnscope
