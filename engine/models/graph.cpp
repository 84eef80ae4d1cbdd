// The graph of a model (models/graph.h): checks, the embedding, the family's one forward
// (models/<family>.cpp, over models/family_graph.h) and the loss. The same graph serves the
// trainer (a recording tape) and Model::forward (a quiet tape with GraphOptions::infer).
#include "models/graph.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "models/family_graph.h"

namespace attnscope::tape {

namespace {

// (rows, cols) of a spec'd tensor as a tape matrix: vectors (1, n), matrices as
// stored.
std::pair<int64_t, int64_t> matrix_shape(const std::vector<int64_t>& shape) {
  if (shape.size() == 1) return {1, shape[0]};
  int64_t cols = 1;
  for (size_t i = 1; i < shape.size(); ++i) cols *= shape[i];
  return {shape.empty() ? 1 : shape[0], cols};
}

template <typename T>
Status check_params(const ModelConfig& cfg, const ParamSet<T>& p) {
  const auto specs = model_param_specs(cfg);
  for (const ParamSpec& s : specs) {
    auto it = p.find(s.name);
    if (it == p.end() || !it->second)
      return invalid_argument("training parameter '" + s.name + "' is missing");
    const auto want = matrix_shape(s.shape);
    const Value<T>& have = *it->second;
    if (have.rows != want.first || have.cols != want.second ||
        static_cast<int64_t>(have.data.size()) != have.numel())
      return invalid_argument("training parameter '" + s.name + "' is (" +
                              std::to_string(have.rows) + ", " + std::to_string(have.cols) +
                              ") but the config needs (" + std::to_string(want.first) + ", " +
                              std::to_string(want.second) + ")");
  }
  if (p.size() != specs.size())
    return invalid_argument("the parameter set has " + std::to_string(p.size()) +
                            " tensors but a " + family_name(cfg.family) +
                            " model with this config has " + std::to_string(specs.size()));
  return Status::ok();
}

}  // namespace

template <typename T>
ParamSet<T> params_from_weights(const ModelConfig& in, const WeightMap& w) {
  ModelConfig cfg = in;
  ParamSet<T> p;
  if (!config_resolve(cfg).is_ok()) return p;
  for (const ParamSpec& s : model_param_specs(cfg)) {
    auto it = w.find(s.name);
    if (it == w.end() || it->second.empty()) continue;
    const auto [rows, cols] = matrix_shape(s.shape);
    if (it->second.numel() != rows * cols) continue;
    p.emplace(s.name, make_param<T>(rows, cols, it->second.data()));
  }
  return p;
}

WeightMap params_to_weights(const ModelConfig& in, const ParamSet<float>& p) {
  ModelConfig cfg = in;
  WeightMap w;
  if (!config_resolve(cfg).is_ok()) return w;
  for (const ParamSpec& s : model_param_specs(cfg)) {
    auto it = p.find(s.name);
    if (it == p.end()) continue;
    Tensor t = Tensor::zeros(s.shape, MemCategory::kWeights);
    if (t.numel() != it->second->numel()) continue;
    std::copy(it->second->data.begin(), it->second->data.end(), t.data());
    w.emplace(s.name, std::move(t));
  }
  return w;
}

int64_t graph_train_length(const ModelConfig& cfg, int64_t n, uint64_t draw) {
  return cfg.family == Family::kPerceiverAR ? perceiver_train_length(cfg, n, draw) : n;
}

int64_t graph_window_align(const ModelConfig& cfg) {
  switch (cfg.family) {
    case Family::kDense:
      return 1;
    case Family::kSparse:
      return std::max(1, cfg.sparse.stride);
    default:
      return 0;
  }
}

template <typename T>
Expected<GraphHidden<T>> graph_hidden(Tape<T>& tape, const ModelConfig& in, const ParamSet<T>& p,
                                      const uint8_t* x, int64_t n, const GraphOptions& opt) {
  Ctx<Tape<T>> c;
  c.cfg = in;
  c.opt = opt;
  ATTN_RETURN_IF_ERROR(config_resolve(c.cfg));
  const ModelConfig& cfg = c.cfg;
  if (!x || n < 1 || n > cfg.seq_len())
    return invalid_argument("training sequence of " + std::to_string(n) +
                            " tokens; the model takes 1.." + std::to_string(cfg.seq_len()));
  if (opt.pos0 != 0) {
    const int64_t align = graph_window_align(cfg);
    if (align == 0)
      return invalid_argument(
          std::string("a window that starts inside the sequence needs a dense or sparse model; ") +
          family_name(cfg.family) + " attention depends on absolute positions");
    if (opt.pos0 < 0 || opt.pos0 % align != 0 || opt.pos0 + n > cfg.seq_len())
      return invalid_argument("a window of " + std::to_string(n) + " positions at " +
                              std::to_string(opt.pos0) + " must start at a multiple of " +
                              std::to_string(align) + " and end by " +
                              std::to_string(cfg.seq_len()));
  }
  if (opt.ff_chunks < 1 || opt.logit_chunks < 1)
    return invalid_argument("ff_chunks and logit_chunks must be at least 1");
  if (opt.reversible && !(cfg.family == Family::kReformer && cfg.lsh.reversible))
    return invalid_argument(
        "the reversible backward needs a Reformer with lsh.reversible on; this "
        "is a " +
        std::string(family_name(cfg.family)) +
        (cfg.family == Family::kReformer ? " with the plain residual" : "") +
        " model: use stored or recompute instead");
  const double rate = opt.cross_dropout >= 0 ? opt.cross_dropout : cfg.perceiver.cross_dropout;
  if (cfg.family == Family::kPerceiverAR && !(rate >= 0 && rate < 1))
    return invalid_argument("cross_dropout must be in [0, 1)");
  if constexpr (!std::is_same_v<T, float>) {
    if (opt.infer) return invalid_argument("an inference graph runs in float only");
  }
  ATTN_RETURN_IF_ERROR(check_params(cfg, p));
  c.p = std::make_shared<const ParamSet<T>>(p);  // (a copy of the map, the same Vars)

  GraphHidden<T> out;
  Var<T> emb = embed(tape, p, cfg, x, opt.pos0, n);  // (n, D)
  out.hidden = family_hidden(tape, c, emb, &out.first_row);
  if (opt.infer && !opt.infer->status.is_ok()) return opt.infer->status;
  if (opt.cancel && opt.cancel->load()) return cancelled("forward cancelled");
  return out;
}

template <typename T>
Expected<Var<T>> graph_loss(Tape<T>& tape, const ModelConfig& cfg, const ParamSet<T>& p,
                            const uint8_t* x, int64_t n, const GraphOptions& opt,
                            int64_t* rows_out) {
  auto gh = graph_hidden(tape, cfg, p, x, n, opt);
  if (!gh) return gh.status();
  if (rows_out) *rows_out = n - gh->first_row;
  return head_loss(tape, p, gh->hidden, x + opt.pos0 + gh->first_row, opt.logit_chunks);
}

template ParamSet<float> params_from_weights<float>(const ModelConfig&, const WeightMap&);
template ParamSet<double> params_from_weights<double>(const ModelConfig&, const WeightMap&);
template Expected<GraphHidden<float>> graph_hidden<float>(Tape<float>&, const ModelConfig&,
                                                          const ParamSet<float>&, const uint8_t*,
                                                          int64_t, const GraphOptions&);
template Expected<GraphHidden<double>> graph_hidden<double>(Tape<double>&, const ModelConfig&,
                                                            const ParamSet<double>&, const uint8_t*,
                                                            int64_t, const GraphOptions&);
template Expected<Var<float>> graph_loss<float>(Tape<float>&, const ModelConfig&,
                                                const ParamSet<float>&, const uint8_t*, int64_t,
                                                const GraphOptions&, int64_t*);
template Expected<Var<double>> graph_loss<double>(Tape<double>&, const ModelConfig&,
                                                  const ParamSet<double>&, const uint8_t*, int64_t,
                                                  const GraphOptions&, int64_t*);

}  // namespace attnscope::tape
