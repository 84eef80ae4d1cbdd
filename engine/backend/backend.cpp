// Backend selection: CUDA when built in and a device answers, the CPU otherwise.
#include "attnscope/backend.h"

namespace attnscope {

BackendChoice backend_select(bool want_cuda) {
  if (!want_cuda) return {BackendKind::kCpu, "backend: cpu"};
  std::string why;
  int n = backend_cuda_device_count(&why);
  if (n <= 0) return {BackendKind::kCpu, "backend: cpu (" + why + ")"};
  return {BackendKind::kCuda,
          "backend: cuda (" + std::to_string(n) + " device(s)); ops it declines run on the cpu"};
}

}  // namespace attnscope
