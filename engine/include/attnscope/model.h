// Models of every family behind one interface: a full (training-time) forward over a
// sequence and a token-by-token decode with caches. Tokens are bytes; the input at position
// p is BOS for p = 0 and x[p-1] otherwise, and logits row p predicts x[p].
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "attnscope/attention.h"
#include "attnscope/config.h"
#include "attnscope/params.h"
#include "attnscope/status.h"
#include "attnscope/tensor.h"

namespace attnscope {

using WeightMap = std::map<std::string, Tensor>;
// Set to true by another thread to stop long work; checked between tokens and layers.
using CancelFlag = std::atomic<bool>;

struct InitOptions {
  uint64_t seed = 0;
  bool zero_logits = true;  // the paper's init; tests turn it off so logits carry information
  // Byte values are ordered (audio samples, pixel intensities): embed.token row c and the
  // logit layer's column c start as the same smooth bump over c (model_ordinal_feature), so
  // the untrained network knows that 130 is near 131 and predicts values near the byte it
  // was given; zero_logits is then ignored. The rest is initialised as usual.
  bool ordinal_tokens = false;
  // Position tables (embed.pos_row, pos_col, pos_channel) start as sinusoids of the index
  // (model_sinusoid_feature) instead of N(0, 0.02): the dot product of two positions' rows
  // then depends on their distance only, so attention to "the sample before" is a linear map
  // from the start rather than one to learn for every column. Still learned afterwards.
  bool sinusoidal_positions = false;
};
// The sinusoidal init's row for index p, (dim): sin and cos of p * 10000^(-2k/dim) in
// interleaved pairs, scaled to length 0.5.
std::vector<float> model_sinusoid_feature(int64_t p, int64_t dim);
// The ordinal init's feature of byte value c, (dim): Gaussian bumps centred every 255 / (dim
// - 1) codes, 1.5 spacings wide, scaled to unit length.
std::vector<float> model_ordinal_feature(int c, int64_t dim);
WeightMap model_init_weights(const ModelConfig& cfg, const InitOptions& opt);
// Every spec'd tensor present with its shape, nothing extra.
Status model_check_weights(const ModelConfig& cfg, const WeightMap& w);

// Per-family decode caches; opaque to callers.
class DecodeState {
 public:
  virtual ~DecodeState() = default;
  int64_t pos = 0;  // the position whose logits the next step produces
};

class Model {
 public:
  virtual ~Model() = default;
  const ModelConfig& config() const { return cfg_; }
  const WeightMap& weights() const { return w_; }

  // x has n tokens (1 <= n <= seq_len). logits becomes (rows, 256): row r predicts
  // x[*first_row + r] from x[< *first_row + r]. first_row is 0 except for Perceiver AR,
  // whose latents are the last M positions (first_row = max(0, n - M)).
  virtual Status forward(const uint8_t* x, int64_t n, Tensor* logits, int64_t* first_row,
                         const CancelFlag* cancel = nullptr) const = 0;
  virtual std::unique_ptr<DecodeState> decode_begin() const = 0;
  // Feeds the input at state.pos (BOS when pos = 0, else prev_token = x[pos-1]) and writes
  // the 256 logits that predict x[pos]; then pos advances.
  virtual Status decode_step(DecodeState& state, int prev_token, float* logits) const = 0;

  // Runs the forward over x[0..n) up to attention layer `layer` and hands that layer's q, k,
  // v and kernel output to fn exactly as the forward computed them, then stops. Layers are
  // numbered as the views show them (inspect_layer_count): dense, sparse and Reformer blocks
  // 0..L-1; Perceiver AR 0 = the cross-attention, 1..L = the latent blocks; Hourglass every
  // block in hierarchy order.
  virtual Status attention_layer(const uint8_t* x, int64_t n, int layer,
                                 const AttnLayerFn& fn) const = 0;

  // Work counters (score entries, keys read) for tests and benchmarks.
  AttnStats& stats() const { return stats_; }

 protected:
  Model(ModelConfig cfg, WeightMap w) : cfg_(std::move(cfg)), w_(std::move(w)) {}
  const float* param(const std::string& name) const;  // asserts presence (checked at create)

  ModelConfig cfg_;
  WeightMap w_;
  mutable AttnStats stats_;
};

// Checks the config and weights, then builds the family's model.
Expected<std::unique_ptr<Model>> model_create(const ModelConfig& cfg, WeightMap weights);

// Log-probabilities of every position: out is (n, 256) log-softmax rows; row p is log P(x[p]
// | x[< p]). Uses the full forward where it covers the rows, decode steps where it does not.
Status model_log_probs(const Model& m, const uint8_t* x, int64_t n, Tensor* out,
                       const CancelFlag* cancel = nullptr);
// Mean of -log2 P(x[p] | x[< p]) over all n positions.
Expected<double> model_bits_per_dim(const Model& m, const uint8_t* x, int64_t n,
                                    const CancelFlag* cancel = nullptr);
// As model_bits_per_dim, except for Perceiver AR: model_log_probs scores each position p with
// the latent window that ends at p (decode's exact semantics: one latent-stack pass per
// position, slow); this scores x in windows of M latents ending at M, 2M, .., n, one forward
// each, the way training sees them (a position attends to the latents of its window up to
// itself). The trainer's held-out figures use it. Every other family: model_bits_per_dim.
Expected<double> model_bits_per_dim_windowed(const Model& m, const uint8_t* x, int64_t n,
                                             const CancelFlag* cancel = nullptr);

}  // namespace attnscope
