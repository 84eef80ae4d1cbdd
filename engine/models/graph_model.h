// The part of every family's Model that its one forward definition serves: Model::forward and
// Model::attention_layer run the family's graph (models/family_graph.h) on a tape that records
// nothing, with the inference kernels; the families add only their decode steps.
#pragma once

#include "attnscope/model.h"
#include "models/family_graph.h"

namespace attnscope {

class GraphModel : public Model {
 public:
  Status forward(const uint8_t* x, int64_t n, Tensor* logits, int64_t* first_row,
                 const CancelFlag* cancel) const override;
  Status attention_layer(const uint8_t* x, int64_t n, int layer,
                         const AttnLayerFn& fn) const override;

 protected:
  // Takes the weights into the graph's parameters (counted as weights) and leaves w_ as views
  // of them, so the decode steps' pointers and the graph read one copy.
  GraphModel(ModelConfig cfg, WeightMap w);

  // The options of an inference graph: no dropout, the config's FFN chunking, hooks in infer.
  tape::GraphOptions infer_options(tape::AttnInfer* infer, const CancelFlag* cancel) const;
  // A graph context for the family's own pieces (Perceiver AR's latent stack in decode).
  tape::CpuCtx infer_ctx(tape::AttnInfer* infer) const;

  tape::ParamsPtr<tape::Tape<float>> params_;
};

}  // namespace attnscope
