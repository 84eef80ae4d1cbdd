// The RunStore's single-writer publication and the small helpers views share.
#include "snapshot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace session {

RunStore::RunStore(const attnscope::Modality& modality, std::vector<uint8_t> prompt,
                   std::vector<uint8_t> keep)
    : modality_(modality),
      prompt_length_(static_cast<int64_t>(prompt.size())),
      keep_(std::move(keep)),
      tokens_(static_cast<size_t>(modality.seq_len())),
      probs_(static_cast<size_t>(modality.seq_len()) * 256),
      entropy_(static_cast<size_t>(modality.seq_len())) {
  if (!keep_.empty()) {
    keep_.resize(tokens_.size(), 0);
    prompt.resize(tokens_.size(), 0);
    prompt_length_ = std::find(keep_.begin(), keep_.end(), 0) - keep_.begin();
    for (size_t p = 0; p < tokens_.size(); ++p)
      if (keep_[p]) tokens_[p] = prompt[p];
    return;
  }
  std::copy(prompt.begin(), prompt.end(), tokens_.begin());
}

int64_t RunStore::generated(int64_t filled_now) const {
  int64_t g = 0;
  for (int64_t p = prompt_length_; p < filled_now; ++p) g += kept(p) ? 0 : 1;
  return g;
}

std::string run_stop_message(const RunStore& store, int64_t filled, int index, int count) {
  const int64_t generated = store.generated(filled);
  std::string m = "stopped";
  if (count > 1) m += " in sample " + std::to_string(index + 1) + " of " + std::to_string(count);
  m += " at " + std::to_string(store.known(filled)) + " / " + std::to_string(store.length());
  m += generated == 0 ? ": nothing generated yet (it was reading the prompt)"
                      : ": " + std::to_string(generated) + " positions generated";
  if (index == 1) m += "; sample 1 is complete";
  if (index > 1) m += "; samples 1-" + std::to_string(index) + " are complete";
  return m;
}

void RunStore::write(int64_t p, uint8_t token, const float* logits) {
  const size_t i = static_cast<size_t>(p);
  // Prompt tokens were written at creation; rewriting them would race with readers.
  if (!kept(p)) tokens_[i] = token;
  float* out = probs_.data() + i * 256;
  float top = logits[0];
  for (int t = 1; t < 256; ++t) top = std::max(top, logits[t]);
  double sum = 0;
  for (int t = 0; t < 256; ++t) sum += out[t] = std::exp(logits[t] - top);
  double bits = 0;
  for (int t = 0; t < 256; ++t) {
    out[t] = static_cast<float>(out[t] / sum);
    if (out[t] > 0) bits -= out[t] * std::log2(static_cast<double>(out[t]));
  }
  entropy_[i] = static_cast<float>(bits);
  filled_.store(p + 1, std::memory_order_release);
}

const char* run_state_name(RunState s) {
  switch (s) {
    case RunState::kNoModel:
      return "no model";
    case RunState::kIdle:
      return "ready";
    case RunState::kRunning:
      return "generating";
    case RunState::kFinished:
      return "finished";
    case RunState::kStopped:
      return "stopped";
    case RunState::kFailed:
      return "failed";
  }
  return "?";
}

}  // namespace session
