// Memory of a training step, measured (one real forward + backward on the tape, the tracker's
// peak per category) and by formula (weights, gradients, the activations and attention storage
// each technique keeps), and the seeds' headline figures through the same formula.
#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>

#include "attnscope/attention.h"
#include "attnscope/train.h"
#include "core/rng.h"
#include "models/graph.h"

namespace attnscope {

namespace {

constexpr double kF = 4;  // bytes per float32 value

// One attention layer of a family for the formula: the rows (query positions) its block
// processes, the probability entries of all heads that storing attention keeps, and extra
// values it keeps besides a block's own (Perceiver AR's context keys and values).
struct LayerShape {
  double rows = 0;
  double attn_entries = 0;
  double extra_values = 0;
};

double causal(double n) {
  return n * (n + 1) / 2;
}

std::vector<LayerShape> layer_shapes(const ModelConfig& c) {
  const double n = static_cast<double>(c.seq_len()), h = c.heads, d = c.dim;
  std::vector<LayerShape> out;
  switch (c.family) {
    case Family::kDense:
      for (int l = 0; l < c.layers; ++l) out.push_back({n, h * causal(n), 0});
      break;
    case Family::kSparse:
      for (int l = 0; l < c.layers; ++l)
        out.push_back(
            {n, static_cast<double>(attn_sparse_layout_entries(c.sparse, l, c.heads, c.seq_len())),
             0});
      break;
    case Family::kReformer:
      // Each chunk of m queries sees its own and the previous chunk: 2m keys per round.
      for (int l = 0; l < c.layers; ++l)
        out.push_back({n, h * c.lsh.n_hashes * n * std::min(n, 2.0 * c.lsh.chunk), 0});
      break;
    case Family::kPerceiverAR: {
      const double m = std::min<double>(c.perceiver.latents, n);
      out.push_back({m, h * (m * n - m * (m - 1) / 2), 3 * n * d});
      for (int l = 0; l < c.layers; ++l) out.push_back({m, h * causal(m), 0});
      break;
    }
    case Family::kHourglass: {
      auto levels = hourglass_parse(c.hourglass.hierarchy);
      if (!levels) break;
      for (const HourglassLevel& lv : *levels) {
        const double len = std::ceil(n / lv.factor);
        for (int l = 0; l < lv.layers; ++l) out.push_back({len, h * causal(len), 0});
      }
      break;
    }
  }
  return out;
}

// Values one block keeps for its backward per row: LN1 out, q, k, v, attention out, the
// projection, the residual sum, LN2 out, the FFN's two hidden (F) rows, its output and the
// second residual; the layer norms' mean and inverse deviation are negligible.
double block_values(double rows, double d, double f, int ff_chunks) {
  return rows * (11 * d + 2 * f / std::max(1, ff_chunks));
}

}  // namespace

double memory_analytic(const ModelConfig& given, MemTechnique technique) {
  ModelConfig c = given;
  if (!config_resolve(c)) return 0;
  TrainOptions o;
  train_apply_technique(o, technique);
  const double n = static_cast<double>(c.seq_len()), d = c.dim, f = c.ff_dim;
  const double weights = static_cast<double>(model_param_count(c)) * kF;
  const double fixed = 2 * weights                              // weights and their gradients
                       + n * d * kF                             // the embedded inputs
                       + 2 * n * kVocab * kF / o.logit_chunks;  // logits and their gradient
  const std::vector<LayerShape> layers = layer_shapes(c);
  double widest = 0;
  for (const LayerShape& l : layers) widest = std::max(widest, l.rows);
  // Recomputation re-runs one block at a time in the backward: its values live again.
  const double one_block = block_values(widest, d, f, o.ff_chunks) * kF;
  double kept = 0;
  switch (technique) {
    case MemTechnique::kStored:
      for (const LayerShape& l : layers)
        kept += (block_values(l.rows, d, f, o.ff_chunks) + l.attn_entries + l.extra_values) * kF;
      // The peak is where the backward begins: every block's values are alive at once.
      return fixed + kept;
    case MemTechnique::kRecompute:
    case MemTechnique::kRecomputeAttention: {
      // Checkpoints: each block's input; then one block re-run, keeping its attention
      // probabilities (recompute) or only its logsumexps (recompute-attention).
      double widest_entries = 0;
      for (const LayerShape& l : layers) {
        kept += (l.rows * d + l.extra_values) * kF;
        widest_entries = std::max(widest_entries, l.attn_entries);
      }
      const double attention =
          technique == MemTechnique::kRecompute ? widest_entries * kF : c.heads * widest * kF;
      return fixed + kept + one_block + attention;
    }
    case MemTechnique::kReversible:
      // The two residual streams and one block rebuilt at a time: no per-layer term.
      return fixed + 2 * n * d * kF + one_block + c.heads * widest * kF;
  }
  return 0;
}

Expected<TrainMemoryPoint> memory_measure(const ModelConfig& base, int64_t length, int layers,
                                          MemTechnique technique, const std::atomic<bool>* cancel) {
  if (cancel && cancel->load()) return cancelled("memory measurement cancelled");
  if (length < 1 || length > INT_MAX)
    return invalid_argument("length " + std::to_string(length) + " is out of range");
  ModelConfig cfg = base;
  cfg.modality = Modality{};
  cfg.modality.kind = ModalityKind::kText;
  cfg.modality.length = static_cast<int>(length);
  if (cfg.family == Family::kHourglass) {
    ModelConfig probe = cfg;
    ATTN_RETURN_IF_ERROR(config_resolve(probe));
    if (layers != 0 && layers != probe.layers)
      return invalid_argument("hourglass models take their layers from the hierarchy '" +
                              cfg.hourglass.hierarchy + "' (" + std::to_string(probe.layers) +
                              "), not " + std::to_string(layers));
  } else {
    cfg.layers = layers;
  }
  ATTN_RETURN_IF_ERROR(config_resolve(cfg));
  ATTN_RETURN_IF_ERROR(config_validate(cfg));
  TrainOptions o;
  train_apply_technique(o, technique);
  if (o.reversible && !(cfg.family == Family::kReformer && cfg.lsh.reversible))
    return invalid_argument("the reversible technique needs a Reformer model with lsh.reversible");
  tape::GraphOptions g;
  g.store_attention = o.store_attention;
  g.recompute_blocks = o.recompute_blocks;
  g.reversible = o.reversible;
  g.ff_chunks = o.ff_chunks;
  g.logit_chunks = o.logit_chunks;

  std::vector<uint8_t> x(static_cast<size_t>(length));
  Rng rng(derive_seed(cfg.seed, static_cast<uint64_t>(length)));
  for (auto& t : x) t = static_cast<uint8_t>(rng.next_u64() & 0xff);

  MemTracker& tracker = MemTracker::instance();
  const MemSnapshot before = tracker.snapshot();
  TrainMemoryPoint pt;
  pt.length = length;
  pt.layers = cfg.layers;
  pt.technique = technique;
  MemSnapshot after;
  {
    tape::ParamSet<float> params;
    {
      InitOptions io;
      io.seed = cfg.seed;
      io.zero_logits = false;
      const WeightMap w = model_init_weights(cfg, io);
      params = tape::params_from_weights<float>(cfg, w);
    }  // the float tensors die here: the parameters are the weights from now on
    tracker.reset_peaks();
    const auto t0 = std::chrono::steady_clock::now();
    {
      tape::Tape<float> tape;
      auto loss = tape::graph_loss(tape, cfg, params, x.data(), length, g);
      if (!loss) return loss.status();
      tape.backward(*loss);
    }
    pt.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    after = tracker.snapshot();
  }
  auto above = [](size_t peak, size_t base_now) { return peak > base_now ? peak - base_now : 0; };
  pt.peak_total = above(after.total_peak, before.total_current);
  for (size_t i = 0; i < pt.peak_by_category.size(); ++i)
    pt.peak_by_category[i] = above(after.by_category[i].peak, before.by_category[i].current);
  pt.analytic_bytes = memory_analytic(cfg, technique);
  return pt;
}

std::vector<MemorySeedFigure> memory_seed_figures() {
  // The articles count full N x N float32 matrices per layer and head: stored = all layers,
  // recomputed = one layer's at a time.
  auto matrices = [](double layers, double heads, double n) { return layers * heads * n * n * kF; };
  std::vector<MemorySeedFigure> out;
  const char* image = "Sparse Transformer: 64x64x3 image (N = 12288), dense, 64 layers, 4 heads";
  const char* audio = "Sparse Transformer: 24,000 audio samples, dense, 64 layers, 4 heads";
  out.push_back({image, "stored", matrices(64, 4, 12288), 154e9});
  out.push_back({image, "recomputed", matrices(1, 4, 12288), 2.4e9});
  out.push_back({audio, "stored", matrices(64, 4, 24000), 590e9});
  out.push_back({audio, "recomputed", matrices(1, 4, 24000), 9.2e9});
  // The Reformer post names no model size; this is a small text model at 2^20 tokens under
  // the whole formula (weights, gradients, two streams, one block, chunked logits).
  ModelConfig r;
  r.family = Family::kReformer;
  r.modality.kind = ModalityKind::kText;
  r.modality.length = 1 << 20;
  r.layers = 6;
  r.dim = 256;
  r.heads = 4;
  out.push_back({"Reformer: 1,048,576 tokens (text), 6 layers, D 256, 4 heads, chunk 64, 2 hashes",
                 "reversible", memory_analytic(r, MemTechnique::kReversible), 16e9});
  return out;
}

}  // namespace attnscope
