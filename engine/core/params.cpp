// Every family's tensors: the names, shapes and initialisations a model file holds for a
// configuration (the file format's schema; engine/io/FORMAT.md) and so the parameter count
// that config_validate bounds. The families' code (engine/models) reads these tensors by name.
#include "attnscope/params.h"

#include <cstring>
#include <string>

namespace attnscope {

namespace {

int64_t pos_rows(const ModelConfig& cfg) {
  const auto& m = cfg.modality;
  if (m.kind == ModalityKind::kImage) return m.height;
  return (cfg.seq_len() + cfg.pos_width - 1) / cfg.pos_width;
}
int64_t pos_cols(const ModelConfig& cfg) {
  const auto& m = cfg.modality;
  return m.kind == ModalityKind::kImage ? m.width : cfg.pos_width;
}

// embed.*, final_ln.*, head.*: the tensors every family shares.
void common_param_specs(const ModelConfig& cfg, std::vector<ParamSpec>* out) {
  const int64_t D = cfg.dim;
  out->push_back({"embed.token", {kVocab, D}, ParamInit::kNormal});
  out->push_back({"embed.bos", {D}, ParamInit::kNormal});
  out->push_back({"embed.pos_row", {pos_rows(cfg), D}, ParamInit::kNormal});
  out->push_back({"embed.pos_col", {pos_cols(cfg), D}, ParamInit::kNormal});
  if (cfg.modality.kind == ModalityKind::kImage)
    out->push_back({"embed.pos_channel", {cfg.modality.channels, D}, ParamInit::kNormal});
  out->push_back({"final_ln.weight", {D}, ParamInit::kOnes});
  out->push_back({"final_ln.bias", {D}, ParamInit::kZeros});
  out->push_back({"head.weight", {D, kVocab}, ParamInit::kLogits});
  out->push_back({"head.bias", {kVocab}, ParamInit::kZeros});
}

// A pre-LN block under prefix (e.g. "blocks.3."): ln1, attn.{wq,wk,wv,wo}, ln2,
// ff.{w1,b1,w2,b2}; with shared_qk (Reformer) one attn.wqk stands for wq and wk.
void block_param_specs(const std::string& p, int dim, int ff_dim, std::vector<ParamSpec>* out,
                       bool shared_qk = false) {
  const int64_t D = dim, F = ff_dim;
  out->push_back({p + "ln1.weight", {D}, ParamInit::kOnes});
  out->push_back({p + "ln1.bias", {D}, ParamInit::kZeros});
  if (shared_qk) {
    out->push_back({p + "attn.wqk", {D, D}, ParamInit::kNormal});
  } else {
    out->push_back({p + "attn.wq", {D, D}, ParamInit::kNormal});
    out->push_back({p + "attn.wk", {D, D}, ParamInit::kNormal});
  }
  out->push_back({p + "attn.wv", {D, D}, ParamInit::kNormal});
  out->push_back({p + "attn.wo", {D, D}, ParamInit::kNormalScaled});
  out->push_back({p + "ln2.weight", {D}, ParamInit::kOnes});
  out->push_back({p + "ln2.bias", {D}, ParamInit::kZeros});
  out->push_back({p + "ff.w1", {D, F}, ParamInit::kNormal});
  out->push_back({p + "ff.b1", {F}, ParamInit::kZeros});
  out->push_back({p + "ff.w2", {F, D}, ParamInit::kNormalScaled});
  out->push_back({p + "ff.b2", {D}, ParamInit::kZeros});
}

// Dense and Sparse Transformer: a stack of pre-LN blocks.
void transformer_param_specs(const ModelConfig& cfg, std::vector<ParamSpec>* out) {
  for (int l = 0; l < cfg.layers; ++l)
    block_param_specs("blocks." + std::to_string(l) + ".", cfg.dim, cfg.ff_dim, out);
}

// Reformer: shared-QK blocks.
void reformer_param_specs(const ModelConfig& cfg, std::vector<ParamSpec>* out) {
  for (int l = 0; l < cfg.layers; ++l)
    block_param_specs("blocks." + std::to_string(l) + ".", cfg.dim, cfg.ff_dim, out,
                      /*shared_qk=*/true);
}

void perceiver_param_specs(const ModelConfig& cfg, std::vector<ParamSpec>* out) {
  // The cross-attention layer is a pre-LN block whose first layer norm is split in two:
  // ln_q for the latent queries and ln_kv for the inputs; every other tensor as in a block.
  std::vector<ParamSpec> cross;
  block_param_specs("cross.", cfg.dim, cfg.ff_dim, &cross);
  for (const ParamSpec& s : cross) {
    if (s.name.rfind("cross.ln1.", 0) == 0) {
      const std::string leaf = s.name.substr(std::strlen("cross.ln1."));
      out->push_back({"cross.ln_q." + leaf, s.shape, s.init});
      out->push_back({"cross.ln_kv." + leaf, s.shape, s.init});
    } else {
      out->push_back(s);
    }
  }
  for (int l = 0; l < cfg.layers; ++l)
    block_param_specs("blocks." + std::to_string(l) + ".", cfg.dim, cfg.ff_dim, out);
}

void hourglass_param_specs(const ModelConfig& cfg, std::vector<ParamSpec>* out) {
  auto levels = hourglass_parse(cfg.hourglass.hierarchy);
  if (!levels) return;  // config_validate reports the bad hierarchy
  int block = 0;
  for (const HourglassLevel& lv : *levels)
    for (int l = 0; l < lv.layers; ++l)
      block_param_specs("blocks." + std::to_string(block++) + ".", cfg.dim, cfg.ff_dim, out);
  const int64_t D = cfg.dim;
  const size_t middle = levels->size() / 2;
  for (size_t s = 0; s < middle; ++s) {
    const int64_t k = (*levels)[s + 1].factor / (*levels)[s].factor;
    const std::string i = std::to_string(s);
    if (cfg.hourglass.pool == HourglassPool::kLinear) {
      out->push_back({"shorten." + i + ".weight", {k * D, D}, ParamInit::kNormal});
      out->push_back({"shorten." + i + ".bias", {D}, ParamInit::kZeros});
    }
    if (cfg.hourglass.upsample == HourglassUpsample::kLinear) {
      out->push_back({"upsample." + i + ".weight", {D, k * D}, ParamInit::kNormal});
      out->push_back({"upsample." + i + ".bias", {k * D}, ParamInit::kZeros});
    }
  }
}

}  // namespace

std::vector<ParamSpec> model_param_specs(const ModelConfig& cfg) {
  std::vector<ParamSpec> specs;
  common_param_specs(cfg, &specs);
  switch (cfg.family) {
    case Family::kDense:
    case Family::kSparse:
      transformer_param_specs(cfg, &specs);
      break;
    case Family::kReformer:
      reformer_param_specs(cfg, &specs);
      break;
    case Family::kPerceiverAR:
      perceiver_param_specs(cfg, &specs);
      break;
    case Family::kHourglass:
      hourglass_param_specs(cfg, &specs);
      break;
  }
  return specs;
}

int64_t model_param_count(const ModelConfig& cfg) {
  int64_t total = 0;
  for (const auto& s : model_param_specs(cfg)) {
    int64_t n = 1;
    for (int64_t d : s.shape) n *= d;
    total += n;
  }
  return total;
}

}  // namespace attnscope
