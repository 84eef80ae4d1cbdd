// attnscope-cli train and memory: training a model file on a folder or file of
// data (progress, held-out bits/dim, checkpoints, resume, Ctrl-C), and the
// measured memory of training steps under each technique against the formula
// (and the seeds' published figures).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "args.h"
#include "attnscope/atomic_file.h"
#include "attnscope/safetensors.h"
#include "attnscope/train.h"
#include "commands.h"
#include "image_dataset.h"
#include "media.h"

namespace cli {

using namespace attnscope;

namespace {

// A default as the help prints it: 3e-4 -> "0.0003", 8 -> "8".
std::string json_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// The trainer's settings (train_option_fields) as flags, with the command's own around them.
std::vector<Flag> train_flags() {
  std::vector<Flag> flags = {
      {"--model", "FILE", "the model to start from (required)"},
      {"--data", "PATH",
       "a folder (every image, WAV or text file below it) or one file (text and audio are cut "
       "into windows of the model's length) (required)"},
      {"--out", "FILE", "the trained model, written at checkpoints and at the end (required)"},
      {"--technique", "T",
       "memory technique: stored, recompute (blocks re-run in the backward, one block's "
       "attention probabilities at a time), recompute-attention (blocks re-run, probabilities "
       "recomputed per tile) or reversible (Reformer) (default: stored)"},
  };
  const TrainOptions defaults;
  for (const TrainOptionField& f : train_option_fields()) {
    if (!f.flag) continue;
    std::string d = f.default_text ? f.default_text : json_number(f.get(defaults));
    flags.push_back(
        {f.flag, f.value,
         std::string(f.help) + (d == "required" ? " (required)" : " (default: " + d + ")")});
  }
  flags.push_back(
      {"--heldout", "SHARE", "share of the examples held out for evaluation (default: 0.05)"});
  flags.push_back(
      {"--crop", "", "images: centre-crop to the model's aspect ratio instead of scaling"});
  flags.push_back({"--resume", "", "continue from OUT and OUT.train when they exist"});
  return flags;
}

const CommandSpec kTrainSpec = {
    "train",
    "train --model INIT.safetensors --data DIR|FILE --steps N [--batch B] "
    "[--lr X] [--warmup N] "
    "[--clip X] [--weight-decay X] [--eval-every N] [--checkpoint-every N] "
    "[--technique stored|recompute|recompute-attention|reversible] [--seed N] [--window K] "
    "[--heldout SHARE] "
    "[--stop-at N] [--resume] "
    "--out OUT.safetensors",
    "Trains a model file (from init, or an earlier training) with AdamW on a "
    "folder of images\n"
    "(PNG/JPEG), WAV files or text, or on one file, and writes the trained "
    "model to OUT.",
    train_flags(),
    0,
    "OUT is a plain model file (every command loads it); the optimiser state "
    "(AdamW moments,\n"
    "step) is written beside it as OUT.train, so that --resume continues "
    "exactly where it\n"
    "stopped, with the checkpoint's optimiser settings. Both are written "
    "atomically at every\n"
    "checkpoint and at the end. Ctrl-C stops after the current sequence, "
    "writes a checkpoint\n"
    "and exits with code 1. Progress goes to stderr when it is a terminal; "
    "otherwise plain\n"
    "lines go to stdout."};

const CommandSpec kMemorySpec = {
    "memory",
    "memory --family F --lengths N1,N2,... --layers L1,L2,... --technique "
    "T[,T...] "
    "[--dim D] [--heads H] [model options] [--csv FILE] | memory --seeds",
    "Measures the peak memory of one training step (forward + backward over "
    "one text sequence,\n"
    "random weights, gradients included, no optimiser) for every length and "
    "layer count under\n"
    "the technique, by category, next to the formula's estimate.",
    {
        {"--family", "NAME", "dense, sparse, reformer, perceiver-ar or hourglass (required)"},
        {"--lengths", "LIST", "sequence lengths, comma separated (required)"},
        {"--layers", "LIST", "layer counts, comma separated (required; hourglass: 0)"},
        {"--technique", "LIST",
         "stored, recompute, recompute-attention or reversible; several comma "
         "separated (default: stored)"},
        {"--dim", "D", "model width (default: 128)"},
        {"--heads", "H", "attention heads (default: 4)"},
        {"--ff-dim", "F", "feed-forward width (default: 4 D)"},
        {"--seed", "S", "seed of the weights and the tokens (default: 1)"},
        {"--pattern", "P", "sparse: strided or fixed (default: strided)"},
        {"--stride", "L",
         "sparse: stride (default: per length, ceil(sqrt N) rounded to "
         "--block)"},
        {"--block", "B", "sparse: block of the layout (default: 32)"},
        {"--n-hashes", "R", "reformer: hashing rounds (default: 2)"},
        {"--chunk", "M", "reformer: chunk length (default: 64)"},
        {"--latents", "M", "perceiver-ar: latents (default: min(N, 256))"},
        {"--hierarchy", "SPEC", "hourglass: layers@factor list (default: 2@1,4@3,2@1)"},
        {"--csv", "FILE", "also write the rows as CSV (atomically)"},
        {"--seeds", "", "print the seeds' headline configurations through the formula"},
    },
    0,
    "The formula counts weights, gradients, the activations each technique "
    "keeps and the\n"
    "attention storage: dense L*H*N^2/2 probabilities (the lower triangle), "
    "sparse the layout's\n"
    "entries, LSH N*2m per round and head; recompute keeps one input per layer "
    "plus one block\n"
    "(with its attention probabilities; recompute-attention: without);\n"
    "reversible keeps no per-layer term. ratio = measured / formula."};

// "1024,4096" -> {1024, 4096}, each in [lo, hi].
Expected<std::vector<int64_t>> integer_list(const Args& a, const std::string& flag, int64_t lo,
                                            int64_t hi) {
  auto text = a.required(flag);
  if (!text) return text.status();
  std::vector<int64_t> out;
  size_t start = 0;
  while (start <= text->size()) {
    const size_t comma = std::min(text->find(',', start), text->size());
    const std::string item = text->substr(start, comma - start);
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < lo || v > hi)
      return invalid_argument(flag + " must be a comma-separated list of integers in " +
                              std::to_string(lo) + ".." + std::to_string(hi) + ", got '" + *text +
                              "'");
    out.push_back(v);
    start = comma + 1;
  }
  return out;
}

std::string duration_text(double s) {
  char buf[32];
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  else
    std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600,
                  static_cast<int>(s) / 60 % 60);
  return buf;
}

// Bad input stays bad input (exit 2); anything else is a runtime failure (exit
// 1).
Status as_input_error(const Status& st) {
  if (st.code() == StatusCode::kNotFound) return invalid_argument(st.message());
  return st;
}

}  // namespace

Status cmd_train(const Argv& argv, const Context& ctx) {
  auto args = Args::parse(kTrainSpec, argv);
  if (!args) return args.status();
  if (args->help()) {
    std::fputs(command_help(kTrainSpec).c_str(), stdout);
    return Status::ok();
  }
  auto model_path = args->required("--model");
  if (!model_path) return model_path.status();
  auto data_path = args->required("--data");
  if (!data_path) return data_path.status();
  auto out = args->required("--out");
  if (!out) return out.status();
  TrainOptions opt;
  auto technique = mem_technique_from_name(args->text("--technique", "stored"));
  if (!technique) return invalid_argument("--technique: " + technique.status().message());
  train_apply_technique(opt, *technique);
  for (const TrainOptionField& f : train_option_fields()) {
    if (!f.flag) continue;
    const std::string flag = f.flag;
    if (flag == "--steps" || flag == "--warmup") continue;  // below: required, and steps-relative
    if (f.integer()) {
      auto v = args->integer(flag, static_cast<int64_t>(f.get(opt)), static_cast<int64_t>(f.lo),
                             static_cast<int64_t>(f.hi));
      if (!v) return v.status();
      f.set(&opt, static_cast<double>(*v));
    } else {
      auto v = args->number(flag, f.get(opt), f.lo, f.hi);
      if (!v) return v.status();
      f.set(&opt, *v);
    }
  }
  auto steps = args->required_integer("--steps", 1, int64_t{1} << 40);
  if (!steps) return steps.status();
  opt.steps = *steps;
  auto warmup =
      args->integer("--warmup", std::min<int64_t>(opt.warmup, opt.steps / 10), 0, int64_t{1} << 40);
  if (!warmup) return warmup.status();
  opt.warmup = *warmup;
  if (opt.stop_at > opt.steps)
    return invalid_argument("--stop-at " + std::to_string(opt.stop_at) +
                            " is past the schedule's " + std::to_string(opt.steps) +
                            " steps (--steps)");
  DataOptions dopt;
  auto heldout = args->number("--heldout", dopt.heldout_share, 0.0, 0.9);
  if (!heldout) return heldout.status();
  dopt.heldout_share = *heldout;
  dopt.split_seed = opt.seed;
  dopt.crop = args->has("--crop");
  dopt.image_decoder = image_dataset_decode;
  ATTN_RETURN_IF_ERROR(check_output_folder(*out));

  auto loaded = safetensors_load(*model_path);
  if (!loaded)
    return loaded.status().code() == StatusCode::kInternal
               ? loaded.status()
               : invalid_argument(loaded.status().message());
  const ModelConfig cfg = loaded->cfg;
  auto data = dataset_load(*data_path, cfg.modality, dopt);
  if (!data) return as_input_error(data.status());
  auto trainer = Trainer::create(cfg, loaded->weights, opt);
  if (!trainer) return as_input_error(trainer.status());
  loaded->weights.clear();  // the trainer holds its own copies

  std::printf("model: %s (%s %s, %lld parameters)\n", model_path->c_str(), family_name(cfg.family),
              cfg.modality.describe().c_str(), static_cast<long long>(model_param_count(cfg)));
  std::printf("data: %s\n", data->describe.c_str());
  std::printf("examples: %zu training, %zu held out\n", data->train.size(), data->heldout.size());
  if (args->has("--resume")) {
    if (std::filesystem::exists(*out)) {
      ATTN_RETURN_IF_ERROR(as_input_error((*trainer)->resume(*out)));
      const TrainOptions& o = (*trainer)->options();
      std::printf(
          "resumed from %s at step %lld (batch %d, lr %g, warm-up "
          "%lld, seed %llu from the "
          "checkpoint)\n",
          out->c_str(), static_cast<long long>((*trainer)->step_count()), o.batch, o.lr,
          static_cast<long long>(o.warmup), static_cast<unsigned long long>(o.seed));
    } else {
      std::printf("no checkpoint at %s yet: starting from %s\n", out->c_str(), model_path->c_str());
    }
  }
  std::printf("training: %lld steps, batch %d, lr %g, technique %s\n",
              static_cast<long long>(opt.steps), (*trainer)->options().batch,
              (*trainer)->options().lr, mem_technique_name(*technique));
  std::fflush(stdout);

  const int64_t first_step = (*trainer)->step_count();
  const int64_t step_window = (*trainer)->options().window;  // restored by --resume
  const int64_t tokens_per_step =
      (*trainer)->options().batch *
      (step_window > 0 ? std::min(step_window, cfg.seq_len()) : cfg.seq_len());
  const int64_t interval = std::clamp<int64_t>(opt.steps / 20, 1, 100);
  bool bar_open = false;
  auto close_bar = [&] {
    if (bar_open) std::fputc('\n', stderr);
    bar_open = false;
  };
  auto progress = [&](const TrainProgress& p) {
    const double per_step =
        p.step > first_step ? p.elapsed_s / static_cast<double>(p.step - first_step) : 0;
    const int64_t end = opt.stop_at > 0 ? opt.stop_at : p.steps;  // of this run
    const double eta = per_step * static_cast<double>(std::max<int64_t>(end - p.step, 0));
    // Throughput since this run began (per-step figures swing with the machine's load).
    const double tokens_per_s = p.elapsed_s > 0
                                    ? static_cast<double>(p.step - first_step) *
                                          static_cast<double>(tokens_per_step) / p.elapsed_s
                                    : p.tokens_per_s;
    if (ctx.progress) {
      std::fprintf(stderr, "\rstep %lld/%lld  loss %.3f bits  lr %.2e  %.0f tokens/s  ETA %s   ",
                   static_cast<long long>(p.step), static_cast<long long>(p.steps), p.loss_bits,
                   p.lr, tokens_per_s, duration_text(eta).c_str());
      bar_open = true;
    } else if (p.step % interval == 0 || p.step == p.steps || p.step == opt.stop_at) {
      std::printf(
          "step %lld/%lld: loss %.4f bits, lr %.3e, grad norm %.3f, %.0f tokens/s, ETA %s\n",
          static_cast<long long>(p.step), static_cast<long long>(p.steps), p.loss_bits, p.lr,
          p.grad_norm, tokens_per_s, duration_text(eta).c_str());
    }
    if (p.heldout_bits >= 0) {
      close_bar();
      std::printf("step %lld: held-out %.4f bits/dim\n", static_cast<long long>(p.step),
                  p.heldout_bits);
    }
    std::fflush(stdout);
  };
  Status st = (*trainer)->run(*data, *out, progress, ctx.cancel);
  close_bar();
  if (!st) return st;
  const int64_t done = (*trainer)->step_count();
  std::printf("wrote %s (and %s.train) at step %lld\n", out->c_str(), out->c_str(),
              static_cast<long long>(done));
  if (done < opt.steps)
    std::printf("stopped at step %lld of %lld (--stop-at): continue with --resume\n",
                static_cast<long long>(done), static_cast<long long>(opt.steps));
  return Status::ok();
}

Status cmd_memory(const Argv& argv, const Context& ctx) {
  auto args = Args::parse(kMemorySpec, argv);
  if (!args) return args.status();
  if (args->help()) {
    std::fputs(command_help(kMemorySpec).c_str(), stdout);
    return Status::ok();
  }
  if (args->has("--seeds")) {
    std::printf("%-82s %-11s %12s %12s\n", "seed configuration", "technique", "formula",
                "published");
    for (const MemorySeedFigure& f : memory_seed_figures())
      std::printf("%-82s %-11s %9.1f GB %9.1f GB\n", f.what.c_str(), f.technique.c_str(),
                  f.formula_bytes / 1e9, f.published_bytes / 1e9);
    if (!args->has("--family")) return Status::ok();
  }
  auto family_text = args->required("--family");
  if (!family_text) return family_text.status();
  auto family = family_from_name(*family_text);
  if (!family) return family.status();
  ModelConfig base;
  base.family = *family;
  constexpr int64_t kIntMax = 2147483647;
  auto lengths = integer_list(*args, "--lengths", 1, 2097152);
  if (!lengths) return lengths.status();
  auto layer_counts = integer_list(*args, "--layers", 0, 512);
  if (!layer_counts) return layer_counts.status();
  std::vector<MemTechnique> techniques;
  {
    const std::string list = args->text("--technique", "stored");
    size_t start = 0;
    while (start <= list.size()) {
      const size_t comma = std::min(list.find(',', start), list.size());
      auto t = mem_technique_from_name(list.substr(start, comma - start));
      if (!t) return invalid_argument("--technique: " + t.status().message());
      techniques.push_back(*t);
      start = comma + 1;
    }
  }
  auto dim = args->integer("--dim", 128, 1, 8192);
  if (!dim) return dim.status();
  base.dim = static_cast<int>(*dim);
  auto heads = args->integer("--heads", 4, 1, 256);
  if (!heads) return heads.status();
  base.heads = static_cast<int>(*heads);
  auto ff = args->integer("--ff-dim", 0, 1, 65536);
  if (!ff) return ff.status();
  base.ff_dim = static_cast<int>(*ff);
  auto seed = args->integer("--seed", 1, 0, INT64_MAX);
  if (!seed) return seed.status();
  base.seed = static_cast<uint64_t>(*seed);
  const std::string pattern = args->text("--pattern", "strided");
  if (pattern != "strided" && pattern != "fixed")
    return invalid_argument("--pattern must be strided or fixed, got '" + pattern + "'");
  base.sparse.pattern = pattern == "fixed" ? SparsePattern::kFixed : SparsePattern::kStrided;
  auto stride = args->integer("--stride", 0, 1, kIntMax);
  if (!stride) return stride.status();
  base.sparse.stride = static_cast<int>(*stride);
  auto block = args->integer("--block", base.sparse.block, 1, kIntMax);
  if (!block) return block.status();
  base.sparse.block = static_cast<int>(*block);
  auto hashes = args->integer("--n-hashes", base.lsh.n_hashes, 1, kIntMax);
  if (!hashes) return hashes.status();
  base.lsh.n_hashes = static_cast<int>(*hashes);
  auto chunk = args->integer("--chunk", base.lsh.chunk, 1, kIntMax);
  if (!chunk) return chunk.status();
  base.lsh.chunk = static_cast<int>(*chunk);
  auto latents = args->integer("--latents", 0, 1, kIntMax);
  if (!latents) return latents.status();
  base.perceiver.latents = static_cast<int>(*latents);
  base.hourglass.hierarchy = args->text("--hierarchy", base.hourglass.hierarchy);
  const std::string csv = args->text("--csv", "");
  if (args->has("--csv")) {
    if (csv.empty()) return invalid_argument("--csv needs a file name");
    ATTN_RETURN_IF_ERROR(check_output_folder(csv));
  }

  auto bytes_text = [](double b) { return mem_format_bytes(b); };
  std::printf("%8s %6s %-10s %11s %11s %11s %11s %11s %11s %6s %8s\n", "length", "layers",
              "technique", "peak", "weights", "activations", "attention", "gradients", "formula",
              "ratio", "seconds");
  std::string rows =
      "length,layers,technique,peak_bytes,weights_bytes,activations_bytes,"
      "attention_scratch_bytes,caches_bytes,gradients_bytes,optimizer_bytes,"
      "analytic_bytes,"
      "ratio,seconds\n";
  auto cat = [](const TrainMemoryPoint& p, MemCategory c) {
    return static_cast<double>(p.peak_by_category[static_cast<size_t>(c)]);
  };
  for (int64_t n : *lengths)
    for (int64_t layers : *layer_counts)
      for (MemTechnique t : techniques) {
        auto pt = memory_measure(base, n, static_cast<int>(layers), t, ctx.cancel);
        if (!pt) return as_input_error(pt.status());
        const double peak = static_cast<double>(pt->peak_total);
        const double ratio = pt->analytic_bytes > 0 ? peak / pt->analytic_bytes : 0;
        std::printf("%8lld %6d %-10s %11s %11s %11s %11s %11s %11s %6.2f %8.3f\n",
                    static_cast<long long>(n), pt->layers, mem_technique_name(t),
                    bytes_text(peak).c_str(), bytes_text(cat(*pt, MemCategory::kWeights)).c_str(),
                    bytes_text(cat(*pt, MemCategory::kActivations)).c_str(),
                    bytes_text(cat(*pt, MemCategory::kAttentionScratch)).c_str(),
                    bytes_text(cat(*pt, MemCategory::kGradients)).c_str(),
                    bytes_text(pt->analytic_bytes).c_str(), ratio, pt->seconds);
        std::fflush(stdout);
        char line[512];
        std::snprintf(line, sizeof line,
                      "%lld,%d,%s,%zu,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.4f,%.4f\n",
                      static_cast<long long>(n), pt->layers, mem_technique_name(t), pt->peak_total,
                      cat(*pt, MemCategory::kWeights), cat(*pt, MemCategory::kActivations),
                      cat(*pt, MemCategory::kAttentionScratch), cat(*pt, MemCategory::kCaches),
                      cat(*pt, MemCategory::kGradients), cat(*pt, MemCategory::kOptimizer),
                      pt->analytic_bytes, ratio, pt->seconds);
        rows += line;
      }
  if (!csv.empty()) {
    ATTN_RETURN_IF_ERROR(atomic_write_file(csv, std::vector<uint8_t>(rows.begin(), rows.end())));
    std::printf("wrote %s\n", csv.c_str());
  }
  return Status::ok();
}

}  // namespace cli
