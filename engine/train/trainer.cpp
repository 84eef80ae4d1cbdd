// The trainer: float parameters on the tape, gradient accumulation over a batch, AdamW with
// warm-up + cosine schedule and global-norm clipping, the seeded batch order, evaluation, and
// checkpoints (the model file plus the optimiser state in a ".train" sidecar) with resume.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "attnscope/atomic_file.h"
#include "attnscope/safetensors.h"
#include "attnscope/train.h"
#include "core/rng.h"
#include "models/graph.h"

namespace attnscope {

namespace {

using json = nlohmann::json;
using OptimizerVector = std::vector<float, TrackedAllocator<float, MemCategory::kOptimizer>>;

constexpr const char* kStateFormat = "attnscope-train";
constexpr const char* kStateVersion = "1";
constexpr double kLn2 = 0.6931471805599453;

// FNV-1a over the parameters' bytes in name order: ties a ".train" file to the model file
// written with it (a crash between the two renames leaves a pair that does not match).
uint64_t params_fingerprint(const tape::ParamSet<float>& p) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const auto& [name, v] : p) {
    for (char c : name) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
    const auto* bytes = reinterpret_cast<const uint8_t*>(v->data.data());
    for (size_t i = 0; i < v->data.size() * sizeof(float); ++i)
      h = (h ^ bytes[i]) * 0x100000001b3ull;
  }
  return h;
}

}  // namespace

const std::vector<TrainOptionField>& train_option_fields() {
  using O = TrainOptions;
  constexpr double kBig = 1099511627776.0;  // 2^40
  static const std::vector<TrainOptionField> fields = {
      {"--steps", "steps", false, "N", "total optimisation steps of the schedule", "required", 1,
       kBig, &O::steps},
      {"--batch", "batch", true, "B", "sequences per step, gradients accumulated", nullptr, 1,
       1 << 20, &O::batch},
      {"--lr", "lr", true, "X", "peak learning rate", nullptr, 1e-12, 10, &O::lr},
      {"--warmup", "warmup", true, "N", "linear warm-up steps, then cosine decay to lr/10",
       "min(100, steps/10)", 0, kBig, &O::warmup},
      {nullptr, "min_lr_ratio", true, "", "the cosine's end as a share of lr", nullptr, 0, 1,
       &O::min_lr_ratio},
      {"--weight-decay", "weight_decay", true, "X", "AdamW decoupled weight decay of the matrices",
       nullptr, 0, 10, &O::weight_decay},
      {nullptr, "beta1", true, "", "AdamW beta1", nullptr, 0, 0.999999, &O::beta1},
      {nullptr, "beta2", true, "", "AdamW beta2", nullptr, 0, 0.999999, &O::beta2},
      {nullptr, "eps", true, "", "AdamW epsilon", nullptr, 1e-30, 1, &O::eps},
      {"--clip", "clip", true, "X", "global gradient norm clip, 0 = off", nullptr, 0, 1e12,
       &O::clip},
      {"--eval-every", nullptr, false, "N",
       "steps between held-out evaluations, 0 = only at the end", nullptr, 0, kBig, &O::eval_every},
      {"--eval-examples", nullptr, false, "N", "held-out examples per evaluation, 0 = all", nullptr,
       0, kBig, &O::eval_examples},
      {"--checkpoint-every", nullptr, false, "N", "steps between checkpoints, 0 = only at the end",
       nullptr, 0, kBig, &O::checkpoint_every},
      {"--ff-chunks", nullptr, false, "K", "feed-forward row chunks", "the technique's", 1, 1 << 20,
       &O::ff_chunks},
      {"--logit-chunks", nullptr, false, "K", "output log-prob row chunks", "the technique's", 1,
       1 << 20, &O::logit_chunks},
      {"--window", "window", true, "K",
       "dense and sparse: train each sequence on one window of K positions at a random start (a "
       "multiple of the sparse stride), embedded at its own positions: more, cheaper steps",
       "0, whole sequences", 0, kBig, &O::window},
      {"--seed", "seed", true, "S", "seed of the batch order and the held-out split", nullptr, 0,
       9.2e18, &O::seed},
      {"--stop-at", nullptr, false, "N",
       "stop after step N of the schedule (evaluating and writing a checkpoint there): a run of "
       "--steps in parts, each continued with --resume",
       "0, to the end", 0, kBig, &O::stop_at},
  };
  return fields;
}

namespace {

json options_to_json(const TrainOptions& o) {
  json j = json::object();
  for (const TrainOptionField& f : train_option_fields()) {
    if (!f.key) continue;
    if (std::holds_alternative<double TrainOptions::*>(f.field))
      j[f.key] = f.get(o);
    else if (std::holds_alternative<uint64_t TrainOptions::*>(f.field))
      j[f.key] = o.*std::get<uint64_t TrainOptions::*>(f.field);
    else
      j[f.key] = static_cast<int64_t>(f.get(o));
  }
  return j;
}

// The settings that decide the trajectory, taken from a checkpoint (a key absent from an older
// checkpoint keeps the caller's value: window came later).
void options_restore(const json& j, TrainOptions* o) {
  for (const TrainOptionField& f : train_option_fields()) {
    if (!f.key || !f.restored || !j.contains(f.key)) continue;
    if (std::holds_alternative<uint64_t TrainOptions::*>(f.field))
      o->*std::get<uint64_t TrainOptions::*>(f.field) = j.at(f.key).get<uint64_t>();
    else if (f.integer())
      f.set(o, static_cast<double>(j.at(f.key).get<int64_t>()));
    else
      f.set(o, j.at(f.key).get<double>());
  }
}

Status options_check(const TrainOptions& o) {
  for (const TrainOptionField& f : train_option_fields()) {
    if (std::holds_alternative<uint64_t TrainOptions::*>(f.field)) continue;  // any seed
    const double v = f.get(o);
    if (!(v >= f.lo && v <= f.hi))
      return invalid_argument(std::string(f.key ? f.key : f.flag + 2) + " must be in " +
                              json(f.lo).dump() + " .. " + json(f.hi).dump() + ", not " +
                              json(v).dump());
  }
  return Status::ok();
}

// The first key (section.key) whose value differs between two configurations, for messages.
std::string config_difference(const ModelConfig& a, const ModelConfig& b) {
  const json ja = json::parse(config_to_json(a)), jb = json::parse(config_to_json(b));
  std::string found;
  auto show = [](const json& v) { return v.is_null() ? std::string("(none)") : v.dump(); };
  for (const auto& [k, va] : ja.items()) {
    const json vb = jb.contains(k) ? jb.at(k) : json();
    if (va == vb) continue;
    if (va.is_object() && vb.is_object()) {
      for (const auto& [k2, va2] : va.items()) {
        const json vb2 = vb.contains(k2) ? vb.at(k2) : json();
        if (va2 != vb2) return k + "." + k2 + " is " + show(va2) + " there, " + show(vb2) + " here";
      }
    }
    return k + " is " + show(va) + " there, " + show(vb) + " here";
  }
  return "configurations differ";
}

Expected<std::vector<uint8_t>> read_whole_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return not_found(path + ": no such file");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) return internal_error(path + ": cannot read");
  return bytes;
}

}  // namespace

const char* mem_technique_name(MemTechnique t) {
  switch (t) {
    case MemTechnique::kStored:
      return "stored";
    case MemTechnique::kRecompute:
      return "recompute";
    case MemTechnique::kRecomputeAttention:
      return "recompute-attention";
    case MemTechnique::kReversible:
      return "reversible";
  }
  return "?";
}

Expected<MemTechnique> mem_technique_from_name(const std::string& s) {
  for (MemTechnique t : {MemTechnique::kStored, MemTechnique::kRecompute,
                         MemTechnique::kRecomputeAttention, MemTechnique::kReversible})
    if (s == mem_technique_name(t)) return t;
  return invalid_argument(
      "memory technique must be stored, recompute, recompute-attention or reversible, got '" + s +
      "'");
}

void train_apply_technique(TrainOptions& opt, MemTechnique t) {
  switch (t) {
    case MemTechnique::kStored:
      opt.store_attention = true;
      opt.recompute_blocks = false;
      opt.reversible = false;
      opt.ff_chunks = 1;
      opt.logit_chunks = 1;
      break;
    case MemTechnique::kRecompute:
      opt.store_attention = true;
      opt.recompute_blocks = true;
      opt.reversible = false;
      opt.ff_chunks = 1;
      opt.logit_chunks = 1;
      break;
    case MemTechnique::kRecomputeAttention:
      opt.store_attention = false;
      opt.recompute_blocks = true;
      opt.reversible = false;
      opt.ff_chunks = 1;
      opt.logit_chunks = 1;
      break;
    case MemTechnique::kReversible:
      opt.store_attention = false;
      opt.recompute_blocks = false;
      opt.reversible = true;
      opt.ff_chunks = 4;
      opt.logit_chunks = 4;
      break;
  }
}

double train_lr_at(const TrainOptions& opt, int64_t step) {
  if (opt.warmup > 0 && step < opt.warmup)
    return opt.lr * static_cast<double>(step + 1) / static_cast<double>(opt.warmup);
  const double span = static_cast<double>(std::max<int64_t>(1, opt.steps - opt.warmup));
  const double t = std::clamp(static_cast<double>(step - opt.warmup) / span, 0.0, 1.0);
  const double cosine = 0.5 * (1.0 + std::cos(3.141592653589793 * t));
  return opt.lr * (opt.min_lr_ratio + (1.0 - opt.min_lr_ratio) * cosine);
}

void train_adamw_update(float* w, const float* g, float* m, float* v, int64_t n,
                        const AdamWStep& st) {
  const double t = static_cast<double>(st.t), b1 = st.beta1, b2 = st.beta2;
  const double bc1 = 1.0 - std::pow(b1, t), bc2 = 1.0 - std::pow(b2, t);
  const double keep = 1.0 - st.lr * st.weight_decay;
#pragma omp parallel for if (n > 65536) schedule(static)
  for (int64_t e = 0; e < n; ++e) {
    const double gd = g[e];
    const double me = b1 * m[e] + (1.0 - b1) * gd;
    const double ve = b2 * v[e] + (1.0 - b2) * gd * gd;
    m[e] = static_cast<float>(me);
    v[e] = static_cast<float>(ve);
    const double upd = (me / bc1) / (std::sqrt(ve / bc2) + st.eps);
    w[e] = static_cast<float>(w[e] * keep - st.lr * upd);
  }
}

double train_clip_global_norm(const std::vector<std::pair<float*, int64_t>>& grads, double clip) {
  double ss = 0;
  for (const auto& [g, n] : grads)
    for (int64_t e = 0; e < n; ++e) ss += static_cast<double>(g[e]) * g[e];
  const double norm = std::sqrt(ss);
  if (clip > 0 && norm > clip) {
    const auto s = static_cast<float>(clip / norm);
    for (const auto& [g, n] : grads)
      for (int64_t e = 0; e < n; ++e) g[e] *= s;
  }
  return norm;
}

struct TrainState {
  ModelConfig cfg;
  TrainOptions opt;
  tape::ParamSet<float> params;
  std::map<std::string, OptimizerVector> m, v;  // AdamW moments, in the params' shapes
  std::set<std::string> decayed;                // 2-D matrices other than embeddings
  int64_t step = 0;
  double last_grad_norm = 0, last_lr = 0;
  // The batch order: a permutation of the training examples per epoch, from seed and epoch.
  int64_t order_epoch = -1;
  std::vector<size_t> order;
};

Trainer::Trainer() : st_(std::make_unique<TrainState>()) {}
Trainer::~Trainer() = default;

Expected<std::unique_ptr<Trainer>> Trainer::create(const ModelConfig& given, const WeightMap& w,
                                                   const TrainOptions& opt) {
  ModelConfig cfg = given;
  ATTN_RETURN_IF_ERROR(config_resolve(cfg));
  ATTN_RETURN_IF_ERROR(config_validate(cfg));
  ATTN_RETURN_IF_ERROR(model_check_weights(cfg, w));
  ATTN_RETURN_IF_ERROR(options_check(opt));
  if (opt.reversible && !(cfg.family == Family::kReformer && cfg.lsh.reversible))
    return invalid_argument(
        "the reversible technique needs a Reformer model with lsh.reversible; this model is " +
        std::string(family_name(cfg.family)));
  if (opt.window > 0) {
    const int64_t align = tape::graph_window_align(cfg);
    if (align == 0)
      return invalid_argument(std::string("training on windows needs a dense or sparse model; ") +
                              family_name(cfg.family) +
                              " attention depends on absolute positions (train whole sequences)");
    if (opt.window > cfg.seq_len())
      return invalid_argument("the window of " + std::to_string(opt.window) +
                              " positions is longer than the model's " +
                              std::to_string(cfg.seq_len()));
  }
  std::unique_ptr<Trainer> t(new Trainer());
  TrainState& s = *t->st_;
  s.cfg = cfg;
  s.opt = opt;
  s.params = tape::params_from_weights<float>(cfg, w);
  for (const ParamSpec& spec : model_param_specs(cfg))
    if (spec.shape.size() == 2 && spec.name.rfind("embed.", 0) != 0) s.decayed.insert(spec.name);
  for (const auto& [name, p] : s.params) {
    s.m[name].assign(p->data.size(), 0.0f);
    s.v[name].assign(p->data.size(), 0.0f);
  }
  if (opt.threads > 0) omp_set_num_threads(opt.threads);
  return t;
}

int64_t Trainer::step_count() const {
  return st_->step;
}
const ModelConfig& Trainer::config() const {
  return st_->cfg;
}
const TrainOptions& Trainer::options() const {
  return st_->opt;
}
WeightMap Trainer::weights() const {
  return tape::params_to_weights(st_->cfg, st_->params);
}

Expected<double> Trainer::step(const std::vector<const std::vector<uint8_t>*>& batch,
                               const std::atomic<bool>* cancel) {
  TrainState& s = *st_;
  const int64_t n_max = s.cfg.seq_len();
  if (batch.empty()) return invalid_argument("a training step needs at least one sequence");
  for (const auto* x : batch)
    if (!x || x->empty() || static_cast<int64_t>(x->size()) > n_max)
      return invalid_argument("a training sequence must have 1.." + std::to_string(n_max) +
                              " bytes (the model's length)");
  auto zero_grads = [&s] {
    for (auto& [name, p] : s.params)
      if (p->has_grad()) std::fill(p->grad.begin(), p->grad.end(), 0.0f);
  };
  zero_grads();

  tape::GraphOptions g;
  g.store_attention = s.opt.store_attention;
  g.recompute_blocks = s.opt.recompute_blocks;
  g.reversible = s.opt.reversible;
  g.ff_chunks = s.opt.ff_chunks;
  g.logit_chunks = s.opt.logit_chunks;
  // Gradients of the batch: the sum over sequences of d(mean loss)/dp, averaged below.
  double nats = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (cancel && cancel->load()) {
      zero_grads();
      return cancelled("training cancelled during step " + std::to_string(s.step + 1));
    }
    g.dropout_seed = derive_seed(s.opt.seed, static_cast<uint64_t>(s.step) + 1, i);
    int64_t n = static_cast<int64_t>(batch[i]->size());
    g.pos0 = 0;
    if (s.opt.window > 0 && s.opt.window < n) {
      // --window: one window of the sequence, starting at a multiple of the pattern's period
      // (dense and sparse only, checked by create).
      const int64_t align = tape::graph_window_align(s.cfg);
      const auto starts = static_cast<uint64_t>((n - s.opt.window) / align + 1);
      const uint64_t r =
          derive_seed(s.opt.seed ^ 0x57494e444f57ull, static_cast<uint64_t>(s.step) + 1, i);
      g.pos0 = align * static_cast<int64_t>(r % starts);
      n = s.opt.window;
    }
    // The family may train a sequence on a prefix of it (Perceiver AR: one window of latents).
    n = tape::graph_train_length(
        s.cfg, n,
        derive_seed(s.opt.seed ^ 0x5045524345495645ull, static_cast<uint64_t>(s.step) + 1, i));
    tape::Tape<float> tape;
    auto loss = tape::graph_loss(tape, s.cfg, s.params, batch[i]->data(), n, g);
    if (!loss) {
      zero_grads();
      return loss.status();
    }
    nats += (*loss)->data[0];
    tape.backward(*loss);
  }
  const auto inv = static_cast<float>(1.0 / static_cast<double>(batch.size()));
  std::vector<std::pair<float*, int64_t>> grads;
  for (auto& [name, p] : s.params) {
    float* gp = p->g();
    for (int64_t e = 0; e < p->numel(); ++e) gp[e] *= inv;
    grads.emplace_back(gp, p->numel());
  }
  const double loss_bits = nats / static_cast<double>(batch.size()) / kLn2;
  const double norm = train_clip_global_norm(grads, s.opt.clip);
  if (!std::isfinite(loss_bits) || !std::isfinite(norm)) {
    zero_grads();
    return internal_error("the loss or its gradient is not finite at step " +
                          std::to_string(s.step + 1) + "; try a lower learning rate");
  }

  // AdamW, weight decay on the matrices only.
  const double lr = train_lr_at(s.opt, s.step);
  AdamWStep st{lr, s.opt.beta1, s.opt.beta2, s.opt.eps, 0, s.step + 1};
  for (auto& [name, p] : s.params) {
    st.weight_decay = s.decayed.count(name) ? s.opt.weight_decay : 0.0;
    train_adamw_update(p->data.data(), p->grad.data(), s.m[name].data(), s.v[name].data(),
                       p->numel(), st);
  }
  zero_grads();
  ++s.step;
  s.last_grad_norm = norm;
  s.last_lr = lr;
  return loss_bits;
}

Expected<double> Trainer::evaluate(const std::vector<std::vector<uint8_t>>& examples,
                                   const std::atomic<bool>* cancel) {
  if (examples.empty()) return invalid_argument("no examples to evaluate");
  auto model = model_create(st_->cfg, weights());
  if (!model) return model.status();
  double sum = 0;
  for (const auto& x : examples) {
    if (cancel && cancel->load()) return cancelled("evaluation cancelled");
    auto bits =
        model_bits_per_dim_windowed(**model, x.data(), static_cast<int64_t>(x.size()), cancel);
    if (!bits) return bits.status();
    sum += *bits;
  }
  return sum / static_cast<double>(examples.size());
}

Status Trainer::run(const Dataset& data, const std::string& checkpoint_path,
                    const TrainProgressFn& progress, const std::atomic<bool>* cancel) {
  TrainState& s = *st_;
  const int64_t n = s.cfg.seq_len();
  if (data.train.empty()) return invalid_argument("the data set has no training examples");
  for (size_t i = 0; i < data.train.size(); ++i)
    if (static_cast<int64_t>(data.train[i].size()) != n)
      return invalid_argument(
          "training example " + (i < data.train_names.size() ? data.train_names[i] : "") + " has " +
          std::to_string(data.train[i].size()) + " bytes; the model takes " + std::to_string(n));
  std::vector<std::vector<uint8_t>> held;
  const size_t want =
      s.opt.eval_examples > 0 ? static_cast<size_t>(s.opt.eval_examples) : data.heldout.size();
  for (size_t i = 0; i < std::min(want, data.heldout.size()); ++i) held.push_back(data.heldout[i]);

  auto save_checkpoint = [&]() -> Status {
    return checkpoint_path.empty() ? Status::ok() : save(checkpoint_path);
  };
  auto stop = [&]() -> Status {
    Status st = save_checkpoint();
    if (!st)
      return internal_error("training cancelled at step " + std::to_string(s.step) +
                            ", and the checkpoint could not be written: " + st.message());
    return cancelled(
        "training cancelled after step " + std::to_string(s.step) + " of " +
        std::to_string(s.opt.steps) +
        (checkpoint_path.empty() ? std::string() : "; checkpoint written to " + checkpoint_path));
  };

  const auto start = std::chrono::steady_clock::now();
  const size_t count = data.train.size();
  const int64_t end =
      s.opt.stop_at > 0 ? std::min(s.opt.stop_at, s.opt.steps) : s.opt.steps;  // this part's
  std::vector<const std::vector<uint8_t>*> batch;
  while (s.step < end) {
    // Sequence k of the whole run is example order[k % count] of epoch k / count.
    batch.clear();
    for (int b = 0; b < s.opt.batch; ++b) {
      const auto k = static_cast<uint64_t>(s.step) * static_cast<uint64_t>(s.opt.batch) +
                     static_cast<uint64_t>(b);
      const auto epoch = static_cast<int64_t>(k / count);
      if (epoch != s.order_epoch) {
        s.order.resize(count);
        for (size_t i = 0; i < count; ++i) s.order[i] = i;
        Rng rng(derive_seed(s.opt.seed, static_cast<uint64_t>(epoch), 0x6f72646572ull));
        for (size_t i = count; i > 1; --i) std::swap(s.order[i - 1], s.order[rng.next_u64() % i]);
        s.order_epoch = epoch;
      }
      batch.push_back(&data.train[s.order[k % count]]);
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto loss = step(batch, cancel);
    if (!loss) return loss.status().code() == StatusCode::kCancelled ? stop() : loss.status();
    const auto t1 = std::chrono::steady_clock::now();

    TrainProgress p;
    p.step = s.step;
    p.steps = s.opt.steps;
    p.loss_bits = *loss;
    p.lr = s.last_lr;
    p.grad_norm = s.last_grad_norm;
    const double secs = std::chrono::duration<double>(t1 - t0).count();
    const int64_t trained = s.opt.window > 0 ? std::min(s.opt.window, n) : n;
    p.tokens_per_s = secs > 0 ? static_cast<double>(s.opt.batch * trained) / secs : 0;
    const bool last = s.step == end;
    if (!held.empty() && (last || (s.opt.eval_every > 0 && s.step % s.opt.eval_every == 0))) {
      auto bits = evaluate(held, cancel);
      if (!bits) return bits.status().code() == StatusCode::kCancelled ? stop() : bits.status();
      p.heldout_bits = *bits;
    }
    p.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (progress) progress(p);
    if (!last && s.opt.checkpoint_every > 0 && s.step % s.opt.checkpoint_every == 0)
      ATTN_RETURN_IF_ERROR(save_checkpoint());
    if (cancel && cancel->load()) return stop();
  }
  return save_checkpoint();
}

Status Trainer::save(const std::string& path, bool with_state) const {
  const TrainState& s = *st_;
  ATTN_RETURN_IF_ERROR(safetensors_save(path, s.cfg, weights()));
  if (!with_state) return Status::ok();

  // The sidecar: safetensors with the moments as F32 tensors "adam_m.NAME", "adam_v.NAME"
  // and the step, options and fingerprint of the weights in the metadata.
  json state = {{"step", s.step},
                {"options", options_to_json(s.opt)},
                {"weights_fingerprint", std::to_string(params_fingerprint(s.params))}};
  json header = json::object();
  header["__metadata__"] = {{"format", kStateFormat},
                            {"attnscope.train.version", kStateVersion},
                            {"attnscope.config", config_to_json(s.cfg)},
                            {"attnscope.train.state", state.dump()}};
  std::vector<const OptimizerVector*> order;
  uint64_t offset = 0;
  for (const char* kind : {"adam_m.", "adam_v."}) {
    const auto& moments = kind[5] == 'm' ? s.m : s.v;
    for (const auto& [name, vec] : moments) {
      const auto& p = s.params.at(name);
      const uint64_t bytes = vec.size() * sizeof(float);
      header[kind + name] = {{"dtype", "F32"},
                             {"shape", {p->rows, p->cols}},
                             {"data_offsets", {offset, offset + bytes}}};
      offset += bytes;
    }
  }
  // nlohmann's object keeps keys sorted; "adam_m." sorts before "adam_v." and names within
  // each follow the map's order, so the data is appended in the same order as the offsets.
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t header_len = text.size();
  const std::string state_path = path + ".train";
  AtomicFileSet file(0644);
  ATTN_RETURN_IF_ERROR(file.add_streamed(state_path, [&](const FileAppender& append) {
    ATTN_RETURN_IF_ERROR(append(&header_len, 8));
    ATTN_RETURN_IF_ERROR(append(text.data(), text.size()));
    for (const auto* moments : {&s.m, &s.v})
      for (const auto& [name, vec] : *moments)
        ATTN_RETURN_IF_ERROR(append(vec.data(), vec.size() * sizeof(float)));
    return Status::ok();
  }));
  Status st = file.commit();
  if (!st) return {st.code(), "cannot save " + state_path + ": " + st.message()};
  return Status::ok();
}

Status Trainer::resume(const std::string& path) {
  TrainState& s = *st_;
  auto loaded = safetensors_load(path);
  if (!loaded) return loaded.status();
  if (config_to_json(loaded->cfg) != config_to_json(s.cfg))
    return invalid_argument(path + " holds a model of another configuration (" +
                            config_difference(loaded->cfg, s.cfg) + "); cannot resume from it");
  const std::string state_path = path + ".train";
  auto bytes = read_whole_file(state_path);
  if (!bytes)
    return not_found(state_path +
                     ": no optimiser state beside the model file (train writes it with "
                     "every checkpoint)");
  auto bad = [&](const std::string& why) {
    return invalid_argument(state_path + ": " + why + "; cannot resume");
  };
  const std::vector<uint8_t>& b = *bytes;
  if (b.size() < 8) return bad("truncated");
  uint64_t header_len = 0;
  std::memcpy(&header_len, b.data(), 8);
  if (header_len > b.size() - 8) return bad("header runs past the end of the file");
  json header, state;
  try {
    header = json::parse(b.begin() + 8, b.begin() + 8 + static_cast<int64_t>(header_len));
    const json& meta = header.at("__metadata__");
    if (meta.at("format") != kStateFormat) return bad("not a training state file");
    if (meta.at("attnscope.train.version") != kStateVersion)
      return bad("training state version " + meta.at("attnscope.train.version").dump() +
                 " is not supported");
    state = json::parse(meta.at("attnscope.train.state").get<std::string>());
  } catch (const json::exception& e) {
    return bad(std::string("malformed header: ") + e.what());
  }
  const uint8_t* data = b.data() + 8 + header_len;
  const uint64_t data_bytes = b.size() - 8 - header_len;

  tape::ParamSet<float> params = tape::params_from_weights<float>(s.cfg, loaded->weights);
  std::map<std::string, OptimizerVector> m, v;
  TrainOptions opt = s.opt;
  int64_t step = 0;
  try {
    if (state.at("weights_fingerprint").get<std::string>() !=
        std::to_string(params_fingerprint(params)))
      return bad("it does not belong to " + path +
                 " (written at another step, or the model file was replaced)");
    step = state.at("step").get<int64_t>();
    options_restore(state.at("options"), &opt);
    for (const char* kind : {"adam_m.", "adam_v."}) {
      auto& moments = kind[5] == 'm' ? m : v;
      for (const auto& [name, p] : params) {
        const std::string key = kind + name;
        if (!header.contains(key)) return bad("missing tensor " + key);
        const json& e = header.at(key);
        const auto begin = e.at("data_offsets").at(0).get<uint64_t>();
        const auto end = e.at("data_offsets").at(1).get<uint64_t>();
        if (e.at("dtype") != "F32" || end < begin || end > data_bytes ||
            end - begin != static_cast<uint64_t>(p->numel()) * sizeof(float))
          return bad("tensor " + key + " does not match the model's parameter");
        OptimizerVector vec(static_cast<size_t>(p->numel()));
        std::memcpy(vec.data(), data + begin, end - begin);
        moments[name] = std::move(vec);
      }
    }
  } catch (const json::exception& e) {
    return bad(std::string("malformed state: ") + e.what());
  }
  if (step < 0) return bad("negative step");
  ATTN_RETURN_IF_ERROR(options_check(opt));
  s.params = std::move(params);
  s.m = std::move(m);
  s.v = std::move(v);
  s.opt = opt;
  s.step = step;
  s.order_epoch = -1;
  return Status::ok();
}

}  // namespace attnscope
