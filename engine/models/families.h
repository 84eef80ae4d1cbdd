// The families' entry points, dispatched by model.cpp. Each family file owns its forward and
// decode; its tensors are listed in core/params.cpp.
#pragma once

#include <memory>
#include <vector>

#include "attnscope/model.h"

namespace attnscope {

// Dense and Sparse Transformer: a stack of pre-LN blocks; sparse swaps the attention kind.
std::unique_ptr<Model> make_transformer_model(ModelConfig cfg, WeightMap w);

std::unique_ptr<Model> make_reformer_model(ModelConfig cfg, WeightMap w);

std::unique_ptr<Model> make_perceiver_model(ModelConfig cfg, WeightMap w);

std::unique_ptr<Model> make_hourglass_model(ModelConfig cfg, WeightMap w);

}  // namespace attnscope
