// The families' entry points, dispatched by model.cpp. Each family file owns its tensors
// (beyond the shared embed/final_ln/head) and its forward and decode.
#pragma once

#include <memory>
#include <vector>

#include "attnscope/model.h"

namespace attnscope {

// Dense and Sparse Transformer: a stack of pre-LN blocks; sparse swaps the attention kind.
void transformer_param_specs(const ModelConfig& cfg, std::vector<ParamSpec>* out);
std::unique_ptr<Model> make_transformer_model(ModelConfig cfg, WeightMap w);

void reformer_param_specs(const ModelConfig& cfg, std::vector<ParamSpec>* out);
std::unique_ptr<Model> make_reformer_model(ModelConfig cfg, WeightMap w);

void perceiver_param_specs(const ModelConfig& cfg, std::vector<ParamSpec>* out);
std::unique_ptr<Model> make_perceiver_model(ModelConfig cfg, WeightMap w);

void hourglass_param_specs(const ModelConfig& cfg, std::vector<ParamSpec>* out);
std::unique_ptr<Model> make_hourglass_model(ModelConfig cfg, WeightMap w);

}  // namespace attnscope
