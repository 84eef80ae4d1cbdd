// What the playground features publish in a Snapshot: the rows of the test-time knob table
// (one per finished run of a Reformer or Perceiver AR model) and a two-model comparison.
// Plain data, immutable once published; the worker computes it, views only read it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "attnscope/config.h"

namespace session {

// A test-time change to the open model's configuration, applied before the next run.
// 0 leaves a value as the file has it; values a family does not use are ignored.
struct Knobs {
  int n_hashes = 0;  // Reformer: LSH rounds (the weights do not depend on it)
  int latents = 0;   // Perceiver AR: M, 1..N
};

// One finished run with the knob value it ran under.
struct KnobRow {
  std::string knob;  // "hashes" or "latents"
  int value = 0;
  double tokens_per_s = 0;
  double prompt_bits_per_dim = 0;  // NaN when the prompt was empty
};

// One model's side of a comparison.
struct CompareSide {
  std::string name;             // the model file's name
  std::string config_text;      // "dense, image:32x32x3, 4 layers, ..."
  std::vector<uint8_t> tokens;  // the known tokens so far: the prompt, then the completion
  double tokens_per_s = 0;
  // The model scored on the real image or clip the prompt came from: mean -log2 P(true token)
  // over the positions the models completed (NaN without a whole loaded image), and per
  // position of the whole sequence, the "surprise" (empty without one).
  double truth_bits_per_dim = 0;
  std::vector<float> surprise_bits;
  double completion_bits_per_dim = 0;  // its own sample under itself: low is not "right"
  double prompt_bits_per_dim = 0;      // NaN when the prompt was empty
  bool done = false;
};

// The same prompt completed by the open model (sides[0]) and the second model (sides[1]),
// one after the other, with the same sampling parameters and seed.
struct CompareResult {
  attnscope::Modality modality;
  int64_t length = 0;         // tokens per completion
  int64_t prompt_length = 0;  // kept tokens
  std::vector<uint8_t> keep;  // empty: the prompt is a kept prefix; else one entry per position
  bool has_truth = false;     // the prompt came from a whole loaded image or clip
  uint64_t seed = 0;
  int64_t done = 0;  // positions generated so far over both sides, of 2 * length
  CompareSide sides[2];
};

// The open model's score of the whole loaded image or clip (the sequence the prompt was cut
// from): per position -log2 P(true token | true tokens before it), and their mean.
struct TruthScore {
  std::vector<float> surprise_bits;
  double bits_per_dim = 0;
};

}  // namespace session
