// Sampling (temperature, top-k, top-p, seed) and token-by-token generation with caches, keeping
// a prompt prefix or the positions of a keep mask.
#include "attnscope/generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "attnscope/inspect.h"
#include "core/rng.h"

namespace attnscope {

Status sampling_validate(const SamplingParams& p) {
  if (!(p.temperature >= 0.0f) || p.temperature > 100.0f)
    return invalid_argument("temperature must be in [0, 100]");
  if (p.top_k < 0 || p.top_k > kVocab) return invalid_argument("top-k must be in 0..256 (0 = off)");
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) return invalid_argument("top-p must be in (0, 1]");
  return Status::ok();
}

Sampler::Sampler(const SamplingParams& p) : p_(p) {
  uint64_t s = p.seed;
  for (auto& w : state_) w = splitmix64(s);
}

int Sampler::sample(const float* logits) {
  // The stream is a plain xoshiro over our own state so that one draw per token keeps
  // outputs identical for the same seed across runs and builds.
  Rng rng(state_[0] ^ state_[1]);
  state_[0] = rng.next_u64();
  state_[1] = rng.next_u64();
  const double u = rng.uniform();

  int order[kVocab];
  std::iota(order, order + kVocab, 0);
  std::stable_sort(order, order + kVocab, [&](int a, int b) { return logits[a] > logits[b]; });
  if (p_.temperature == 0.0f) return order[0];

  // Probabilities of the sorted tokens at this temperature.
  double prob[kVocab];
  const double top = logits[order[0]];
  double total = 0;
  for (int r = 0; r < kVocab; ++r) {
    prob[r] = std::exp((logits[order[r]] - top) / p_.temperature);
    total += prob[r];
  }
  int keep = p_.top_k > 0 ? p_.top_k : kVocab;
  if (p_.top_p < 1.0f) {
    double mass = 0;
    for (int r = 0; r < keep; ++r) {
      mass += prob[r] / total;
      if (mass >= p_.top_p) {
        keep = r + 1;
        break;
      }
    }
  }
  double kept = 0;
  for (int r = 0; r < keep; ++r) kept += prob[r];
  double acc = 0, target = u * kept;
  for (int r = 0; r < keep; ++r) {
    acc += prob[r];
    if (target < acc) return order[r];
  }
  return order[keep - 1];
}

Expected<std::vector<uint8_t>> generate(const Model& m, const GenerateRequest& req) {
  ATTN_RETURN_IF_ERROR(sampling_validate(req.sampling));
  const int64_t n = req.length == 0 ? m.config().seq_len() : req.length;
  if (n < 1 || n > m.config().seq_len())
    return invalid_argument("length " + std::to_string(n) + " is outside 1.." +
                            std::to_string(m.config().seq_len()));
  const bool masked = !req.keep.empty();
  if (masked && static_cast<int64_t>(req.keep.size()) != n)
    return invalid_argument("the keep mask has " + std::to_string(req.keep.size()) +
                            " entries; the output has " + std::to_string(n) + " positions");
  if (masked && static_cast<int64_t>(req.prompt.size()) != n)
    return invalid_argument("with a keep mask the prompt needs one token per position (" +
                            std::to_string(n) + "), not " + std::to_string(req.prompt.size()));
  if (static_cast<int64_t>(req.prompt.size()) > n)
    return invalid_argument("the prompt is longer than the output");
  ATTN_RETURN_IF_ERROR(memory_check_inference(m.config(), "generating with", /*decode=*/true));
  std::vector<uint8_t> out(static_cast<size_t>(n));
  std::copy(req.prompt.begin(), req.prompt.end(), out.begin());
  auto kept = [&](int64_t p) {
    return masked ? req.keep[static_cast<size_t>(p)] != 0
                  : p < static_cast<int64_t>(req.prompt.size());
  };
  Sampler sampler(req.sampling);
  auto state = m.decode_begin();
  float logits[kVocab];
  for (int64_t p = 0; p < n; ++p) {
    if (req.cancel && req.cancel->load()) return cancelled("generation cancelled");
    ATTN_RETURN_IF_ERROR(
        m.decode_step(*state, p > 0 ? out[static_cast<size_t>(p - 1)] : -1, logits));
    if (!kept(p)) out[static_cast<size_t>(p)] = static_cast<uint8_t>(sampler.sample(logits));
    if (req.on_token) req.on_token(p, out[static_cast<size_t>(p)], logits);
  }
  return out;
}

}  // namespace attnscope
