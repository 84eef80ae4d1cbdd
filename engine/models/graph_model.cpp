// GraphModel: Model::forward and attention_layer as the family graph on a quiet tape.
#include "models/graph_model.h"

#include <algorithm>
#include <memory>

#include "models/common.h"

namespace attnscope {

GraphModel::GraphModel(ModelConfig cfg, WeightMap w) : Model(std::move(cfg), WeightMap{}) {
  auto params = std::make_shared<tape::ParamSet<float>>(tape::params_from_weights<float>(cfg_, w));
  w.clear();
  for (auto& entry : *params) entry.second->requires_grad = false;
  for (const ParamSpec& s : model_param_specs(cfg_)) {
    auto it = params->find(s.name);
    if (it == params->end()) continue;  // model_create checked every tensor first
    w_.emplace(s.name, Tensor::borrow(it->second->data.data(), s.shape, it->second));
  }
  params_ = std::move(params);
}

tape::GraphOptions GraphModel::infer_options(tape::AttnInfer* infer,
                                             const CancelFlag* cancel) const {
  tape::GraphOptions opt;
  opt.cross_dropout = 0;
  opt.ff_chunks = cfg_.family == Family::kReformer ? std::max(1, cfg_.lsh.ff_chunks) : 1;
  opt.infer = infer;
  opt.cancel = cancel;
  return opt;
}

tape::CpuCtx GraphModel::infer_ctx(tape::AttnInfer* infer) const {
  tape::CpuCtx c;
  c.cfg = cfg_;
  c.p = params_;
  c.opt = infer_options(infer, nullptr);
  return c;
}

Status GraphModel::forward(const uint8_t* x, int64_t n, Tensor* logits, int64_t* first_row,
                           const CancelFlag* cancel) const {
  if (n < 1 || n > cfg_.seq_len())
    return invalid_argument("sequence of " + std::to_string(n) + " tokens; the model takes 1.." +
                            std::to_string(cfg_.seq_len()));
  tape::Tape<float> tape(false);
  tape::AttnInfer infer;
  infer.stats = &stats_;
  auto gh = tape::graph_hidden(tape, cfg_, *params_, x, n, infer_options(&infer, cancel));
  if (!gh) return gh.status();
  // out (rows, 256): row r predicts x[first_row + r].
  tape::Var<float> out = tape::head_logits(tape, *params_, gh->hidden);
  *logits = Tensor::zeros({out->rows, kVocab}, MemCategory::kActivations);
  std::copy(out->data.begin(), out->data.end(), logits->data());
  *first_row = gh->first_row;
  return Status::ok();
}

Status GraphModel::attention_layer(const uint8_t* x, int64_t n, int layer,
                                   const AttnLayerFn& fn) const {
  const int layers = cfg_.family == Family::kPerceiverAR ? cfg_.layers + 1 : cfg_.layers;
  ATTN_RETURN_IF_ERROR(check_attention_layer(cfg_, n, layer, layers));
  tape::Tape<float> tape(false);
  tape::AttnInfer infer;
  infer.stats = &stats_;
  infer.inspect_layer = layer;
  infer.fn = &fn;
  auto gh = tape::graph_hidden(tape, cfg_, *params_, x, n, infer_options(&infer, nullptr));
  if (!gh) return gh.status();
  if (!infer.done)
    return internal_error("the forward never reached attention layer " + std::to_string(layer));
  return infer.status;
}

}  // namespace attnscope
