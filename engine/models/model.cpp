// The family-independent model API: tensor specs, initialisation, checks, the factory and
// evaluation (log-probabilities, bits per dim).
#include "attnscope/model.h"

#include <cmath>
#include <cstring>

#include "core/rng.h"
#include "models/common.h"
#include "models/families.h"
#include "ops/ops.h"

namespace attnscope {

WeightMap model_init_weights(const ModelConfig& cfg, const InitOptions& opt) {
  WeightMap w;
  const double scaled = 0.02 / std::sqrt(2.0 * std::max(1, cfg.layers));
  uint64_t index = 0;
  for (const auto& s : model_param_specs(cfg)) {
    Tensor t = Tensor::zeros(s.shape, MemCategory::kWeights);
    Rng rng(derive_seed(opt.seed, ++index));
    float* p = t.data();
    const int64_t n = t.numel();
    switch (s.init) {
      case ParamInit::kOnes:
        std::fill(p, p + n, 1.0f);
        break;
      case ParamInit::kZeros:
        break;
      case ParamInit::kNormal:
        for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(0.02 * rng.normal());
        break;
      case ParamInit::kNormalScaled:
        for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(scaled * rng.normal());
        break;
      case ParamInit::kLogits:
        if (!opt.zero_logits)
          for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(0.3 * rng.normal());
        break;
    }
    w.emplace(s.name, std::move(t));
  }
  if (opt.ordinal_tokens) {
    // embed.token (256, D): row c = kTokenScale * phi(c); head.weight (D, 256): column c =
    // kLogitScale * phi(c). LN(embedding) has length sqrt(D), so the untrained logits peak at
    // the input's value by about kLogitScale * sqrt(D) (3.4 nats at D = 128).
    constexpr float kTokenScale = 1.0f, kLogitScale = 0.3f;
    float* token = w.at("embed.token").data();
    float* head = w.at("head.weight").data();
    const int64_t D = cfg.dim;
    for (int c = 0; c < 256; ++c) {
      const std::vector<float> phi = model_ordinal_feature(c, D);
      for (int64_t k = 0; k < D; ++k) {
        token[c * D + k] = kTokenScale * phi[static_cast<size_t>(k)];
        head[k * 256 + c] = kLogitScale * phi[static_cast<size_t>(k)];
      }
    }
  }
  if (opt.sinusoidal_positions)
    for (const char* name : {"embed.pos_row", "embed.pos_col", "embed.pos_channel"}) {
      auto it = w.find(name);
      if (it == w.end()) continue;
      const int64_t rows = it->second.shape()[0], D = cfg.dim;
      for (int64_t r = 0; r < rows; ++r) {
        const std::vector<float> f = model_sinusoid_feature(r, D);
        std::copy(f.begin(), f.end(), it->second.data() + r * D);
      }
    }
  return w;
}

std::vector<float> model_sinusoid_feature(int64_t p, int64_t dim) {
  std::vector<float> f(static_cast<size_t>(std::max<int64_t>(dim, 0)), 0.0f);
  const int64_t pairs = dim / 2;
  if (pairs == 0) return f;
  const double scale = 0.5 / std::sqrt(static_cast<double>(pairs));  // |f| = 0.5
  for (int64_t k = 0; k < pairs; ++k) {
    const double a =
        static_cast<double>(p) * std::pow(10000.0, -2.0 * static_cast<double>(k) / dim);
    f[static_cast<size_t>(2 * k)] = static_cast<float>(scale * std::sin(a));
    f[static_cast<size_t>(2 * k + 1)] = static_cast<float>(scale * std::cos(a));
  }
  return f;
}

std::vector<float> model_ordinal_feature(int c, int64_t dim) {
  std::vector<float> phi(static_cast<size_t>(std::max<int64_t>(dim, 0)), 0.0f);
  if (dim <= 0) return phi;
  const double spacing = dim > 1 ? 255.0 / static_cast<double>(dim - 1) : 255.0;
  const double sigma = 1.5 * spacing;
  double norm = 0;
  for (int64_t k = 0; k < dim; ++k) {
    const double z = (c - spacing * static_cast<double>(k)) / sigma;
    phi[static_cast<size_t>(k)] = static_cast<float>(std::exp(-0.5 * z * z));
    norm += static_cast<double>(phi[static_cast<size_t>(k)]) * phi[static_cast<size_t>(k)];
  }
  const auto inv = static_cast<float>(1.0 / std::sqrt(norm));
  for (float& v : phi) v *= inv;
  return phi;
}

Status model_check_weights(const ModelConfig& cfg, const WeightMap& w) {
  const auto specs = model_param_specs(cfg);
  for (const auto& s : specs) {
    auto it = w.find(s.name);
    Tensor probe = Tensor::borrow(nullptr, s.shape, nullptr);
    if (it == w.end())
      return invalid_argument("tensor '" + s.name + "' is missing (the config needs shape " +
                              probe.shape_string() + ")");
    if (it->second.shape() != s.shape)
      return invalid_argument("tensor '" + s.name + "' has shape " + it->second.shape_string() +
                              " but the config needs " + probe.shape_string());
    if (it->second.empty() && probe.numel() > 0)
      return invalid_argument("tensor '" + s.name + "' has no data");
  }
  if (w.size() != specs.size()) {
    for (const auto& [name, t] : w) {
      bool known = false;
      for (const auto& s : specs) known = known || s.name == name;
      if (!known)
        return invalid_argument("tensor '" + name + "' is not part of a " +
                                family_name(cfg.family) + " model with this config");
    }
  }
  return Status::ok();
}

const float* Model::param(const std::string& name) const {
  return weight_ptr(w_, name);
}

Expected<std::unique_ptr<Model>> model_create(const ModelConfig& in, WeightMap weights) {
  ModelConfig cfg = in;
  ATTN_RETURN_IF_ERROR(config_resolve(cfg));
  ATTN_RETURN_IF_ERROR(config_validate(cfg));
  ATTN_RETURN_IF_ERROR(model_check_weights(cfg, weights));
  switch (cfg.family) {
    case Family::kDense:
    case Family::kSparse:
      return make_transformer_model(std::move(cfg), std::move(weights));
    case Family::kReformer:
      return make_reformer_model(std::move(cfg), std::move(weights));
    case Family::kPerceiverAR:
      return make_perceiver_model(std::move(cfg), std::move(weights));
    case Family::kHourglass:
      return make_hourglass_model(std::move(cfg), std::move(weights));
  }
  return internal_error("unknown family");
}

Status model_log_probs(const Model& m, const uint8_t* x, int64_t n, Tensor* out,
                       const CancelFlag* cancel) {
  if (n < 1 || n > m.config().seq_len())
    return invalid_argument("input has " + std::to_string(n) + " tokens; the model takes 1.." +
                            std::to_string(m.config().seq_len()));
  *out = Tensor::zeros({n, kVocab}, MemCategory::kActivations);
  Tensor logits;
  int64_t first = 0;
  ATTN_RETURN_IF_ERROR(m.forward(x, n, &logits, &first, cancel));
  for (int64_t r = 0; r + first < n; ++r)
    op_log_softmax(logits.data() + r * kVocab, out->data() + (first + r) * kVocab, kVocab);
  if (first > 0) {
    // Rows the forward does not produce (before Perceiver AR's latents) come from decoding.
    auto st = m.decode_begin();
    std::vector<float> row(kVocab);
    for (int64_t p = 0; p < first; ++p) {
      if (cancel && cancel->load()) return cancelled("evaluation cancelled");
      ATTN_RETURN_IF_ERROR(m.decode_step(*st, p > 0 ? x[p - 1] : -1, row.data()));
      op_log_softmax(row.data(), out->data() + p * kVocab, kVocab);
    }
  }
  return Status::ok();
}

Expected<double> model_bits_per_dim(const Model& m, const uint8_t* x, int64_t n,
                                    const CancelFlag* cancel) {
  Tensor lp;
  ATTN_RETURN_IF_ERROR(model_log_probs(m, x, n, &lp, cancel));
  double nats = 0;
  for (int64_t p = 0; p < n; ++p) nats -= lp.data()[p * kVocab + x[p]];
  return nats / static_cast<double>(n) / std::log(2.0);
}

Expected<double> model_bits_per_dim_windowed(const Model& m, const uint8_t* x, int64_t n,
                                             const CancelFlag* cancel) {
  const ModelConfig& c = m.config();
  if (c.family != Family::kPerceiverAR) return model_bits_per_dim(m, x, n, cancel);
  if (n < 1 || n > c.seq_len())
    return invalid_argument("input has " + std::to_string(n) + " tokens; the model takes 1.." +
                            std::to_string(c.seq_len()));
  const int64_t M = c.perceiver.latents;
  std::vector<float> row(kVocab);
  double nats = 0;
  // Windows end at M, 2M, .. and at n; each scores the positions after the previous one's.
  for (int64_t scored = 0; scored < n;) {
    if (cancel && cancel->load()) return cancelled("evaluation cancelled");
    const int64_t end = std::min(n, scored + M);
    // logits (rows, 256): row r predicts x[first + r], first = end - min(M, end).
    Tensor logits;
    int64_t first = 0;
    ATTN_RETURN_IF_ERROR(m.forward(x, end, &logits, &first, cancel));
    for (int64_t p = std::max(scored, first); p < end; ++p) {
      op_log_softmax(logits.data() + (p - first) * kVocab, row.data(), kVocab);
      nats -= row[x[p]];
    }
    scored = end;
  }
  return nats / static_cast<double>(n) / std::log(2.0);
}

}  // namespace attnscope
