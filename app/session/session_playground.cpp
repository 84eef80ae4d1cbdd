// The playground side of Session on the worker: test-time knobs (the model re-created from
// the same weights with an edited configuration, one table row per finished run) and the
// comparison of the open model with a second one on the same prompt, sampling and seed.
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

void Session::compare(const SamplingParams& sampling) {
  stop();
  cancel_ = std::make_shared<CancelFlag>(false);
  QMetaObject::invokeMethod(worker_,
                            [this, sampling, cancel = cancel_] { do_compare(sampling, cancel); });
}

void Session::do_knobs(const Knobs& knobs) {
  if (!model_) return;
  ModelConfig cfg = model_->config();
  if (cfg.family == Family::kReformer && knobs.n_hashes > 0) cfg.lsh.n_hashes = knobs.n_hashes;
  if (cfg.family == Family::kPerceiverAR && knobs.latents > 0)
    cfg.perceiver.latents = knobs.latents;
  if (cfg.lsh.n_hashes == model_->config().lsh.n_hashes &&
      cfg.perceiver.latents == model_->config().perceiver.latents)
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
              : "next run: " + std::to_string(cfg.perceiver.latents) + " latents");
}

void Session::record_knob_row(const std::string& message) {
  if (!model_ || !has_knobs(model_->config().family)) return;
  const ModelConfig& cfg = model_->config();
  KnobRow row;
  const bool reformer = cfg.family == Family::kReformer;
  row.knob = reformer ? "hashes" : "latents";
  row.value = reformer ? cfg.lsh.n_hashes : cfg.perceiver.latents;
  row.tokens_per_s = last_tokens_per_s_;
  row.prompt_bits_per_dim =
      bits_per_dim(*model_, prompt_, static_cast<int64_t>(prompt_.size()), nullptr);
  knob_rows_.push_back(row);
  publish(RunState::kFinished, last_tokens_per_s_, 0, message);
}

std::string Session::compare_mismatch(const ModelConfig& second) const {
  if (!summary_) return "Open a model first (Ctrl+O): the second model is compared with it.";
  const Modality& a = summary_->config.modality;
  const Modality& b = second.modality;
  if (a.describe() == b.describe() && a.seq_len() == b.seq_len()) return {};
  return "The second model is " + b.describe() + " but the open model is " + a.describe() +
         ": both must complete the same prompt, so they need the same modality and size.";
}

void Session::do_open_compare(const QString& path) {
  const std::string file = path.toStdString();
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
  compare_model_ = std::move(*model);
  compare_name_ = QFileInfo(path).fileName().toStdString();
  compare_.reset();
  publish(RunState::kIdle, 0, 0, "second model: " + compare_name_);
  QMetaObject::invokeMethod(
      this, [this, path] { emit compare_loaded(path); }, Qt::QueuedConnection);
}

void Session::do_compare(const SamplingParams& sampling, std::shared_ptr<CancelFlag> cancel) {
  if (cancel->load()) return;  // superseded before it started
  if (!model_ || !compare_model_) {
    post_failed(tr("Compare"), model_ ? tr("Load a second model first (Compare tab).")
                                      : tr("Open a model first (Ctrl+O)."));
    post_compare_ended(false);
    return;
  }
  const std::string mismatch = compare_mismatch(compare_model_->config());
  if (!mismatch.empty()) {
    post_failed(tr("Compare"), QString::fromStdString(mismatch));
    post_compare_ended(false);
    return;
  }
  auto result = std::make_shared<CompareResult>();
  result->modality = summary_->config.modality;
  result->length = summary_->config.seq_len();
  result->prompt_length = static_cast<int64_t>(prompt_.size());
  result->seed = sampling.seed;
  result->keep = keep_;
  result->has_truth = truth_.size() == static_cast<size_t>(result->length);
  const Model* models[2] = {model_.get(), compare_model_.get()};
  const std::string names[2] = {
      QFileInfo(QString::fromStdString(summary_->path)).fileName().toStdString(), compare_name_};
  for (int i = 0; i < 2; ++i) {
    const ModelConfig& c = models[i]->config();
    result->sides[i].name = names[i];
    result->sides[i].config_text =
        std::string(family_name(c.family)) + ", " + model_summarize(c, names[i], 0).config_text;
    result->sides[i].tokens = prompt_;
  }
  // The main run's outcome, shown again once the comparison ends.
  const std::shared_ptr<const Snapshot> before = snapshot();
  compare_ = result;
  publish(RunState::kRunning, 0, 0, "comparing");

  const int64_t n = result->length;
  for (int i = 0; i < 2; ++i) {
    std::vector<uint8_t> tokens(prompt_);
    tokens.reserve(static_cast<size_t>(n));
    const Clock::time_point start = Clock::now();
    Clock::time_point last = start;
    GenerateRequest req;
    req.prompt = prompt_;
    req.keep = keep_;  // a painted mask regenerates the same pixels on both sides
    req.length = keep_.empty() ? 0 : static_cast<int64_t>(keep_.size());
    req.sampling = sampling;
    req.cancel = cancel.get();
    req.on_token = [&](int64_t pos, uint8_t token, const float*) {
      if (pos < static_cast<int64_t>(tokens.size()))
        tokens[static_cast<size_t>(pos)] = token;
      else
        tokens.push_back(token);
      const Clock::time_point now = Clock::now();
      if (now - last < kPublishInterval) return;
      last = now;
      auto progress = std::make_shared<CompareResult>(*result);
      progress->sides[i].tokens = tokens;
      progress->done = i * n + pos + 1;
      compare_ = progress;
      const double secs = std::chrono::duration<double>(now - start).count();
      const double per_s = secs > 0 ? static_cast<double>(pos + 1) / secs : 0;
      const double left = static_cast<double>(2 * n - progress->done);
      publish(RunState::kRunning, per_s, per_s > 0 ? left / per_s : 0, "comparing: " + names[i]);
    };
    auto out = attnscope::generate(*models[i], req);
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    if (!out) {
      const bool stopped = out.status().code() == StatusCode::kCancelled;
      const std::string message =
          stopped ? "comparison stopped" : names[i] + ": " + out.status().message();
      if (!stopped) post_failed(tr("Compare"), QString::fromStdString(message));
      publish(stopped ? RunState::kStopped : RunState::kFailed, 0, 0, message);
      post_compare_ended(false);
      return;
    }
    CompareSide& side = result->sides[i];
    side.tokens = std::move(*out);
    const int64_t generated = keep_.empty()
                                  ? n - result->prompt_length
                                  : static_cast<int64_t>(std::count(keep_.begin(), keep_.end(), 0));
    side.tokens_per_s = secs > 0 ? static_cast<double>(generated) / secs : 0;
    side.completion_bits_per_dim = bits_per_dim(*models[i], side.tokens, n, cancel.get());
    side.prompt_bits_per_dim =
        bits_per_dim(*models[i], prompt_, result->prompt_length, cancel.get());
    side.truth_bits_per_dim = result->has_truth
                                  ? truth_bits(*models[i], truth_, result->prompt_length, keep_,
                                               &side.surprise_bits, cancel.get())
                                  : std::numeric_limits<double>::quiet_NaN();
    side.done = true;
    result->done = (i + 1) * n;
    compare_ = std::make_shared<CompareResult>(*result);
    publish(RunState::kRunning, side.tokens_per_s, 0, "comparing");
  }
  // Before any run of the open model the status line tells of the comparison instead.
  publish(before->state, before->tokens_per_s, 0,
          before->state == RunState::kIdle ? "compared with " + names[1] + " (Compare tab)"
                                           : before->message);
  post_compare_ended(true);
}

}  // namespace session
