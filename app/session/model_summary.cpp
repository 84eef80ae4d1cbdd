// Builds the ModelSummary from a resolved configuration; each layer's attention is named by
// the engine (inspect_layer_kind), the same words the CLI's info prints.
#include "model_summary.h"

#include "attnscope/inspect.h"
#include "attnscope/model.h"

namespace session {

using namespace attnscope;

ModelSummary model_summarize(const ModelConfig& cfg, const std::string& path, size_t file_bytes) {
  ModelSummary s;
  s.path = path;
  s.config = cfg;
  s.family = family_name(cfg.family);
  s.config_text = cfg.modality.describe() + ", " + std::to_string(cfg.layers) + " layers, dim " +
                  std::to_string(cfg.dim) + ", " + std::to_string(cfg.heads) + " heads, ff " +
                  std::to_string(cfg.ff_dim);
  s.param_count = model_param_count(cfg);
  s.file_bytes = file_bytes;
  for (int l = 0; l < inspect_layer_count(cfg); ++l)
    s.layer_kinds.push_back(inspect_layer_kind(cfg, l));
  return s;
}

}  // namespace session
