// Builds the ModelSummary from a resolved configuration, naming each layer's attention the
// way the papers do (dense causal, strided A1/A2, LSH rounds, cross + latent, hourglass level).
#include "model_summary.h"

#include "attnscope/attention.h"
#include "attnscope/model.h"

namespace session {

using namespace attnscope;

namespace {

std::vector<std::string> layer_kinds(const ModelConfig& c) {
  std::vector<std::string> out;
  const std::string n = std::to_string(c.seq_len());
  switch (c.family) {
    case Family::kDense:
      for (int l = 0; l < c.layers; ++l) out.push_back("dense causal");
      break;
    case Family::kSparse:
      for (int l = 0; l < c.layers; ++l) {
        std::string sets;
        for (int h = 0; h < c.heads; ++h) {
          const SparseSet s = attn_sparse_set(c.sparse, l, h, c.heads);
          const char* name = s == SparseSet::kA1 ? "A1" : s == SparseSet::kA2 ? "A2" : "A1+A2";
          if (sets.find(name) == std::string::npos)
            sets += std::string(sets.empty() ? "" : "/") + name;
        }
        out.push_back(
            std::string(c.sparse.pattern == SparsePattern::kStrided ? "strided " : "fixed ") +
            sets + ", l = " + std::to_string(c.sparse.stride) + ", block " +
            std::to_string(c.sparse.block));
      }
      break;
    case Family::kReformer:
      for (int l = 0; l < c.layers; ++l)
        out.push_back("LSH, " + std::to_string(c.lsh.n_hashes) + " rounds, chunk " +
                      std::to_string(c.lsh.chunk) + ", " + std::to_string(c.lsh.n_buckets) +
                      " buckets");
      break;
    case Family::kPerceiverAR:
      out.push_back("cross-attention, " + std::to_string(c.perceiver.latents) + " latents over " +
                    n + " inputs");
      for (int l = 0; l < c.layers; ++l)
        out.push_back("latent self-attention over " + std::to_string(c.perceiver.latents));
      break;
    case Family::kHourglass: {
      auto levels = hourglass_parse(c.hourglass.hierarchy);
      if (!levels) break;
      for (const HourglassLevel& lv : *levels)
        for (int l = 0; l < lv.layers; ++l)
          out.push_back("dense causal at shortening " + std::to_string(lv.factor) + " (length " +
                        std::to_string((c.seq_len() + lv.factor - 1) / lv.factor) + ")");
      break;
    }
  }
  return out;
}

}  // namespace

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
  s.layer_kinds = layer_kinds(cfg);
  return s;
}

}  // namespace session
