// What the playground features publish in a Snapshot: the rows of the test-time knob table
// (one per finished run of a Reformer or Perceiver AR model) and the Compare grid (models x
// prompts x seeds).
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
  // Perceiver AR: how decoding goes on once M latents are cached (config.h); taken only with
  // latents > 0.
  attnscope::PerceiverDecode decode = attnscope::PerceiverDecode::kExact;
};

// One finished run with the knob value it ran under.
struct KnobRow {
  std::string knob;  // "hashes" or "latents"
  int value = 0;
  std::string scheme;  // Perceiver AR: "exact" or "cached" (the decode); else empty
  double tokens_per_s = 0;
  double prompt_bits_per_dim = 0;  // NaN when the prompt was empty
};

// One prompt of a comparison: the current prompt, or an image or clip added on the Compare tab
// cut as the current prompt is (the same kept prefix or painted mask).
struct ComparePrompt {
  std::string name;             // "current prompt" or the file's name
  std::vector<uint8_t> prompt;  // the kept tokens; with a mask, the whole image
  std::vector<uint8_t> keep;    // empty: prompt is a kept prefix; else one entry per position
  std::vector<uint8_t> truth;   // the whole image or clip (seq_len tokens); empty when none
  int64_t prompt_length = 0;    // kept tokens
  int64_t completed = 0;        // positions each completion samples
};

// One completion: one model, one prompt, one seed.
struct CompareCell {
  std::vector<uint8_t> tokens;         // the known tokens so far: the prompt, then the completion
  double tokens_per_s = 0;             // sampled positions per second
  double completion_bits_per_dim = 0;  // its own sample under itself: low is not "right"
  bool done = false;
};

// One model's row of the grid and its figures.
struct CompareRow {
  std::string name;         // the model file's name
  std::string config_text;  // "dense, image:32x32x3, 4 layers, ..."
  int64_t parameters = 0;
  // Measured: the most working memory (activations, caches, scratch) one of its completions
  // took above the level before it started; weights excluded (they are parameters x 4 bytes).
  size_t peak_bytes = 0;
  // Per prompt: the model scored on the real image or clip the prompt came from, mean
  // -log2 P(true token) over the completed positions (NaN without one), its "surprise" per
  // position of the whole sequence (empty without one), and the prompt's own bits/dim (NaN
  // when the prompt is empty).
  std::vector<double> truth_bits_per_dim;
  std::vector<std::vector<float>> surprise_bits;
  std::vector<double> prompt_bits_per_dim;
  std::vector<CompareCell> cells;  // prompts x seeds, prompt-major: cells[p * seeds + k]
  double generated = 0;            // positions sampled over its finished cells
  double seconds = 0;              // and the time they took
  double tokens_per_s() const { return seconds > 0 ? generated / seconds : 0; }
  bool done() const;
};

// The grid: every model (rows[0] the open one) completes every prompt with every seed, the
// same sampling parameters otherwise, one completion after another.
struct CompareResult {
  attnscope::Modality modality;
  int64_t length = 0;  // tokens per completion
  std::vector<ComparePrompt> prompts;
  std::vector<uint64_t> seeds;
  std::vector<CompareRow> rows;
  int64_t done = 0;   // positions sampled so far over every cell
  int64_t total = 0;  // of this many
  const CompareCell& cell(size_t row, size_t prompt, size_t seed) const {
    return rows[row].cells[prompt * seeds.size() + seed];
  }
  bool has_truth() const;  // some prompt came from a whole loaded image or clip
  // rows[row]'s true-data bits/dim over every completed position of every prompt that has a
  // real image or clip (each prompt weighted by its completed positions); NaN when none has.
  double truth_bits_mean(size_t row) const;
};

// The open model's score of the whole loaded image or clip (the sequence the prompt was cut
// from): per position -log2 P(true token | true tokens before it), and their mean.
struct TruthScore {
  std::vector<float> surprise_bits;
  double bits_per_dim = 0;
};

}  // namespace session
