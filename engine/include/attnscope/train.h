// Training: data sets of byte sequences, the AdamW trainer with its schedule, checkpoints and
// resume, and the memory measurement of real training steps under each technique.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "attnscope/config.h"
#include "attnscope/model.h"
#include "attnscope/status.h"
#include "attnscope/tensor.h"

namespace attnscope {

// ---- data ------------------------------------------------------------------------------
// Examples are byte sequences of exactly the model's length, in the token layout of its
// modality (images row by row, pixel by pixel, R G B; audio 8-bit mu-law; text bytes).
struct Dataset {
  std::vector<std::vector<uint8_t>> train, heldout;
  std::vector<std::string> train_names, heldout_names;  // source file (and offset) of each
  std::string describe;                                 // "412 images from DIR (...)"
};
struct DataOptions {
  double heldout_share = 0.05;         // share of examples held out (at least 1 when >= 2 exist)
  uint64_t split_seed = 0;             // the split is a deterministic function of names and seed
  bool crop = false;                   // images: centre-crop to the aspect ratio, else scale whole
  std::string background = "#ffffff";  // images with alpha are composited on this colour
  // Images -> tokens in the modality's layout (W x H, scaled or centre-cropped per `crop`,
  // alpha composited on `background`). The engine decodes no image formats: without this,
  // image data is refused. The apps pass cli::image_dataset_decode (app/media, Qt).
  std::function<Expected<std::vector<uint8_t>>(const std::string& path, const Modality& m,
                                               const DataOptions& o)>
      image_decoder;
};
// DIR: every PNG/JPEG (images) or WAV (audio) or text file below it; FILE: one file (text:
// cut into windows of the model's length; audio: cut into clips). Refuses with a message
// naming the file when nothing usable is found or a file is corrupt (corrupt files are
// skipped with a count in describe when others are usable).
Expected<Dataset> dataset_load(const std::string& path, const Modality& modality,
                               const DataOptions& opt);

// ---- training ----------------------------------------------------------------------------
// stored: every activation and attention probability kept; recompute: blocks re-run in the
// backward, each keeping its attention probabilities while it is re-run (the Sparse
// Transformer's recomputation: one layer's matrices at a time); recompute-attention: blocks
// re-run and attention probabilities recomputed tile by tile (no probability matrix kept at
// all); reversible: the Reformer's reversible residual rebuilt from outputs.
enum class MemTechnique { kStored, kRecompute, kRecomputeAttention, kReversible };
const char* mem_technique_name(MemTechnique t);
Expected<MemTechnique> mem_technique_from_name(const std::string& s);

struct TrainOptions {
  int64_t steps = 1000;
  int batch = 8;         // sequences per step (gradients accumulated over them)
  double lr = 3e-4;      // peak learning rate
  int64_t warmup = 100;  // linear warm-up steps, then cosine decay to lr * min_lr_ratio
  double min_lr_ratio = 0.1;
  double weight_decay = 0.01;  // AdamW, matrices only (not biases, norms, embeddings)
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double clip = 1.0;               // global gradient norm clip (0 = off)
  int64_t eval_every = 100;        // steps between held-out bits/dim
  int64_t eval_examples = 16;      // held-out examples per evaluation (0 = all)
  int64_t checkpoint_every = 500;  // steps between checkpoints (0 = only at the end)
  uint64_t seed = 0;               // batch order
  int threads = 0;                 // 0 = all cores
  // > 0: each step trains every sequence on one window of this many positions, its start
  // drawn from the seed among the multiples of the model's pattern period, embedded at its
  // own positions (the sequence as if it began there). More steps for the same tokens; every
  // position of the model is still trained. Dense and sparse models only. 0 = whole sequences.
  int64_t window = 0;
  // > 0: run() returns after this step (evaluating and writing a checkpoint there), so that
  // one schedule of `steps` can be trained in parts and continued with resume; 0 = to the end.
  // The caller's, like steps and the cadences: not restored by resume.
  int64_t stop_at = 0;
  // Memory techniques.
  bool store_attention = true;  // false: recompute attention probabilities in the backward
  bool recompute_blocks = false;
  bool reversible = false;  // Reformer with lsh.reversible only
  int ff_chunks = 1;
  int logit_chunks = 1;
};
// The trainer's numeric settings, one row each: the command-line flag (null: none), the key in
// a checkpoint's options (null: not kept there, a per-run setting), whether resume takes it back
// from the checkpoint, the flag's value name and help, the accepted range (inclusive) and the
// field. attnscope-cli train's flags, help and parsing, the checkpoint's options and their range
// checks all come from this one table.
struct TrainOptionField {
  const char* flag;
  const char* key;
  bool restored;
  const char* value;
  const char* help;
  const char* default_text;  // null: the default TrainOptions' value
  double lo, hi;
  std::variant<int TrainOptions::*, int64_t TrainOptions::*, uint64_t TrainOptions::*,
               double TrainOptions::*>
      field;
  bool integer() const { return !std::holds_alternative<double TrainOptions::*>(field); }
  double get(const TrainOptions& o) const {
    return std::visit([&o](auto m) { return static_cast<double>(o.*m); }, field);
  }
  void set(TrainOptions* o, double v) const {
    std::visit([o, v](auto m) { o->*m = static_cast<std::remove_reference_t<decltype(o->*m)>>(v); },
               field);
  }
};
const std::vector<TrainOptionField>& train_option_fields();

// Sets the technique switches of a preset: stored = keep everything; recompute = blocks
// re-run in the backward (attention probabilities of one block at a time); reversible =
// rebuild from outputs (Reformer) with attention recomputed and chunked FFN/logits.
void train_apply_technique(TrainOptions& opt, MemTechnique t);
// The learning rate of step s (0-based): lr * (s + 1) / warmup during the warm-up, then a
// cosine from lr down to lr * min_lr_ratio at step opt.steps.
double train_lr_at(const TrainOptions& opt, int64_t step);
// Scales the gradients (pointer, count pairs) so that their global L2 norm is at most clip
// (clip <= 0: unchanged) and returns the norm before clipping.
double train_clip_global_norm(const std::vector<std::pair<float*, int64_t>>& grads, double clip);
// One AdamW update (as llm.c's update step) of n weights w with gradients g and moments m, v
// (updated in place) at step t (1-based): bias-corrected moments, the update
// lr * m^ / (sqrt(v^) + eps), and decoupled weight decay w *= 1 - lr * weight_decay (pass 0 for
// tensors that are not decayed). Arithmetic in double, stored as float.
struct AdamWStep {
  double lr = 0, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0;
  int64_t t = 1;
};
void train_adamw_update(float* w, const float* g, float* m, float* v, int64_t n,
                        const AdamWStep& st);

// What the trainer reports after each step and each evaluation.
struct TrainProgress {
  int64_t step = 0, steps = 0;
  double loss_bits = 0;  // training loss of this step, bits per position
  double lr = 0;
  double grad_norm = 0;      // before clipping
  double tokens_per_s = 0;   // training throughput over the last step
  double heldout_bits = -1;  // set on evaluation steps, else < 0
  double elapsed_s = 0;
};
using TrainProgressFn = std::function<void(const TrainProgress&)>;

// The optimiser state and step count that a checkpoint carries besides the weights.
struct TrainState;

class Trainer {
 public:
  // Takes a model (config + weights); the trainer owns float copies of the parameters.
  static Expected<std::unique_ptr<Trainer>> create(const ModelConfig& cfg, const WeightMap& w,
                                                   const TrainOptions& opt);
  ~Trainer();

  // One optimisation step over a batch of sequences (each seq_len bytes). Returns the mean
  // loss in bits per position.
  Expected<double> step(const std::vector<const std::vector<uint8_t>*>& batch,
                        const std::atomic<bool>* cancel = nullptr);
  // Held-out bits/dim of examples with the current weights (the same number
  // model_bits_per_dim gives for the model file written from them).
  Expected<double> evaluate(const std::vector<std::vector<uint8_t>>& examples,
                            const std::atomic<bool>* cancel = nullptr);
  // Runs from the current step until step_count() == opt.steps (the schedule's length, so a
  // resumed run ends where the straight one would), or opt.stop_at when that comes first
  // (returning ok after its checkpoint); evaluates and checkpoints
  // (to checkpoint_path, atomically) on schedule; stops cleanly when cancel is set (after
  // writing a checkpoint). progress may be empty.
  Status run(const Dataset& data, const std::string& checkpoint_path,
             const TrainProgressFn& progress, const std::atomic<bool>* cancel);

  int64_t step_count() const;
  const ModelConfig& config() const;
  WeightMap weights() const;  // float tensors in the model file's shapes
  // The model file: config, weights and (with_state) the optimiser state and step, so that
  // resume continues exactly. Written atomically.
  Status save(const std::string& path, bool with_state = true) const;
  // Continues from a file written by save (weights, moments, step); refuses a file whose
  // config differs from this trainer's. The optimisation settings of the checkpoint (batch,
  // lr, warmup, min_lr_ratio, weight_decay, betas, eps, clip, seed) replace this trainer's so
  // that the run continues exactly; steps, cadences and memory switches stay the caller's.
  // The optimiser state lives beside the model file in path + ".train" (safetensors), so the
  // model file stays a plain model that every tool loads.
  Status resume(const std::string& path);
  // The options in force (after resume: the checkpoint's optimisation settings).
  const TrainOptions& options() const;

 private:
  Trainer();
  std::unique_ptr<TrainState> st_;
};

// ---- memory, measured ------------------------------------------------------------------
struct TrainMemoryPoint {
  int64_t length = 0;
  int layers = 0;
  MemTechnique technique = MemTechnique::kStored;
  size_t peak_total = 0;  // tracker peak over one forward + backward step
  std::array<size_t, static_cast<size_t>(MemCategory::kCount)> peak_by_category{};
  double analytic_bytes = 0;  // the formula's estimate of the same peak
  double seconds = 0;         // of the measured step
};
// Builds a model of `family` (base's other settings; its length replaced by `length` as a
// text modality), runs one real training step (forward and backward over one sequence,
// gradients included; no optimiser moments) under the technique and reports the tracker's peak.
// base's auto (0) fields are resolved for each length (sparse stride, LSH buckets, pos_width,
// latents): pass an unresolved base to keep them auto. Hourglass takes its layers from the
// hierarchy (layers must be 0 or that count). Peaks are above the level before the call.
Expected<TrainMemoryPoint> memory_measure(const ModelConfig& base, int64_t length, int layers,
                                          MemTechnique technique, const std::atomic<bool>* cancel);
// The analytic peak of the same step: weights + gradients + the activations the technique
// keeps + attention storage, float32. Stored dense attention counts the causal half that the
// tiles keep, layers * heads * N(N+1)/2 * 4 bytes; sparse the layout's entries; LSH N * 2m per
// round and head; recompute keeps one block input per layer plus one block re-run; reversible
// has no per-layer term.
double memory_analytic(const ModelConfig& cfg, MemTechnique technique);

// The seeds' headline configurations next to the figures the articles publish: the Sparse
// Transformer's stored / recomputed attention (full N x N float32 matrices per layer and head,
// as the articles count them), and the Reformer's 1M tokens through memory_analytic.
struct MemorySeedFigure {
  std::string what;          // "Sparse Transformer: 64x64x3 image, dense 64 layers, 4 heads"
  std::string technique;     // "stored" or "recomputed"
  double formula_bytes = 0;  // our formula
  double published_bytes = 0;
};
std::vector<MemorySeedFigure> memory_seed_figures();

}  // namespace attnscope
