// What the engine worker publishes for the views: the model summary, the append-only RunStore
// of one run (tokens, distributions, entropies) and the immutable Snapshot that points at both.
// Views read these through const accessors only; nothing here calls the engine.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "attnscope/config.h"
#include "attnscope/tensor.h"
#include "playground.h"

namespace session {

struct ModelSummary {
  std::string path;
  attnscope::ModelConfig config;
  std::string family;       // "dense", "sparse", ...
  std::string config_text;  // "image:32x32x3, 4 layers, dim 128, 4 heads, ff 512"
  int64_t param_count = 0;
  size_t file_bytes = 0;
  std::vector<std::string> layer_kinds;  // one line per attention layer, in order
};

// The positions of one run, with a capacity fixed at creation. Tokens below prompt_length()
// are set at creation and never change. The worker (the only writer) fills position p
// (token, distribution, entropy) and then publishes filled() = p + 1 with release order;
// readers load filled() with acquire order and read only below it, where nothing changes
// again. So a reader never copies the buffers and never takes a lock to read them.
class RunStore {
 public:
  // keep empty: prompt is a prefix that is kept. Otherwise keep has one entry per position and
  // prompt one token per position; positions with keep[p] != 0 hold prompt[p] from creation.
  RunStore(const attnscope::Modality& modality, std::vector<uint8_t> prompt,
           std::vector<uint8_t> keep = {});
  RunStore(const RunStore&) = delete;
  RunStore& operator=(const RunStore&) = delete;

  const attnscope::Modality& modality() const { return modality_; }
  int64_t length() const { return static_cast<int64_t>(tokens_.size()); }
  int64_t prompt_length() const { return prompt_length_; }
  // Positions with a distribution (prompt positions get one too, as the run passes them).
  int64_t filled() const { return filled_.load(std::memory_order_acquire); }
  // Positions whose token is known: the prompt, or filled() once the run is past it.
  int64_t known(int64_t filled_now) const { return std::max(prompt_length_, filled_now); }
  // Whether position p is a kept prompt token: below prompt_length() (the kept prefix) or, with
  // a keep mask, anywhere the mask keeps it. Kept tokens are valid from creation.
  bool kept(int64_t p) const {
    return p < prompt_length_ || (!keep_.empty() && keep_[static_cast<size_t>(p)] != 0);
  }
  bool has_keep_mask() const { return !keep_.empty(); }
  // Sampled (not kept) positions below filled_now: what the run has generated so far.
  int64_t generated(int64_t filled_now) const;

  // Valid for p < known(filled()).
  uint8_t token(int64_t p) const { return tokens_[static_cast<size_t>(p)]; }
  const uint8_t* tokens() const { return tokens_.data(); }
  // The model's 256 probabilities (temperature 1) for position p < filled().
  const float* probs(int64_t p) const { return probs_.data() + static_cast<size_t>(p) * 256; }
  // Entropy in bits of probs(p), p < filled().
  float entropy_bits(int64_t p) const { return entropy_[static_cast<size_t>(p)]; }

  // Worker thread only: position p (== filled()) with its token and the logits it came from.
  void write(int64_t p, uint8_t token, const float* logits);

 private:
  attnscope::Modality modality_;
  int64_t prompt_length_ = 0;  // with a keep mask: the kept positions before the first sampled
  std::vector<uint8_t> keep_;
  std::vector<uint8_t> tokens_;
  std::vector<float> probs_;
  std::vector<float> entropy_;
  std::atomic<int64_t> filled_{0};
};

// What Stop reports for sample index (0-based) of count, stopped with filled positions: the
// progress bar's figure (known / length) and what was generated, so the message matches what is
// drawn ("nothing generated yet" while the run still reads the prompt).
std::string run_stop_message(const RunStore& store, int64_t filled, int index, int count);

enum class RunState { kNoModel, kIdle, kRunning, kFinished, kStopped, kFailed };
const char* run_state_name(RunState s);

// One published state. Immutable once published; shared by every view that holds it.
struct Snapshot {
  uint64_t serial = 0;                        // grows with every publish
  std::shared_ptr<const ModelSummary> model;  // null until a model is loaded
  std::shared_ptr<const RunStore> run;        // the prompt or run on show; null without a model
  int64_t filled = 0;                         // run->filled() when this was published
  // Every sample of the latest run so far, seeds S, S+1, ...; the last one is `run`.
  std::vector<std::shared_ptr<const RunStore>> samples;
  // How many samples the run was asked for.
  int samples_wanted = 1;
  RunState state = RunState::kNoModel;
  double tokens_per_s = 0;  // positions per second over the run so far
  double eta_s = 0;         // seconds left at that rate
  attnscope::MemSnapshot memory;
  std::string backend_note;
  std::string message;  // the last outcome or error, one line
  // Reformer and Perceiver AR: every finished run of this model with its knob value.
  std::vector<KnobRow> knob_rows;
  // Whether the prompt came from a whole loaded image or clip, and the open model's score of
  // it (null until Session::score_truth() has run for this model and prompt).
  bool has_truth = false;
  bool truth_pending = false;  // a score_truth() is queued or running
  std::string truth_error;     // why the last score failed (an engine error, not a Stop)
  std::shared_ptr<const TruthScore> truth;
  // The latest Compare grid (null before one starts), the file names of the models added to
  // it and of the prompts added besides the current one.
  std::shared_ptr<const CompareResult> compare;
  std::vector<std::string> compare_models;
  std::vector<std::string> compare_prompts;
};

}  // namespace session
