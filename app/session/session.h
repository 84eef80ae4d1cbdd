// Session: the engine on a worker thread. The GUI thread sends commands (open, prompt,
// generate, stop); the worker runs them in order and publishes Snapshots that views read.
// No view and no GUI-thread code calls the engine: they hold a Snapshot and read it.
#pragma once

#include <QObject>
#include <QString>
#include <QThread>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "attnscope/cuda.h"
#include "attnscope/generate.h"
#include "attnscope/model.h"
#include "inspection.h"
#include "snapshot.h"

namespace session {

class Session : public QObject {
  Q_OBJECT

 public:
  // Publishes at most this often while generating, plus once when a run ends.
  static constexpr std::chrono::milliseconds kPublishInterval{16};
  static constexpr std::chrono::milliseconds kLiveInspectInterval{500};

  explicit Session(QObject* parent = nullptr);
  ~Session() override;

  // The latest published state; never null. Cheap: copies one shared_ptr under the lock.
  std::shared_ptr<const Snapshot> snapshot() const;

  // Loads a model file (any generation under way is stopped first). Ends in model_loaded()
  // or failed(); a failure keeps the previous model.
  void open_model(const QString& path);
  // The tokens of a whole prompt image (W*H*C, raster order) of which the first keep_rows rows
  // are kept. Replaces what the canvas shows with the prompt and pending positions (a run
  // under way is stopped).
  void set_prompt(std::vector<uint8_t> image_tokens, int keep_rows);
  // The kept tokens themselves, any modality (an audio clip's first samples, a text's bytes);
  // cut to the model's length.
  // truth: the whole image or clip the prompt was cut from, if any (seq_len tokens), which
  // Compare scores each model on; anything else is ignored.
  void set_prompt_tokens(std::vector<uint8_t> kept, std::vector<uint8_t> truth = {});
  // A whole prompt image with a keep mask (one entry per token, W*H*C): tokens where keep is 1
  // are kept, the rest are regenerated, each given everything before it (see GenerateRequest).
  void set_prompt_mask(std::vector<uint8_t> image_tokens, std::vector<uint8_t> keep);
  // Starts a run from the current prompt: `samples` runs one after another with seeds
  // seed, seed + 1, ... Ends in one run_ended().
  void generate(const attnscope::SamplingParams& sampling, int samples = 1);
  // Asks the run under way to stop; the engine sees it before the next token.
  void stop();
  // Queues an inspection for the view tabs; a newer request of the same kind drops an older
  // one still waiting. A run under way answers it between two tokens (at most one inspection
  // per kLiveInspectInterval, so a view can follow the run: the LSH buckets do); otherwise it
  // runs after the run. Ends in inspected().
  // Returns the request's serial, which its InspectResult carries.
  uint64_t inspect(InspectRequest request);

  // Where generation runs: the CPU, or the GPU when cuda is true and a device can run the
  // open model (the snapshot's backend_note says which, and why not). Inspection, scoring and
  // Compare run on the CPU model. Applies to the open model and every model opened later.
  void set_device(bool cuda, attnscope::CudaPrecision precision);

  // Test-time knobs for the next run: when they change the open model's configuration, the
  // worker re-creates the model from the same weights with the edited configuration (a bad
  // value is a failed() message that keeps the model as it was).
  void set_knobs(Knobs knobs);
  // Scores the whole loaded image or clip under the open model (the surprise view): publishes
  // Snapshot::truth once done. Does nothing when there is no such image or it is scored already;
  // Stop, a new prompt or model cancel it.
  void score_truth();
  // Adds a model to the Compare grid (at most kCompareModelsMax besides the open one); it must
  // have the open model's modality and size. Ends in compare_loaded() or failed("Compare", ...),
  // which adds nothing. The models stay across model and prompt changes until cleared.
  static constexpr int kCompareModelsMax = 8;
  void open_compare_model(const QString& path);
  void clear_compare_models();
  // The prompts the grid completes besides the current one: whole images or clips (what the
  // prompt panel reads from a file), each cut as the current prompt is when Compare runs.
  // Replaces the previous list; at most kComparePromptsMax.
  static constexpr int kComparePromptsMax = 16;
  struct PromptSource {
    std::string name;
    std::vector<uint8_t> tokens;
  };
  void set_compare_prompts(std::vector<PromptSource> prompts);
  // Completes every prompt (the current one first) with the open model and every added model,
  // with seeds seed, seed + 1, .., seed + seeds - 1 and otherwise the same sampling
  // parameters; Stop cancels it. Ends in one compare_ended().
  static constexpr int kCompareSeedsMax = 8;
  void compare(const attnscope::SamplingParams& sampling, int seeds = 1);

 signals:
  // Emitted on the thread Session lives in (the GUI thread), never on the worker.
  void published();  // a new snapshot is there
  void model_loaded(const QString& path);
  void failed(const QString& what, const QString& message);  // "Open model", engine message
  void run_ended(session::RunState state);
  void inspected(std::shared_ptr<const session::InspectResult> result);
  void compare_loaded(const QString& path);
  void compare_ended(bool finished);

 private:
  // Worker thread only.
  void do_open(const QString& path);
  void do_prompt(std::vector<uint8_t> prompt, std::vector<uint8_t> keep = {},
                 std::vector<uint8_t> truth = {});
  void do_generate(const attnscope::SamplingParams& sampling, int samples,
                   std::shared_ptr<attnscope::CancelFlag> cancel);
  // One sample of a run into a fresh run_; false when it was stopped or failed.
  bool do_sample(const attnscope::SamplingParams& sampling, const attnscope::CancelFlag* cancel,
                 int index, int count, RunState* state, std::string* message);
  void publish(RunState state, double tokens_per_s, double eta_s, std::string message);
  void post_published();
  void post_model_loaded(const QString& path);
  void post_failed(const QString& what, const QString& message);
  void post_run_ended(RunState state);
  void do_inspect(const InspectRequest& request);
  // On the worker during a run: answers the inspections asked for since the last tokens.
  void serve_live_inspections();
  void do_knobs(const Knobs& knobs);
  void do_open_compare(const QString& path);
  void do_score_truth(std::shared_ptr<attnscope::CancelFlag> cancel);
  void do_compare(const attnscope::SamplingParams& sampling, int seeds,
                  std::shared_ptr<attnscope::CancelFlag> cancel);
  // The grid's prompts: the current one, then the added ones cut as it is; a message in
  // *error for an added one the open model cannot take.
  std::vector<ComparePrompt> compare_prompts(std::string* error) const;
  // Why the second model cannot complete the open model's prompt; empty when it can.
  std::string compare_mismatch(const attnscope::ModelConfig& second) const;
  void post_compare_ended(bool finished);
  // After a finished run of a model with knobs: its row (knob value, rate, prompt bits/dim),
  // then the run's end is published again with it.
  void record_knob_row(const std::string& message);

  QThread thread_;
  QObject* worker_ = nullptr;  // lives in thread_; commands are queued to it

  // Worker-thread state: touched only by the do_* functions, which run on thread_.
  std::unique_ptr<attnscope::Model> model_;
  std::shared_ptr<const ModelSummary> summary_;
  std::shared_ptr<RunStore> run_;
  std::vector<std::shared_ptr<const RunStore>> samples_;  // of the latest run, run_ last
  int samples_wanted_ = 1;
  std::vector<uint8_t> prompt_;
  std::vector<uint8_t> keep_;  // empty: prompt_ is a kept prefix; else one entry per position
  // The whole loaded image or clip the prompt came from (seq_len tokens), what Compare scores
  // each model on; empty for a typed or short prompt.
  std::vector<uint8_t> truth_;
  std::shared_ptr<const TruthScore> truth_score_;  // of truth_ under model_; null until scored
  std::shared_ptr<attnscope::CancelFlag> score_cancel_;
  std::atomic<bool> truth_pending_{false};
  std::string truth_error_;
  std::string backend_note_;
  // Generation's model when it runs on the device (null: model_ generates).
  void place_generator();
  bool want_cuda_ = false;
  attnscope::CudaPrecision precision_ = attnscope::CudaPrecision::kF32;
  std::unique_ptr<attnscope::Model> gen_model_;
  uint64_t serial_ = 0;
  double last_tokens_per_s_ = 0;  // of the latest finished sample
  std::vector<KnobRow> knob_rows_;
  struct CompareModel {
    std::unique_ptr<attnscope::Model> model;
    std::string name;
  };
  std::vector<CompareModel> compare_models_;
  std::vector<PromptSource> compare_sources_;
  std::shared_ptr<const CompareResult> compare_;

  // GUI-thread state: the cancel flag of the latest generate(), set by stop().
  std::shared_ptr<attnscope::CancelFlag> cancel_;
  // The latest inspect() serial of each kind: written on the GUI thread, read by the worker.
  std::atomic<uint64_t> inspect_serial_[static_cast<int>(InspectKind::kCount)]{};
  std::atomic<bool> inspect_cancel_{false};
  // The latest request of each kind, for a run to answer between tokens (live_mutex_ guards
  // live_requests_; live_waiting_ says one is there without locking).
  std::mutex live_mutex_;
  std::optional<InspectRequest> live_requests_[static_cast<int>(InspectKind::kCount)];
  std::atomic<bool> live_waiting_{false};
  // Worker only: the newest serial of each kind answered (the queued copy of a request served
  // during a run is then skipped).
  uint64_t inspect_done_[static_cast<int>(InspectKind::kCount)]{};

  // Locking rule: mutex_ guards current_ and nothing else. The worker swaps in a new
  // shared_ptr under it; readers copy the shared_ptr under it and read the Snapshot after
  // unlocking (a Snapshot is immutable; the RunStore it points to is read below
  // Snapshot::filled, which its release/acquire counter makes safe). Never call the engine
  // or emit a signal while holding mutex_.
  mutable std::mutex mutex_;
  std::shared_ptr<const Snapshot> current_;
};

}  // namespace session
