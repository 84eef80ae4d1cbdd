// One configuration schema for every family; stored as JSON in the model file.
// Every key, its meaning and its default is documented in engine/io/FORMAT.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "attnscope/status.h"

namespace attnscope {

constexpr int kVocab = 256;  // every modality is a sequence of bytes

enum class Family { kDense, kSparse, kReformer, kPerceiverAR, kHourglass };
enum class ModalityKind { kImage, kAudio, kText };
enum class SparsePattern { kStrided, kFixed };
enum class SparseCombine { kInterleaved, kMerged, kPerHead };
enum class HourglassPool { kAverage, kLinear };
enum class HourglassUpsample { kRepeat, kLinear };
// How Perceiver AR decodes once the latent window is full (see PerceiverConfig::decode).
enum class PerceiverDecode { kExact, kCached };

const char* family_name(Family f);
Expected<Family> family_from_name(const std::string& s);
const char* perceiver_decode_name(PerceiverDecode d);  // "exact" or "cached"
Expected<PerceiverDecode> perceiver_decode_from_name(const std::string& s);

struct Modality {
  ModalityKind kind = ModalityKind::kImage;
  int width = 32, height = 32, channels = 3;  // image
  int rate = 16000;                           // audio, samples per second
  double seconds = 0.0;                       // audio
  int length = 0;                             // text, bytes
  int64_t seq_len() const;
  std::string describe() const;  // "image:32x32x3", "audio:16000:2", "text:1024"
};
// Parses "image:WxHxC", "audio:RATE:SECONDS", "text:LENGTH".
Expected<Modality> modality_parse(const std::string& s);

struct SparseConfig {
  SparsePattern pattern = SparsePattern::kStrided;
  int stride = 0;   // l; 0 = auto: sqrt(N) rounded up to a multiple of block (strided), 128 (fixed)
  int block = 32;   // block of the block-sparse layout (32 or 64)
  int summary = 8;  // c, fixed pattern only: the last c positions of every block of l
  SparseCombine combine = SparseCombine::kInterleaved;
};

struct LshConfig {
  int n_hashes = 2;
  int chunk = 64;     // m, the chunk length
  int n_buckets = 0;  // 0 = auto: 2N/m rounded up to even
  bool reversible = true;
  int ff_chunks = 4;  // feed-forward computed in this many position chunks
};

struct PerceiverConfig {
  int latents = 0;             // M; 0 = auto: min(N, 256)
  double cross_dropout = 0.0;  // training only: share of context dropped from cross-attention
  // Decoding only, a test-time choice that is not stored in the model file. Once M latents
  // are cached, kExact gives each new position the window of the M positions ending at it, so
  // the whole latent stack is recomputed every token (the logits equal the full forward's last
  // row). kCached is the official sampler's "most_recent_only" scheme: when the latent caches
  // are full they are rebuilt from the last M/2 positions, then grow by one row per token until
  // full again, so a position sees between M/2 and M latents and a token costs two incremental
  // steps on average.
  PerceiverDecode decode = PerceiverDecode::kExact;
};

struct HourglassLevel {
  int layers = 0;
  int factor = 1;  // total shortening relative to the input at this level
};

struct HourglassConfig {
  std::string hierarchy = "2@1,4@3,2@1";
  HourglassPool pool = HourglassPool::kAverage;
  HourglassUpsample upsample = HourglassUpsample::kRepeat;
};
// Parses "2@1,4@3,2@1": factors must read the same both ways, rise to one peak and each
// divide the next; layer counts are free.
Expected<std::vector<HourglassLevel>> hourglass_parse(const std::string& spec);

struct ModelConfig {
  Family family = Family::kDense;
  Modality modality;
  int layers = 4;  // attention blocks (Perceiver AR: latent self-attention blocks; Hourglass: from
                   // hierarchy)
  int dim = 128;   // D
  int heads = 4;   // H; head width d = D / H
  int ff_dim = 0;  // 0 = auto: 4 D
  int pos_width =
      0;  // audio/text factorised positions: row = p / w, col = p % w; 0 = auto: ceil(sqrt(N))
  uint64_t seed = 0;  // weight init and LSH rotations
  SparseConfig sparse;
  LshConfig lsh;
  PerceiverConfig perceiver;
  HourglassConfig hourglass;

  int64_t seq_len() const { return modality.seq_len(); }
  int head_dim() const { return heads > 0 ? dim / heads : 0; }
};

// Fills every auto (0) field with its resolved value; call before use. Idempotent.
Status config_resolve(ModelConfig& c);
// Refuses absurd or inconsistent configurations with a message naming the key.
Status config_validate(const ModelConfig& c);
std::string config_to_json(const ModelConfig& c);
// Parses, resolves and validates. Unknown keys are refused (a typo must not pass silently).
Expected<ModelConfig> config_from_json(const std::string& json);

}  // namespace attnscope
