// attnscope-cli init, info and convert: creating a model file from flags, describing one
// (config, parameter count, attention density per layer at full length, memory estimate), and
// storing one at another precision, checked on held-out data.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "args.h"
#include "attnscope/attention.h"
#include "attnscope/inspect.h"
#include "attnscope/safetensors.h"
#include "attnscope/train.h"
#include "commands.h"
#include "image_dataset.h"
#include "media.h"

namespace cli {

using namespace attnscope;

namespace {

const CommandSpec kInitSpec = {
    "init",
    "init --family dense|sparse|reformer|perceiver-ar|hourglass --modality M --layers L "
    "--dim D --heads H --seed S --out FILE.safetensors [family options]",
    "Creates a model file with freshly initialised weights (N(0, 0.02); output projections "
    "and W2 scaled by 1/sqrt(2 layers);\nlogit layer zero, the paper's initialisation, so an "
    "untrained model predicts the uniform distribution: 8 bits/dim).",
    {
        {"--family", "NAME", "dense, sparse, reformer, perceiver-ar or hourglass (required)"},
        {"--modality", "M",
         "image:WxHxC (C = 1, 3, 4), audio:RATE:SECONDS or text:LENGTH (required)"},
        {"--layers", "L",
         "attention blocks (required; hourglass: optional, taken from --hierarchy)"},
        {"--dim", "D", "model width (required)"},
        {"--heads", "H", "attention heads; D must be a multiple of H (required)"},
        {"--seed", "S", "seed of the weights and of the LSH rotations (required)"},
        {"--out", "FILE", "the model file to write, .safetensors (required)"},
        {"--ff-dim", "F", "feed-forward width (default: 4 D)"},
        {"--pos-width", "W", "audio/text position matrix width (default: stride or ceil(sqrt N))"},
        {"--dtype", "T", "stored precision: f32, f16 or bf16 (default: f32)"},
        {"--logits", "INIT", "logit layer init: zero (paper) or random N(0, 0.3) (default: zero)"},
        {"--token-init", "INIT",
         "token embeddings and logit layer: normal (N(0, 0.02) and --logits) or ordinal (both "
         "start as the same smooth bump over the byte's value, for audio and images, whose bytes "
         "are ordered: the untrained model predicts values near its input) (default: normal)"},
        {"--pos-init", "INIT",
         "position embeddings: normal (N(0, 0.02)) or sinusoidal (sin/cos of the index, so that "
         "two positions' dot product depends on their distance only) (default: normal)"},
        {"--pattern", "P", "sparse: strided or fixed (default: strided)"},
        {"--stride", "L",
         "sparse: stride / block length l (default: strided ceil(sqrt N) "
         "rounded up to --block; fixed 128)"},
        {"--block", "B", "sparse: block of the block-sparse layout, 16/32/64/128 (default: 32)"},
        {"--summary", "C", "sparse fixed: summary width c (default: 8)"},
        {"--combine", "HOW", "sparse: interleaved, merged or per-head (default: interleaved)"},
        {"--n-hashes", "R", "reformer: hashing rounds (default: 2)"},
        {"--chunk", "M", "reformer: chunk length m (default: 64)"},
        {"--buckets", "B", "reformer: buckets, even (default: 2N/m rounded up to even)"},
        {"--ff-chunks", "K", "reformer: feed-forward position chunks (default: 4)"},
        {"--latents", "M", "perceiver-ar: latents (default: min(N, 256))"},
        {"--cross-dropout", "P", "perceiver-ar: training share of context dropped (default: 0)"},
        {"--hierarchy", "SPEC", "hourglass: layers@factor list (default: 2@1,4@3,2@1)"},
        {"--pool", "HOW", "hourglass: average or linear shortening (default: average)"},
        {"--upsample", "HOW", "hourglass: repeat or linear upsampling (default: repeat)"},
    },
    0,
    "Family options given with another family are refused. Writing is atomic: FILE is either\n"
    "complete or untouched."};

const CommandSpec kInfoSpec = {
    "info",
    "info FILE",
    "Describes a model file: family, modality, sequence length, the config as JSON, the\n"
    "parameter count, each layer's attention kind and density at full length, and a memory\n"
    "estimate (weights, KV cache for decoding to full length, activations of one forward).",
    {},
    1,
    "Density is the share of the causal N(N+1)/2 query-key pairs (per head) that a layer\n"
    "evaluates: exact for dense and sparse (the block layout), analytic for the others."};

const CommandSpec kConvertSpec = {
    "convert",
    "convert --model IN.safetensors --dtype f32|f16|bf16 --out OUT.safetensors "
    "[--data DIR|FILE --max-change BITS]",
    "Stores a model's weights at another precision. With --data, measures held-out bits/dim\n"
    "(the same split as attnscope-cli train's default) before and after, and keeps float32 when\n"
    "the change exceeds --max-change.",
    {
        {"--model", "FILE", "the model file to read (required)"},
        {"--dtype", "T", "f32, f16 or bf16 (required)"},
        {"--out", "FILE", "the model file to write (required); written atomically"},
        {"--data", "PATH", "data set whose held-out split checks the change (optional)"},
        {"--max-change", "BITS", "largest accepted change of held-out bits/dim (default: 0.01)"},
        {"--examples", "N", "held-out examples to evaluate (default: 64; 0 = all)"},
    },
    0,
    ""};

// Index of value in choices, or a usage error naming the flag.
Expected<int> choose(const Args& a, const std::string& flag,
                     const std::vector<std::string>& choices, int fallback) {
  if (!a.has(flag)) return fallback;
  const std::string v = a.text(flag, "");
  std::string list;
  for (size_t i = 0; i < choices.size(); ++i) {
    if (v == choices[i]) return static_cast<int>(i);
    list += (i ? ", " : "") + choices[i];
  }
  return invalid_argument(flag + " must be one of " + list + ", got '" + v + "'");
}

// Options that belong to one family only.
struct FamilyFlags {
  Family family;
  std::vector<std::string> flags;
};
const FamilyFlags kFamilyFlags[] = {
    {Family::kSparse, {"--pattern", "--stride", "--block", "--summary", "--combine"}},
    {Family::kReformer, {"--n-hashes", "--chunk", "--buckets", "--ff-chunks"}},
    {Family::kPerceiverAR, {"--latents", "--cross-dropout"}},
    {Family::kHourglass, {"--hierarchy", "--pool", "--upsample"}},
};

#define CLI_ASSIGN(lhs, expr)              \
  do {                                     \
    auto _v = (expr);                      \
    if (!_v) return _v.status();           \
    lhs = static_cast<decltype(lhs)>(*_v); \
  } while (0)

Expected<ModelConfig> config_from_args(const Args& a) {
  ModelConfig c;
  auto family_text = a.required("--family");
  if (!family_text) return family_text.status();
  auto family = family_from_name(*family_text);
  if (!family) return family.status();
  c.family = *family;
  for (const FamilyFlags& ff : kFamilyFlags)
    for (const std::string& f : ff.flags)
      if (a.has(f) && ff.family != c.family)
        return invalid_argument(f + " applies to --family " + family_name(ff.family) + " only");
  auto modality_text = a.required("--modality");
  if (!modality_text) return modality_text.status();
  auto modality = modality_parse(*modality_text);
  if (!modality) return modality.status();
  c.modality = *modality;
  constexpr int64_t kIntMax = 2147483647;
  if (c.family == Family::kHourglass) {
    CLI_ASSIGN(c.layers, a.integer("--layers", 0, 0, kIntMax));
  } else {
    CLI_ASSIGN(c.layers, a.required_integer("--layers", 1, kIntMax));
  }
  CLI_ASSIGN(c.dim, a.required_integer("--dim", 1, kIntMax));
  CLI_ASSIGN(c.heads, a.required_integer("--heads", 1, kIntMax));
  if (!a.has("--seed")) return invalid_argument("missing required option --seed");
  {
    const std::string s = a.text("--seed", "");
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    if (s.empty() || s[0] == '-' || *end != '\0' || errno == ERANGE)
      return invalid_argument("--seed must be an integer in 0..2^64-1, got '" + s + "'");
    c.seed = v;
  }
  CLI_ASSIGN(c.ff_dim, a.integer("--ff-dim", 0, 1, kIntMax));
  CLI_ASSIGN(c.pos_width, a.integer("--pos-width", 0, 1, kIntMax));
  CLI_ASSIGN(c.sparse.pattern, choose(a, "--pattern", {"strided", "fixed"}, 0));
  CLI_ASSIGN(c.sparse.stride, a.integer("--stride", 0, 1, kIntMax));
  CLI_ASSIGN(c.sparse.block, a.integer("--block", c.sparse.block, 1, kIntMax));
  CLI_ASSIGN(c.sparse.summary, a.integer("--summary", c.sparse.summary, 1, kIntMax));
  CLI_ASSIGN(c.sparse.combine, choose(a, "--combine", {"interleaved", "merged", "per-head"}, 0));
  CLI_ASSIGN(c.lsh.n_hashes, a.integer("--n-hashes", c.lsh.n_hashes, 1, kIntMax));
  CLI_ASSIGN(c.lsh.chunk, a.integer("--chunk", c.lsh.chunk, 1, kIntMax));
  CLI_ASSIGN(c.lsh.n_buckets, a.integer("--buckets", 0, 1, kIntMax));
  CLI_ASSIGN(c.lsh.ff_chunks, a.integer("--ff-chunks", c.lsh.ff_chunks, 1, kIntMax));
  CLI_ASSIGN(c.perceiver.latents, a.integer("--latents", 0, 1, kIntMax));
  CLI_ASSIGN(c.perceiver.cross_dropout, a.number("--cross-dropout", 0.0, 0.0, 1.0));
  c.hourglass.hierarchy = a.text("--hierarchy", c.hourglass.hierarchy);
  CLI_ASSIGN(c.hourglass.pool, choose(a, "--pool", {"average", "linear"}, 0));
  CLI_ASSIGN(c.hourglass.upsample, choose(a, "--upsample", {"repeat", "linear"}, 0));
  const int given_layers = c.layers;
  ATTN_RETURN_IF_ERROR(config_resolve(c));
  if (c.family == Family::kHourglass && given_layers != 0 && given_layers != c.layers)
    return invalid_argument("--layers " + std::to_string(given_layers) +
                            " does not match the hierarchy '" + c.hourglass.hierarchy +
                            "', which has " + std::to_string(c.layers) + " layers");
  ATTN_RETURN_IF_ERROR(config_validate(c));
  return c;
}

// Pairs (i, j), j <= i, of a causal attention over n positions.
double causal_pairs(double n) {
  return n * (n + 1) / 2;
}

void print_density(const ModelConfig& c) {
  const int64_t n = c.seq_len();
  const double full = causal_pairs(static_cast<double>(n));
  std::printf(
      "attention at full length (N = %lld; density = share of the N(N+1)/2 causal "
      "pairs per head):\n",
      static_cast<long long>(n));
  switch (c.family) {
    case Family::kDense:
      for (int l = 0; l < c.layers; ++l)
        std::printf("  layer %d: dense causal, density 1.0000\n", l);
      break;
    case Family::kSparse:
      for (int l = 0; l < c.layers; ++l) {
        const double entries =
            static_cast<double>(attn_sparse_layout_entries(c.sparse, l, c.heads, n));
        std::printf("  layer %d: sparse %s, density %.4f\n", l, inspect_layer_kind(c, l).c_str(),
                    entries / (full * c.heads));
      }
      break;
    case Family::kReformer: {
      const double keys = 2.0 * c.lsh.chunk * c.lsh.n_hashes;
      const double density = std::min(1.0, keys * static_cast<double>(n) / full);
      for (int l = 0; l < c.layers; ++l)
        std::printf(
            "  layer %d: LSH, %d rounds, chunk %d, %d buckets, density <= %.4f "
            "(analytic: each query sees at most 2m keys per round)\n",
            l, c.lsh.n_hashes, c.lsh.chunk, c.lsh.n_buckets, density);
      break;
    }
    case Family::kPerceiverAR: {
      const double m = c.perceiver.latents, nn = static_cast<double>(n);
      const double cross = m * nn - m * (m - 1) / 2;  // latent p in [N-M, N) sees p + 1 inputs
      std::printf("  cross-attention: %d latents over %lld inputs, density %.4f\n",
                  c.perceiver.latents, static_cast<long long>(n), cross / full);
      for (int l = 0; l < c.layers; ++l)
        std::printf("  latent layer %d: causal over %d latents, density %.4f\n", l,
                    c.perceiver.latents, causal_pairs(m) / full);
      break;
    }
    case Family::kHourglass: {
      auto levels = hourglass_parse(c.hourglass.hierarchy);
      if (!levels) break;
      for (size_t i = 0; i < levels->size(); ++i) {
        const HourglassLevel& lv = (*levels)[i];
        const int64_t len = (n + lv.factor - 1) / lv.factor;
        std::printf(
            "  level %zu: %d layer(s) at shortening %d (length %lld), dense causal, "
            "density %.4f each\n",
            i, lv.layers, lv.factor, static_cast<long long>(len),
            causal_pairs(static_cast<double>(len)) / full);
      }
      break;
    }
  }
}

void print_memory(const ModelConfig& c, size_t file_bytes) {
  const double f = sizeof(float), n = static_cast<double>(c.seq_len()), d = c.dim;
  const double weights = static_cast<double>(model_param_count(c)) * f;
  double kv = 0, rows = n;
  switch (c.family) {
    case Family::kDense:
    case Family::kSparse:
      kv = c.layers * 2 * n * d * f;
      break;
    case Family::kReformer:
      kv = c.layers * (2 * n * d * f + c.heads * c.lsh.n_hashes * n * 4);
      break;
    case Family::kPerceiverAR:
      rows = c.perceiver.latents;
      kv = 2 * n * d * f + c.layers * 2 * rows * d * f;
      break;
    case Family::kHourglass: {
      auto levels = hourglass_parse(c.hourglass.hierarchy);
      if (levels)
        for (const HourglassLevel& lv : *levels)
          kv += lv.layers * 2 * std::ceil(n / lv.factor) * d * f;
      break;
    }
  }
  // One forward holds the residual stream, then one layer at a time: q, k, v, attention
  // output and the FFN hidden rows; then the logits of its rows.
  const double act = n * d * f + rows * (4 * d + c.ff_dim) * f + rows * kVocab * f +
                     (c.family == Family::kPerceiverAR ? 2 * n * d * f : 0);
  std::printf("memory estimate (float32 in memory):\n");
  std::printf("  weights: %s (%.0f bytes; file %zu bytes)\n", mem_format_bytes(weights).c_str(),
              weights, file_bytes);
  std::printf("  KV cache for decoding to N: %s\n", mem_format_bytes(kv).c_str());
  std::printf("  activations of one forward: %s\n", mem_format_bytes(act).c_str());
}

}  // namespace

Flag latents_flag() {
  return {"--latents", "M", "perceiver-ar: latents for this run, 1..N (default: the file's)"};
}
Flag latent_cache_flag() {
  return {"--latent-cache", "S",
          "perceiver-ar decoding once M latents are cached: exact (each token's window is the M "
          "positions ending at it; the latent stack is rerun per token) or cached (the official "
          "sampler's most_recent_only: rebuilt from the last M/2 positions when full, then one row "
          "per token; windows of M/2..M) (default: exact)"};
}

Status apply_test_time_knobs(const Args& a, ModelConfig* cfg) {
  const bool perceiver = cfg->family == Family::kPerceiverAR;
  const Flag latents = latents_flag(), cache = latent_cache_flag();
  for (const Flag* f : {&latents, &cache})
    if (a.has(f->name) && !perceiver)
      return invalid_argument(f->name + " is for Perceiver AR models; this model is " +
                              family_name(cfg->family));
  if (!perceiver) return Status::ok();
  CLI_ASSIGN(cfg->perceiver.latents,
             a.integer(latents.name, cfg->perceiver.latents, 1, cfg->seq_len()));
  if (a.has(cache.name)) {
    auto d = perceiver_decode_from_name(a.text(cache.name, ""));
    if (!d) return invalid_argument(cache.name + ": " + d.status().message());
    cfg->perceiver.decode = *d;
  }
  return Status::ok();
}

Expected<std::unique_ptr<Model>> load_model(const std::string& path, const Args* knobs) {
  auto loaded = safetensors_load(path);
  if (!loaded) {
    if (loaded.status().code() == StatusCode::kInternal)
      return internal_error(loaded.status().message());
    return invalid_argument(loaded.status().message());
  }
  if (knobs) ATTN_RETURN_IF_ERROR(apply_test_time_knobs(*knobs, &loaded->cfg));
  const std::string family = family_name(loaded->cfg.family);
  auto model = model_create(loaded->cfg, std::move(loaded->weights));
  if (!model) return invalid_argument(path + ": " + model.status().message());
  if (!*model) return unsupported("the " + family + " family is not available in this build");
  return std::move(*model);
}

Expected<DevicePick> device_from_args(const Args& args) {
  DevicePick pick;
  const std::string device = args.text("--device", "cpu");
  if (device != "cpu" && device != "cuda")
    return invalid_argument("--device must be cpu or cuda, got '" + device + "'");
  pick.cuda = device == "cuda";
  if (args.has("--precision")) {
    if (!pick.cuda) return invalid_argument("--precision applies to --device cuda");
    auto p = cuda_precision_from_name(args.text("--precision", "f32"));
    if (!p) return invalid_argument("--precision: " + p.status().message());
    pick.precision = *p;
  }
  return pick;
}

Expected<std::unique_ptr<Model>> load_model_on(const std::string& path, const DevicePick& device,
                                               ModelUse use, std::string* note, const Args* knobs) {
  if (!device.cuda) {
    if (note) *note = "backend: cpu";
    return load_model(path, knobs);
  }
  auto loaded = safetensors_load(path);
  if (!loaded) {
    if (loaded.status().code() == StatusCode::kInternal)
      return internal_error(loaded.status().message());
    return invalid_argument(loaded.status().message());
  }
  if (knobs) ATTN_RETURN_IF_ERROR(apply_test_time_knobs(*knobs, &loaded->cfg));
  auto placed =
      model_create_placed(loaded->cfg, std::move(loaded->weights), true, device.precision, use);
  if (!placed) {
    if (placed.status().code() == StatusCode::kUnsupported) return placed.status();
    return invalid_argument(path + ": " + placed.status().message());
  }
  if (note) *note = placed->note;
  return std::move(placed->model);
}

Status cmd_init(const Argv& argv, const Context&) {
  auto args = Args::parse(kInitSpec, argv);
  if (!args) return args.status();
  if (args->help()) {
    std::fputs(command_help(kInitSpec).c_str(), stdout);
    return Status::ok();
  }
  auto cfg = config_from_args(*args);
  if (!cfg) return cfg.status();
  auto out = args->required("--out");
  if (!out) return out.status();
  ATTN_RETURN_IF_ERROR(check_output_folder(*out));
  auto dtype = choose(*args, "--dtype", {"f32", "f16", "bf16"}, 0);
  if (!dtype) return dtype.status();
  auto logits = choose(*args, "--logits", {"zero", "random"}, 0);
  if (!logits) return logits.status();
  auto tokens = choose(*args, "--token-init", {"normal", "ordinal"}, 0);
  if (!tokens) return tokens.status();
  if (*tokens == 1 && args->has("--logits"))
    return invalid_argument("--token-init ordinal sets the logit layer too; drop --logits");
  InitOptions opt;
  opt.seed = cfg->seed;
  opt.zero_logits = *logits == 0;
  opt.ordinal_tokens = *tokens == 1;
  auto positions = choose(*args, "--pos-init", {"normal", "sinusoidal"}, 0);
  if (!positions) return positions.status();
  opt.sinusoidal_positions = *positions == 1;
  const WeightMap weights = model_init_weights(*cfg, opt);
  const DType types[] = {DType::kF32, DType::kF16, DType::kBF16};
  Status st = safetensors_save(*out, *cfg, weights, types[*dtype]);
  if (!st) return st.code() == StatusCode::kInvalidArgument ? st : internal_error(st.message());
  std::printf("wrote %s: %s %s, %lld parameters (%s)\n", out->c_str(), family_name(cfg->family),
              cfg->modality.describe().c_str(), static_cast<long long>(model_param_count(*cfg)),
              dtype_name(types[*dtype]));
  return Status::ok();
}

Status cmd_info(const Argv& argv, const Context&) {
  auto args = Args::parse(kInfoSpec, argv);
  if (!args) return args.status();
  if (args->help()) {
    std::fputs(command_help(kInfoSpec).c_str(), stdout);
    return Status::ok();
  }
  const std::string path = args->positional()[0];
  auto loaded = safetensors_load(path);
  if (!loaded)
    return loaded.status().code() == StatusCode::kInternal
               ? loaded.status()
               : invalid_argument(loaded.status().message());
  const ModelConfig& c = loaded->cfg;
  std::printf("file: %s (%zu bytes)\n", path.c_str(), loaded->file_bytes);
  std::printf("family: %s\n", family_name(c.family));
  std::printf("modality: %s\n", c.modality.describe().c_str());
  std::printf("sequence length: %lld\n", static_cast<long long>(c.seq_len()));
  std::printf("parameters: %lld\n", static_cast<long long>(model_param_count(c)));
  std::printf("config:\n%s\n", nlohmann::ordered_json::parse(config_to_json(c)).dump(2).c_str());
  print_density(c);
  print_memory(c, loaded->file_bytes);
  return Status::ok();
}

namespace {
// Mean held-out bits/dim of weights w over examples.
Expected<double> heldout_bits(const ModelConfig& cfg, const WeightMap& w,
                              const std::vector<std::vector<uint8_t>>& examples,
                              const CancelFlag* cancel) {
  auto model = model_create(cfg, w);
  if (!model) return model.status();
  double sum = 0;
  for (const auto& e : examples) {
    auto b = model_bits_per_dim_windowed(**model, e.data(), static_cast<int64_t>(e.size()), cancel);
    if (!b) return b.status();
    sum += *b;
  }
  return sum / static_cast<double>(examples.size());
}
}  // namespace

Status cmd_convert(const Argv& argv, const Context& ctx) {
  auto args = Args::parse(kConvertSpec, argv);
  if (!args) return args.status();
  if (args->help()) {
    std::fputs(command_help(kConvertSpec).c_str(), stdout);
    return Status::ok();
  }
  auto in = args->required("--model");
  if (!in) return in.status();
  auto out = args->required("--out");
  if (!out) return out.status();
  if (!args->has("--dtype")) return invalid_argument("--dtype is required (f32, f16 or bf16)");
  auto dtype = choose(*args, "--dtype", {"f32", "f16", "bf16"}, 0);
  if (!dtype) return dtype.status();
  auto max_change = args->number("--max-change", 0.01, 0.0, 8.0);
  if (!max_change) return max_change.status();
  auto count = args->integer("--examples", 64, 0, int64_t{1} << 30);
  if (!count) return count.status();
  ATTN_RETURN_IF_ERROR(check_output_folder(*out));
  auto loaded = safetensors_load(*in);
  if (!loaded)
    return loaded.status().code() == StatusCode::kInternal
               ? loaded.status()
               : invalid_argument(loaded.status().message());
  const DType types[] = {DType::kF32, DType::kF16, DType::kBF16};
  DType chosen = types[*dtype];
  if (args->has("--data") && chosen != DType::kF32) {
    DataOptions dopt;
    dopt.image_decoder = image_dataset_decode;
    auto data = dataset_load(args->text("--data", ""), loaded->cfg.modality, dopt);
    if (!data) return invalid_argument(data.status().message());
    std::vector<std::vector<uint8_t>> held = data->heldout;
    if (*count > 0 && static_cast<int64_t>(held.size()) > *count) held.resize(size_t(*count));
    if (held.empty()) return invalid_argument("the data set has no held-out examples");
    // Weights as the target precision would store them: save to a temporary file and load.
    const std::string probe = *out + ".probe.safetensors";
    Status st = safetensors_save(probe, loaded->cfg, loaded->weights, chosen);
    if (!st) return st;
    auto reloaded = safetensors_load(probe);
    auto before = heldout_bits(loaded->cfg, loaded->weights, held, ctx.cancel);
    auto after = reloaded ? heldout_bits(reloaded->cfg, reloaded->weights, held, ctx.cancel)
                          : Expected<double>(reloaded.status());
    std::remove(probe.c_str());
    if (!before) return before.status();
    if (!after) return after.status();
    const double change = std::fabs(*after - *before);
    std::printf("held-out bits/dim over %zu examples: f32 %.4f, %s %.4f (change %.4f)\n",
                held.size(), *before, dtype_name(chosen), *after, change);
    if (change > *max_change) {
      std::printf("change exceeds %.4f: keeping f32\n", *max_change);
      chosen = DType::kF32;
    }
  }
  Status st = safetensors_save(*out, loaded->cfg, loaded->weights, chosen);
  if (!st) return st.code() == StatusCode::kInvalidArgument ? st : internal_error(st.message());
  std::printf("wrote %s (%s)\n", out->c_str(), dtype_name(chosen));
  return Status::ok();
}

}  // namespace cli
