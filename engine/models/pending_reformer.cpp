// Temporary until engine/models/reformer.cpp lands in this change (deleted then).
#include "models/families.h"
namespace attnscope {
void reformer_param_specs(const ModelConfig&, std::vector<ParamSpec>*) {}
std::unique_ptr<Model> make_reformer_model(ModelConfig, WeightMap) { return nullptr; }
}  // namespace attnscope
