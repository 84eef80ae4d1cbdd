// The tensors of a configuration: what a model file of that family holds, by name, shape
// and initialisation (core/params.cpp, one list per family), and so its parameter count.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "attnscope/config.h"

namespace attnscope {

enum class ParamInit { kOnes, kZeros, kNormal, kNormalScaled, kLogits };
// One tensor a family needs: its name in the model file, its shape and how it starts.
// kNormalScaled is N(0, 0.02) / sqrt(2 * layers) (output projections and W2); kLogits is the
// logit layer, zero in the paper's initialisation.
struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  ParamInit init = ParamInit::kNormal;
};
// The tensors of a (resolved) configuration, in file order.
std::vector<ParamSpec> model_param_specs(const ModelConfig& cfg);
int64_t model_param_count(const ModelConfig& cfg);

}  // namespace attnscope
