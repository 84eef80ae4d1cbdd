// model_create_placed (cuda.h): the device model when asked for and possible, the CPU model
// otherwise, with one line saying which and why. Compiled in every build.
#include "attnscope/backend.h"
#include "attnscope/cuda.h"

namespace attnscope {

Expected<ModelPlacement> model_create_placed(const ModelConfig& cfg, WeightMap weights,
                                             bool want_cuda, CudaPrecision p, ModelUse use) {
  ModelPlacement placed;
  std::string why_not;
  if (want_cuda) {
    std::string info;
    Status avail = cuda_available(&info);
    if (!avail) {
      why_not = avail.message();
    } else if (use == ModelUse::kGenerate && cfg.family != Family::kDense &&
               cfg.family != Family::kSparse) {
      why_not = std::string("the device decodes dense and sparse models; ") +
                family_name(cfg.family) + " decoding runs on the CPU";
    } else {
      auto dev = model_create_cuda(cfg, weights, p);
      if (dev) {
        placed.model = std::move(*dev);
        placed.on_cuda = true;
        placed.note = "backend: cuda (" + info + "; " + cuda_precision_name(p) + ")";
        return placed;
      }
      // A configuration the CPU refuses as well is an error, not a fallback.
      if (dev.status().code() == StatusCode::kInvalidArgument) return dev.status();
      why_not = dev.status().message();
    }
  }
  auto cpu = model_create(cfg, std::move(weights));
  if (!cpu) return cpu.status();
  if (!*cpu)
    return unsupported(std::string("the ") + family_name(cfg.family) +
                       " family is not available in this build");
  placed.model = std::move(*cpu);
  placed.note = want_cuda ? "backend: cpu (" + why_not + ")" : "backend: cpu";
  return placed;
}

}  // namespace attnscope
