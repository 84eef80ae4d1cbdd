// Temporary until engine/models/perceiver_ar.cpp and hourglass.cpp land in this change.
#include "models/families.h"
namespace attnscope {
void perceiver_param_specs(const ModelConfig&, std::vector<ParamSpec>*) {}
std::unique_ptr<Model> make_perceiver_model(ModelConfig, WeightMap) { return nullptr; }
void hourglass_param_specs(const ModelConfig&, std::vector<ParamSpec>*) {}
std::unique_ptr<Model> make_hourglass_model(ModelConfig, WeightMap) { return nullptr; }
}  // namespace attnscope
