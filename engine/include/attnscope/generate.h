// Sampling and generation: temperature, top-k, top-p and a seed; the same seed gives
// byte-identical output. Generation decodes token by token with the model's caches, keeping a
// prefix of prompt tokens or any positions a keep mask names.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "attnscope/model.h"

namespace attnscope {

struct SamplingParams {
  float temperature = 1.0f;  // 0 = greedy
  int top_k = 0;             // 0 = all 256
  float top_p = 1.0f;        // nucleus mass kept, in (0, 1]
  uint64_t seed = 0;
};
Status sampling_validate(const SamplingParams& p);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);
  // Draws one token from 256 logits.
  int sample(const float* logits);

 private:
  SamplingParams p_;
  uint64_t state_[4];
};

struct GenerateRequest {
  std::vector<uint8_t> prompt;  // kept tokens, copied to the output unchanged
  int64_t length = 0;           // total tokens wanted (prompt included); 0 = seq_len
  // Empty: the first prompt.size() positions are kept. Otherwise one entry per position
  // (`length` of them, and prompt holds `length` tokens): keep[p] = 1 copies prompt[p] to the
  // output, 0 samples position p. Every position's final token is the next step's input, so a
  // position kept after a sampled one is copied verbatim while the sampled ones are drawn given
  // everything before them (kept tokens and newly sampled ones alike).
  std::vector<uint8_t> keep;
  SamplingParams sampling;
  const CancelFlag* cancel = nullptr;
  // Called after every position with its token and the logits it was drawn from (for the
  // prompt, the logits that predicted the kept token).
  std::function<void(int64_t pos, uint8_t token, const float* logits)> on_token;
};

Expected<std::vector<uint8_t>> generate(const Model& m, const GenerateRequest& req);

}  // namespace attnscope
