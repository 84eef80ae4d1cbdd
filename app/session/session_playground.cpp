// The playground side of Session on the worker: test-time knobs (the model re-created from
// the same weights with an edited configuration, one table row per finished run) and the
// Compare grid: every model completes every prompt with every seed, scored on the real data.
#include <QDir>
#include <QFileInfo>
#include <QMetaObject>
#include <algorithm>
#include <cmath>
#include <limits>

#include "attnscope/safetensors.h"
#include "model_summary.h"
#include "session.h"

namespace session {

using namespace attnscope;
using Clock = std::chrono::steady_clock;

namespace {

bool has_knobs(Family f) {
  return f == Family::kReformer || f == Family::kPerceiverAR;
}

// Mean bits per position of tokens under m; NaN for no tokens or an engine error.
double bits_per_dim(const Model& m, const std::vector<uint8_t>& tokens, int64_t n,
                    const CancelFlag* cancel) {
  if (n <= 0) return std::numeric_limits<double>::quiet_NaN();
  auto bpd = model_bits_per_dim(m, tokens.data(), n, cancel);
  return bpd ? *bpd : std::numeric_limits<double>::quiet_NaN();
}

// The true sequence under m: per position -log2 P(truth[p] | truth[< p]) into surprise, and
// the mean over the positions a completion samples (keep empty: from prompt_length on) as the
// result; NaN on an engine error or nothing to score.
double truth_bits(const Model& m, const std::vector<uint8_t>& truth, int64_t prompt_length,
                  const std::vector<uint8_t>& keep, std::vector<float>* surprise,
                  const CancelFlag* cancel) {
  const int64_t n = static_cast<int64_t>(truth.size());
  Tensor lp;
  if (n == 0 || !model_log_probs(m, truth.data(), n, &lp, cancel))
    return std::numeric_limits<double>::quiet_NaN();
  surprise->resize(static_cast<size_t>(n));
  double sum = 0;
  int64_t count = 0;
  for (int64_t p = 0; p < n; ++p) {
    const float bits =
        static_cast<float>(-lp.data()[p * 256 + truth[static_cast<size_t>(p)]] / std::log(2.0));
    (*surprise)[static_cast<size_t>(p)] = bits;
    const bool sampled = keep.empty() ? p >= prompt_length : keep[static_cast<size_t>(p)] == 0;
    if (sampled) {
      sum += bits;
      ++count;
    }
  }
  return count > 0 ? sum / static_cast<double>(count) : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace

bool CompareRow::done() const {
  return !cells.empty() &&
         std::all_of(cells.begin(), cells.end(), [](const CompareCell& c) { return c.done; });
}

bool CompareResult::has_truth() const {
  return std::any_of(prompts.begin(), prompts.end(),
                     [](const ComparePrompt& p) { return !p.truth.empty(); });
}

double CompareResult::truth_bits_mean(size_t row) const {
  double sum = 0, count = 0;
  for (size_t p = 0; p < prompts.size(); ++p) {
    const double b =
        rows[row].truth_bits_per_dim.size() > p ? rows[row].truth_bits_per_dim[p] : std::nan("");
    if (std::isnan(b)) continue;
    sum += b * static_cast<double>(prompts[p].completed);
    count += static_cast<double>(prompts[p].completed);
  }
  return count > 0 ? sum / count : std::numeric_limits<double>::quiet_NaN();
}

void Session::post_compare_ended(bool finished) {
  QMetaObject::invokeMethod(
      this, [this, finished] { emit compare_ended(finished); }, Qt::QueuedConnection);
}

void Session::set_knobs(Knobs knobs) {
  QMetaObject::invokeMethod(worker_, [this, knobs] { do_knobs(knobs); });
}

void Session::score_truth() {
  score_cancel_ = std::make_shared<CancelFlag>(false);
  truth_pending_ = true;
  QMetaObject::invokeMethod(worker_, [this, cancel = score_cancel_] { do_score_truth(cancel); });
}

// Ends with truth_pending false and a publish in every case, so that a view waiting for the
// score asks again after a Stop cancelled it, and stops asking after an engine error.
void Session::do_score_truth(std::shared_ptr<CancelFlag> cancel) {
  if (model_ && !truth_score_ && truth_error_.empty() && summary_ && !cancel->load() &&
      truth_.size() == static_cast<size_t>(summary_->config.seq_len())) {
    auto score = std::make_shared<TruthScore>();
    score->bits_per_dim = truth_bits(*model_, truth_, 0, {}, &score->surprise_bits, cancel.get());
    if (!std::isnan(score->bits_per_dim))
      truth_score_ = std::move(score);
    else if (!cancel->load())
      truth_error_ = "the engine could not score this image under the open model";
  }
  truth_pending_ = false;
  const std::shared_ptr<const Snapshot> before = snapshot();
  publish(before->state, before->tokens_per_s, before->eta_s, before->message);
}

void Session::open_compare_model(const QString& path) {
  stop();
  QMetaObject::invokeMethod(worker_, [this, path] { do_open_compare(path); });
}

void Session::clear_compare_models() {
  stop();
  QMetaObject::invokeMethod(worker_, [this] {
    compare_models_.clear();
    compare_.reset();
    const std::shared_ptr<const Snapshot> before = snapshot();
    publish(before->state, before->tokens_per_s, 0, "no models added to Compare");
  });
}

void Session::set_compare_prompts(std::vector<PromptSource> prompts) {
  stop();
  if (prompts.size() > static_cast<size_t>(kComparePromptsMax))
    prompts.resize(static_cast<size_t>(kComparePromptsMax));
  QMetaObject::invokeMethod(worker_, [this, prompts = std::move(prompts)]() mutable {
    compare_sources_ = std::move(prompts);
    const std::shared_ptr<const Snapshot> before = snapshot();
    publish(before->state, before->tokens_per_s, 0,
            std::to_string(compare_sources_.size()) + " prompts added to Compare");
  });
}

void Session::compare(const SamplingParams& sampling, int seeds) {
  stop();
  cancel_ = std::make_shared<CancelFlag>(false);
  seeds = std::clamp(seeds, 1, kCompareSeedsMax);
  QMetaObject::invokeMethod(
      worker_, [this, sampling, seeds, cancel = cancel_] { do_compare(sampling, seeds, cancel); });
}

void Session::do_knobs(const Knobs& knobs) {
  if (!model_) return;
  ModelConfig cfg = model_->config();
  if (cfg.family == Family::kReformer && knobs.n_hashes > 0) cfg.lsh.n_hashes = knobs.n_hashes;
  if (cfg.family == Family::kPerceiverAR && knobs.latents > 0) {
    cfg.perceiver.latents = knobs.latents;
    cfg.perceiver.decode = knobs.decode;
  }
  if (cfg.lsh.n_hashes == model_->config().lsh.n_hashes &&
      cfg.perceiver.latents == model_->config().perceiver.latents &&
      cfg.perceiver.decode == model_->config().perceiver.decode)
    return;
  auto model = model_create(cfg, model_->weights());
  if (!model || !*model) {
    post_failed(tr("Test-time knobs"),
                QString::fromStdString(model ? std::string("the model cannot be re-created")
                                             : model.status().message()));
    return;
  }
  model_ = std::move(*model);
  place_generator();
  summary_ = std::make_shared<const ModelSummary>(
      model_summarize(cfg, summary_->path, summary_->file_bytes));
  publish(RunState::kIdle, 0, 0,
          cfg.family == Family::kReformer
              ? "next run: " + std::to_string(cfg.lsh.n_hashes) + " hash rounds"
              : "next run: " + std::to_string(cfg.perceiver.latents) + " latents, " +
                    perceiver_decode_name(cfg.perceiver.decode) + " decoding");
}

void Session::record_knob_row(const std::string& message) {
  if (!model_ || !has_knobs(model_->config().family)) return;
  const ModelConfig& cfg = model_->config();
  KnobRow row;
  const bool reformer = cfg.family == Family::kReformer;
  row.knob = reformer ? "hashes" : "latents";
  row.value = reformer ? cfg.lsh.n_hashes : cfg.perceiver.latents;
  if (!reformer) row.scheme = perceiver_decode_name(cfg.perceiver.decode);
  row.tokens_per_s = last_tokens_per_s_;
  row.prompt_bits_per_dim =
      bits_per_dim(*model_, prompt_, static_cast<int64_t>(prompt_.size()), nullptr);
  knob_rows_.push_back(row);
  publish(RunState::kFinished, last_tokens_per_s_, 0, message);
}

std::string Session::compare_mismatch(const ModelConfig& second) const {
  if (!summary_) return "Open a model first (Ctrl+O): the other models are compared with it.";
  const Modality& a = summary_->config.modality;
  const Modality& b = second.modality;
  if (a.describe() == b.describe() && a.seq_len() == b.seq_len()) return {};
  return "The model to compare is " + b.describe() + " but the open model is " + a.describe() +
         ": all must complete the same prompts, so they need the same modality and size.";
}

void Session::do_open_compare(const QString& path) {
  const std::string file = path.toStdString();
  const std::string name = QFileInfo(path).fileName().toStdString();
  if (compare_models_.size() >= static_cast<size_t>(kCompareModelsMax)) {
    post_failed(tr("Compare"), QString::fromStdString(
                                   "Compare takes at most " + std::to_string(kCompareModelsMax) +
                                   " models besides the open one; clear them to start over."));
    return;
  }
  auto loaded = safetensors_load(file);
  if (!loaded) {
    post_failed(tr("Compare"), QString::fromStdString(loaded.status().message()));
    return;
  }
  const std::string mismatch = compare_mismatch(loaded->cfg);
  if (!mismatch.empty()) {
    post_failed(tr("Compare"), QString::fromStdString(mismatch));
    return;
  }
  const ModelConfig cfg = loaded->cfg;
  auto model = model_create(cfg, std::move(loaded->weights));
  if (!model || !*model) {
    post_failed(tr("Compare"),
                QString::fromStdString(file + ": " +
                                       (model ? std::string(family_name(cfg.family)) +
                                                    " is not available in this build"
                                              : model.status().message())));
    return;
  }
  // The same file twice names the rows alike; its second copy gets the folder too.
  std::string shown = name;
  for (const CompareModel& m : compare_models_)
    if (m.name == shown) shown = QFileInfo(path).dir().dirName().toStdString() + "/" + name;
  compare_models_.push_back({std::move(*model), shown});
  compare_.reset();
  publish(RunState::kIdle, 0, 0, "added to Compare: " + shown);
  QMetaObject::invokeMethod(
      this, [this, path] { emit compare_loaded(path); }, Qt::QueuedConnection);
}

std::vector<ComparePrompt> Session::compare_prompts(std::string* error) const {
  const int64_t n = summary_->config.seq_len();
  const Modality& m = summary_->config.modality;
  std::vector<ComparePrompt> out;
  ComparePrompt current;
  current.name = "current prompt";
  current.prompt = prompt_;
  current.keep = keep_;
  if (truth_.size() == static_cast<size_t>(n)) current.truth = truth_;
  // A kept prefix, or the mask's kept positions.
  const int64_t kept_prefix = static_cast<int64_t>(prompt_.size());
  current.prompt_length =
      keep_.empty() ? kept_prefix : static_cast<int64_t>(std::count(keep_.begin(), keep_.end(), 1));
  current.completed = keep_.empty() ? n - kept_prefix : n - current.prompt_length;
  out.push_back(current);
  for (const PromptSource& src : compare_sources_) {
    const int64_t have = static_cast<int64_t>(src.tokens.size());
    // Images must be the model's size; a clip may be shorter than the model's length.
    if (m.kind == ModalityKind::kImage ? have != n : (have == 0 || have > n)) {
      *error = src.name + " has " + std::to_string(have) + " tokens; the open model (" +
               m.describe() + ") takes " + std::to_string(n) +
               ": add prompts after opening the model they are for.";
      return {};
    }
    ComparePrompt p;
    p.name = src.name;
    if (have == n) p.truth = src.tokens;
    if (!keep_.empty() && have == n) {
      p.prompt = src.tokens;
      p.keep = keep_;
      p.prompt_length = current.prompt_length;
      p.completed = current.completed;
    } else {
      const int64_t kept = std::min(kept_prefix, have);
      p.prompt.assign(src.tokens.begin(), src.tokens.begin() + kept);
      p.prompt_length = kept;
      p.completed = n - kept;
    }
    out.push_back(std::move(p));
  }
  return out;
}

void Session::do_compare(const SamplingParams& sampling, int seeds,
                         std::shared_ptr<CancelFlag> cancel) {
  if (cancel->load()) return;  // superseded before it started
  if (!model_ || compare_models_.empty()) {
    post_failed(tr("Compare"), model_ ? tr("Add a model to compare first (Compare tab).")
                                      : tr("Open a model first (Ctrl+O)."));
    post_compare_ended(false);
    return;
  }
  std::vector<const Model*> models = {model_.get()};
  std::vector<std::string> names = {
      QFileInfo(QString::fromStdString(summary_->path)).fileName().toStdString()};
  for (const CompareModel& m : compare_models_) {
    const std::string mismatch = compare_mismatch(m.model->config());
    if (!mismatch.empty()) {
      post_failed(tr("Compare"), QString::fromStdString(m.name + ": " + mismatch));
      post_compare_ended(false);
      return;
    }
    models.push_back(m.model.get());
    names.push_back(m.name);
  }
  std::string error;
  std::vector<ComparePrompt> prompts = compare_prompts(&error);
  if (prompts.empty()) {
    post_failed(tr("Compare"), QString::fromStdString(error));
    post_compare_ended(false);
    return;
  }
  auto result = std::make_shared<CompareResult>();
  result->modality = summary_->config.modality;
  result->length = summary_->config.seq_len();
  result->prompts = std::move(prompts);
  for (int k = 0; k < seeds; ++k) result->seeds.push_back(sampling.seed + static_cast<uint64_t>(k));
  const size_t n_prompts = result->prompts.size(), n_seeds = result->seeds.size();
  for (size_t i = 0; i < models.size(); ++i) {
    const ModelConfig& c = models[i]->config();
    CompareRow row;
    row.name = names[i];
    row.config_text =
        std::string(family_name(c.family)) + ", " + model_summarize(c, names[i], 0).config_text;
    row.parameters = model_param_count(c);
    row.truth_bits_per_dim.assign(n_prompts, std::numeric_limits<double>::quiet_NaN());
    row.prompt_bits_per_dim.assign(n_prompts, std::numeric_limits<double>::quiet_NaN());
    row.surprise_bits.resize(n_prompts);
    row.cells.resize(n_prompts * n_seeds);
    for (size_t p = 0; p < n_prompts; ++p)
      for (size_t k = 0; k < n_seeds; ++k)
        row.cells[p * n_seeds + k].tokens = result->prompts[p].prompt;
    result->rows.push_back(std::move(row));
  }
  for (const ComparePrompt& p : result->prompts)
    result->total += static_cast<int64_t>(models.size() * n_seeds) * p.completed;
  // The main run's outcome, shown again once the comparison ends.
  const std::shared_ptr<const Snapshot> before = snapshot();
  compare_ = result;
  publish(RunState::kRunning, 0, 0, "comparing");

  const int64_t n = result->length;
  const Clock::time_point started = Clock::now();
  Clock::time_point last = started;
  auto fail = [&](const Status& st, const std::string& who) {
    const bool stopped = st.code() == StatusCode::kCancelled;
    const std::string message = stopped ? "comparison stopped" : who + ": " + st.message();
    if (!stopped) post_failed(tr("Compare"), QString::fromStdString(message));
    publish(stopped ? RunState::kStopped : RunState::kFailed, 0, 0, message);
    post_compare_ended(false);
  };
  for (size_t i = 0; i < models.size(); ++i) {
    const Model& model = *models[i];
    for (size_t p = 0; p < n_prompts; ++p) {
      const ComparePrompt& prompt = result->prompts[p];
      CompareRow& row = result->rows[i];
      // The scores of this prompt under this model, whatever the seed.
      // A kept prefix has a score of its own; a painted mask's kept pixels do not.
      if (prompt.keep.empty())
        row.prompt_bits_per_dim[p] =
            bits_per_dim(model, prompt.prompt, prompt.prompt_length, cancel.get());
      if (!prompt.truth.empty())
        row.truth_bits_per_dim[p] = truth_bits(model, prompt.truth, prompt.prompt_length,
                                               prompt.keep, &row.surprise_bits[p], cancel.get());
      if (cancel->load()) return fail(Status(StatusCode::kCancelled, "stopped"), names[i]);
      for (size_t k = 0; k < n_seeds; ++k) {
        const int64_t base = result->done;
        // The kept prefix (or, with a mask, the whole image), overwritten as positions come.
        std::vector<uint8_t> tokens(prompt.prompt);
        tokens.reserve(static_cast<size_t>(n));
        GenerateRequest req;
        req.prompt = prompt.prompt;
        req.keep = prompt.keep;  // a painted mask regenerates the same pixels in every cell
        req.length = prompt.keep.empty() ? 0 : static_cast<int64_t>(prompt.keep.size());
        req.sampling = sampling;
        req.sampling.seed = result->seeds[k];
        req.cancel = cancel.get();
        int64_t sampled = 0;
        req.on_token = [&](int64_t pos, uint8_t token, const float*) {
          if (pos < static_cast<int64_t>(tokens.size()))
            tokens[static_cast<size_t>(pos)] = token;
          else
            tokens.push_back(token);
          ++sampled;
          const Clock::time_point now = Clock::now();
          // A copy of the whole grid per publish: ten a second is enough to watch it fill.
          if (now - last < std::chrono::milliseconds(100)) return;
          last = now;
          auto progress = std::make_shared<CompareResult>(*result);
          progress->rows[i].cells[p * n_seeds + k].tokens = tokens;
          progress->done = base + std::min(sampled, prompt.completed);
          compare_ = progress;
          const double secs = std::chrono::duration<double>(now - started).count();
          const double per_s = secs > 0 ? static_cast<double>(progress->done) / secs : 0;
          const double left = static_cast<double>(result->total - progress->done);
          publish(RunState::kRunning, per_s, per_s > 0 ? left / per_s : 0,
                  "comparing: " + names[i] + ", " + prompt.name + ", seed " +
                      std::to_string(result->seeds[k]));
        };
        // Working memory above the level before this completion (weights are already there).
        const size_t level = MemTracker::instance().snapshot().total_current;
        MemTracker::instance().reset_peaks();
        const Clock::time_point start = Clock::now();
        auto out = attnscope::generate(model, req);
        const double secs = std::chrono::duration<double>(Clock::now() - start).count();
        const size_t peak = MemTracker::instance().snapshot().total_peak;
        if (!out) return fail(out.status(), names[i]);
        CompareCell& cell = row.cells[p * n_seeds + k];
        cell.tokens = std::move(*out);
        cell.tokens_per_s = secs > 0 ? static_cast<double>(prompt.completed) / secs : 0;
        cell.completion_bits_per_dim = bits_per_dim(model, cell.tokens, n, cancel.get());
        cell.done = true;
        row.generated += static_cast<double>(prompt.completed);
        row.seconds += secs;
        row.peak_bytes = std::max(row.peak_bytes, peak > level ? peak - level : size_t{0});
        result->done = base + prompt.completed;
        compare_ = std::make_shared<CompareResult>(*result);
        publish(RunState::kRunning, row.tokens_per_s(), 0, "comparing");
      }
    }
  }
  // Before any run of the open model the status line tells of the comparison instead.
  publish(before->state, before->tokens_per_s, 0,
          before->state == RunState::kIdle
              ? "compared " + std::to_string(models.size()) + " models (Compare tab)"
              : before->message);
  post_compare_ended(true);
}

}  // namespace session
