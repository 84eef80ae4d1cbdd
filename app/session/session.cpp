// The worker side of Session: loading, prompts and generation on thread_, snapshots
// published at most every kPublishInterval while a run goes, and once at its end.
#include "session.h"

#include <QMetaObject>

#include "attnscope/backend.h"
#include "attnscope/safetensors.h"
#include "model_summary.h"

namespace session {

using namespace attnscope;
using Clock = std::chrono::steady_clock;

// The worker emits every signal through these: queued to the thread Session lives in, so a
// receiver (a direct one too, such as QSignalSpy) always sees them on that thread, in order.
void Session::post_published() {
  QMetaObject::invokeMethod(
      this, [this] { emit published(); }, Qt::QueuedConnection);
}
void Session::post_model_loaded(const QString& path) {
  QMetaObject::invokeMethod(
      this, [this, path] { emit model_loaded(path); }, Qt::QueuedConnection);
}
void Session::post_failed(const QString& what, const QString& message) {
  QMetaObject::invokeMethod(
      this, [this, what, message] { emit failed(what, message); }, Qt::QueuedConnection);
}
void Session::post_run_ended(RunState state) {
  QMetaObject::invokeMethod(
      this, [this, state] { emit run_ended(state); }, Qt::QueuedConnection);
}

uint64_t Session::inspect(InspectRequest request) {
  request.serial = ++inspect_serial_[static_cast<int>(request.kind)];
  {
    std::lock_guard<std::mutex> lock(live_mutex_);
    live_requests_[static_cast<int>(request.kind)] = request;
    live_waiting_ = true;
  }
  QMetaObject::invokeMethod(worker_, [this, request] { do_inspect(request); });
  return request.serial;
}

void Session::serve_live_inspections() {
  std::vector<InspectRequest> due;
  {
    std::lock_guard<std::mutex> lock(live_mutex_);
    for (auto& r : live_requests_)
      if (r) {
        due.push_back(*r);
        r.reset();
      }
    live_waiting_ = false;
  }
  for (const InspectRequest& r : due) do_inspect(r);
}

void Session::do_inspect(const InspectRequest& request) {
  const int kind = static_cast<int>(request.kind);
  if (request.serial != inspect_serial_[kind].load()) return;
  if (request.serial <= inspect_done_[kind]) return;  // answered already, during a run
  inspect_done_[kind] = request.serial;
  if (!model_) return;
  auto result = inspect_compute(*model_, summary_, run_, request, &inspect_cancel_);
  QMetaObject::invokeMethod(
      this, [this, result] { emit inspected(result); }, Qt::QueuedConnection);
}

Session::Session(QObject* parent) : QObject(parent), current_(std::make_shared<Snapshot>()) {
  qRegisterMetaType<session::RunState>("session::RunState");
  qRegisterMetaType<std::shared_ptr<const session::InspectResult>>();
  thread_.setObjectName(QStringLiteral("attnscope-engine"));
  worker_ = new QObject;
  worker_->moveToThread(&thread_);
  connect(&thread_, &QThread::finished, worker_, &QObject::deleteLater);
  thread_.start();
  QMetaObject::invokeMethod(worker_, [this] {
    backend_note_ = backend_select(false).note;
    publish(RunState::kNoModel, 0, 0, {});
  });
}

Session::~Session() {
  stop();
  inspect_cancel_ = true;
  thread_.quit();
  thread_.wait();
}

std::shared_ptr<const Snapshot> Session::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return current_;
}

void Session::set_device(bool cuda, CudaPrecision precision) {
  stop();
  QMetaObject::invokeMethod(worker_, [this, cuda, precision] {
    want_cuda_ = cuda;
    precision_ = precision;
    place_generator();
    publish(summary_ ? RunState::kIdle : RunState::kNoModel, 0, 0, {});
  });
}

void Session::place_generator() {
  gen_model_.reset();
  if (!model_) {
    backend_note_ = backend_select(want_cuda_).note;
    return;
  }
  if (!want_cuda_) {
    backend_note_ = "backend: cpu";
    return;
  }
  auto placed = model_create_placed(model_->config(), model_->weights(), true, precision_,
                                    ModelUse::kGenerate);
  if (!placed) {
    backend_note_ = "backend: cpu (" + placed.status().message() + ")";
    return;
  }
  backend_note_ = placed->note;
  if (placed->on_cuda) gen_model_ = std::move(placed->model);
}

void Session::open_model(const QString& path) {
  stop();
  QMetaObject::invokeMethod(worker_, [this, path] { do_open(path); });
}

void Session::set_prompt(std::vector<uint8_t> image_tokens, int keep_rows) {
  stop();
  QMetaObject::invokeMethod(worker_, [this, tokens = std::move(image_tokens), keep_rows]() mutable {
    if (!summary_) return;
    const Modality& m = summary_->config.modality;
    const size_t row = static_cast<size_t>(m.width) * static_cast<size_t>(m.channels);
    std::vector<uint8_t> truth;
    if (tokens.size() == static_cast<size_t>(summary_->config.seq_len())) truth = tokens;
    tokens.resize(std::min(tokens.size(), row * static_cast<size_t>(std::max(keep_rows, 0))));
    do_prompt(std::move(tokens), {}, std::move(truth));
  });
}

void Session::set_prompt_tokens(std::vector<uint8_t> kept, std::vector<uint8_t> truth) {
  stop();
  QMetaObject::invokeMethod(worker_,
                            [this, tokens = std::move(kept), truth = std::move(truth)]() mutable {
                              if (!summary_) return;
                              const size_t n = static_cast<size_t>(summary_->config.seq_len());
                              tokens.resize(std::min(tokens.size(), n));
                              if (truth.size() != n) truth.clear();
                              do_prompt(std::move(tokens), {}, std::move(truth));
                            });
}

void Session::set_prompt_mask(std::vector<uint8_t> image_tokens, std::vector<uint8_t> keep) {
  stop();
  QMetaObject::invokeMethod(
      worker_, [this, tokens = std::move(image_tokens), keep = std::move(keep)]() mutable {
        if (!summary_) return;
        const size_t n = static_cast<size_t>(summary_->config.seq_len());
        if (tokens.size() != n || keep.size() != n) {
          post_failed(tr("Prompt"), tr("the mask and image need %1 tokens each, not %2 and %3")
                                        .arg(n)
                                        .arg(keep.size())
                                        .arg(tokens.size()));
          return;
        }
        std::vector<uint8_t> truth = tokens;
        do_prompt(std::move(tokens), std::move(keep), std::move(truth));
      });
}

void Session::generate(const SamplingParams& sampling, int samples) {
  stop();
  cancel_ = std::make_shared<CancelFlag>(false);
  QMetaObject::invokeMethod(worker_, [this, sampling, samples, cancel = cancel_] {
    do_generate(sampling, std::max(samples, 1), cancel);
  });
}

void Session::stop() {
  if (cancel_) cancel_->store(true);
  if (score_cancel_) score_cancel_->store(true);
}

void Session::do_open(const QString& path) {
  const std::string file = path.toStdString();
  auto loaded = safetensors_load(file);
  if (!loaded) {
    post_failed(tr("Open model"), QString::fromStdString(loaded.status().message()));
    return;
  }
  const ModelConfig cfg = loaded->cfg;
  const size_t bytes = loaded->file_bytes;
  auto model = model_create(cfg, std::move(loaded->weights));
  if (!model) {
    post_failed(tr("Open model"), QString::fromStdString(file + ": " + model.status().message()));
    return;
  }
  if (!*model) {
    post_failed(tr("Open model"),
                QString::fromStdString(std::string("the ") + family_name(cfg.family) +
                                       " family is not available in this build"));
    return;
  }
  model_ = std::move(*model);
  place_generator();
  summary_ = std::make_shared<const ModelSummary>(model_summarize(cfg, file, bytes));
  knob_rows_.clear();
  compare_.reset();
  truth_score_.reset();
  truth_error_.clear();
  do_prompt({});
  post_model_loaded(path);
}

void Session::do_prompt(std::vector<uint8_t> prompt, std::vector<uint8_t> keep,
                        std::vector<uint8_t> truth) {
  prompt_ = std::move(prompt);
  keep_ = std::move(keep);
  if (truth != truth_) {
    truth_score_.reset();
    truth_error_.clear();
  }
  truth_ = std::move(truth);
  run_ = std::make_shared<RunStore>(summary_->config.modality, prompt_, keep_);
  samples_ = {run_};
  samples_wanted_ = 1;
  publish(RunState::kIdle, 0, 0, {});
}

void Session::do_generate(const SamplingParams& sampling, int samples,
                          std::shared_ptr<CancelFlag> cancel) {
  if (!model_) {
    post_failed(tr("Generate"), tr("Open a model first (Ctrl+O)."));
    return;
  }
  if (cancel->load()) return;  // superseded before it started
  samples_.clear();
  samples_wanted_ = samples;
  RunState state = RunState::kFinished;
  std::string message;
  for (int i = 0; i < samples; ++i) {
    SamplingParams p = sampling;
    p.seed = sampling.seed + static_cast<uint64_t>(i);
    if (!do_sample(p, cancel.get(), i, samples, &state, &message)) break;
  }
  if (state == RunState::kFinished) record_knob_row(message);
  post_run_ended(state);
}

bool Session::do_sample(const SamplingParams& sampling, const CancelFlag* cancel, int index,
                        int count, RunState* state, std::string* message) {
  run_ = std::make_shared<RunStore>(summary_->config.modality, prompt_, keep_);
  samples_.push_back(run_);
  RunStore& store = *run_;
  const int64_t n = store.length();
  const Clock::time_point start = Clock::now();
  Clock::time_point last = start;
  auto rates = [&](int64_t done, double* per_s, double* eta) {
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    *per_s = secs > 0 ? static_cast<double>(done) / secs : 0;
    // Time left counts the samples still to come as well.
    const double left = static_cast<double>(n - done) + static_cast<double>(count - 1 - index) * n;
    *eta = *per_s > 0 ? left / *per_s : 0;
  };
  publish(RunState::kRunning, 0, 0, {});

  GenerateRequest req;
  req.prompt = prompt_;
  req.keep = keep_;
  req.length = keep_.empty() ? 0 : static_cast<int64_t>(keep_.size());
  req.sampling = sampling;
  req.cancel = cancel;
  Clock::time_point last_live = start;
  req.on_token = [&](int64_t pos, uint8_t token, const float* logits) {
    store.write(pos, token, logits);
    const Clock::time_point now = Clock::now();
    if (live_waiting_.load(std::memory_order_relaxed) && now - last_live >= kLiveInspectInterval) {
      serve_live_inspections();
      last_live = Clock::now();
    }
    if (now - last >= kPublishInterval) {
      last = now;
      double per_s, eta;
      rates(pos + 1, &per_s, &eta);
      publish(RunState::kRunning, per_s, eta, {});
    }
  };
  auto out = attnscope::generate(gen_model_ ? *gen_model_ : *model_, req);
  double per_s, eta;
  rates(store.filled(), &per_s, &eta);
  last_tokens_per_s_ = per_s;
  *state = index + 1 < count ? RunState::kRunning : RunState::kFinished;
  *message = count > 1 ? "finished: " + std::to_string(index + 1) + " of " + std::to_string(count) +
                             " samples, " + std::to_string(n) + " positions each"
                       : "finished: " + std::to_string(n) + " positions";
  if (!out) {
    const bool stopped = out.status().code() == StatusCode::kCancelled;
    *state = stopped ? RunState::kStopped : RunState::kFailed;
    *message =
        stopped ? run_stop_message(store, store.filled(), index, count) : out.status().message();
    if (!stopped && count > 1) *message += " (sample " + std::to_string(index + 1) + ")";
    if (!stopped) post_failed(tr("Generate"), QString::fromStdString(*message));
  }
  publish(*state, per_s, *state == RunState::kRunning ? eta : 0,
          *state == RunState::kRunning ? std::string() : *message);
  return out.has_value();
}

void Session::publish(RunState state, double tokens_per_s, double eta_s, std::string message) {
  auto s = std::make_shared<Snapshot>();
  s->serial = ++serial_;
  s->model = summary_;
  s->run = run_;
  s->samples = samples_;
  s->samples_wanted = samples_wanted_;
  s->filled = run_ ? run_->filled() : 0;
  s->state = summary_ ? state : RunState::kNoModel;
  s->tokens_per_s = tokens_per_s;
  s->eta_s = eta_s;
  s->memory = MemTracker::instance().snapshot();
  s->backend_note = backend_note_;
  s->message = std::move(message);
  s->knob_rows = knob_rows_;
  s->compare = compare_;
  for (const CompareModel& m : compare_models_) s->compare_models.push_back(m.name);
  for (const PromptSource& p : compare_sources_) s->compare_prompts.push_back(p.name);
  s->has_truth = summary_ && truth_.size() == static_cast<size_t>(summary_->config.seq_len());
  s->truth = truth_score_;
  s->truth_pending = truth_pending_.load();
  s->truth_error = truth_error_;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    current_ = std::move(s);
  }
  post_published();
}

}  // namespace session
