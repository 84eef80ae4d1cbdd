// attnscope-cli bench: attention kernels side by side (bench attention), generation speed
// of every family on a 32x32x3 image (bench generate) and training throughput of one
// configuration (bench train), as a table or as JSON.
#include <omp.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "args.h"
#include "attnscope/bench.h"
#include "attnscope/cuda.h"
#include "attnscope/generate.h"
#include "attnscope/safetensors.h"
#include "attnscope/train.h"
#include "commands.h"
#include "image_dataset.h"
#include "media.h"

namespace cli {

using namespace attnscope;

namespace {

constexpr int kBenchHeads = 4;
constexpr int kBenchHeadDim = 64;

const CommandSpec kBenchAttentionSpec = {
    "bench attention",
    "bench attention [--device cpu|cuda] [--precision f32|tf32|bf16] [--json]",
    "Times the CPU attention forwards (dense, sparse-strided l = 128, sparse-fixed l = 128 c = "
    "32,\n"
    "LSH 2 hashes chunk 64) on random q, k, v with 4 heads of width 64 at N = 1024, 4096, 16384:\n"
    "milliseconds (best of repeated runs), GFLOP/s over the entries each kind evaluates, density\n"
    "(evaluated share of the causal pairs) and speedup over dense at the same N.\n"
    "With --device cuda: the fused dense causal forward at N = 1k .. 64k for head widths 64 and\n"
    "128 (TFLOP/s counted as 4 N^2 H d / 2), block-sparse strided at the same N with its\n"
    "density, and a bf16 GEMM rate measured in the same run as the hardware anchor.",
    {{"--device", "D", "cpu or cuda (default: cpu)"},
     {"--precision", "P", "cuda only: f32, tf32 or bf16 (default: bf16)"},
     {"--json", "", "print a JSON array of rows instead of a table"}},
    0,
    "--device cuda needs a build with the CUDA backend and a device; without one it stops with\n"
    "exit code 1 and the reason."};

// bench attention --device cuda: the device benchmark's rows as a table or JSON.
Status bench_attention_cuda(const Args& args) {
  auto precision = cuda_precision_from_name(args.text("--precision", "bf16"));
  if (!precision) return invalid_argument("--precision: " + precision.status().message());
  std::string info;
  Status avail = cuda_available(&info);
  if (!avail) return avail;
  std::printf("device: %s\n", info.c_str());
  auto rows = cuda_bench_attention({1024, 2048, 4096, 8192, 16384, 32768, 65536}, {64, 128}, 2048,
                                   *precision);
  if (!rows) return rows.status();
  if (args.has("--json")) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const CudaBenchRow& r : *rows)
      out.push_back({{"what", r.what},
                     {"n", r.n},
                     {"heads", r.heads},
                     {"d", r.d},
                     {"ms", r.ms},
                     {"tflops", r.tflops},
                     {"density", r.density}});
    std::printf("%s\n", out.dump(2).c_str());
    return Status::ok();
  }
  std::printf("%-24s %7s %6s %5s %11s %9s %9s\n", "kind", "N", "heads", "d", "ms", "TFLOP/s",
              "density");
  for (const CudaBenchRow& r : *rows)
    std::printf("%-24s %7lld %6d %5d %11.3f %9.1f %9.4f\n", r.what.c_str(),
                static_cast<long long>(r.n), r.heads, r.d, r.ms, r.tflops, r.density);
  return Status::ok();
}

const CommandSpec kBenchGenerateSpec = {
    "bench generate",
    "bench generate [--device cpu|cuda] [--precision f32|tf32|bf16] [--json]",
    "cpu (default): generates one 32x32x3 image (3072 tokens) with a 4-layer, width-128, 4-head\n"
    "model of each family (random weights, seed 1; hourglass 1@1,2@3,1@1; perceiver-ar 256\n"
    "latents, decoded exactly and with --latent-cache cached; sampling seed 1) and reports tokens\n"
    "per second.\n"
    "cuda: generates whole 64x64x3 images (12,288 tokens, batch 1) with 12-layer, width-512,\n"
    "8-head models (dense, sparse strided) on the device, after one untimed image, and reports\n"
    "tokens per second and milliseconds per image (the median of 3). Perceiver AR, Hourglass\n"
    "and the Reformer are left out: their decode runs on the cpu.",
    {{"--device", "D", "cpu or cuda (default: cpu)"},
     {"--precision", "P", "cuda only: f32, tf32 or bf16 (default: bf16)"},
     {"--json", "", "print a JSON array of rows instead of a table"}},
    0,
    "--device cuda needs a build with the CUDA backend and a device; without one it stops with\n"
    "exit code 1 and the reason."};

const CommandSpec kBenchTrainSpec = {
    "bench train",
    "bench train [--family F] [--modality M] [--layers L --dim D --heads H] [--batch B]\n"
    "    [--steps S] [--warmup-steps W] [--threads T] [--technique stored|recompute|reversible]\n"
    "    [--data PATH] [--init-out FILE] [--batch-out FILE] [--json]",
    "Trains a freshly initialised model (seed 1, random logit layer) for W untimed and S timed\n"
    "AdamW steps of B sequences and reports the steady-state training throughput: tokens/s\n"
    "and ms/step from the median timed step, the memory tracker's peak and the process's peak\n"
    "resident size, and the first step's loss. The last line, BENCH_TRAIN {json}, is for\n"
    "scripts (tests/bench/run_train_bench.sh compares it with PyTorch).",
    {{"--family", "NAME", "dense, sparse, reformer, perceiver-ar or hourglass (default: dense)"},
     {"--modality", "M", "image:WxHxC, audio:RATE:SECONDS or text:LENGTH (default: image:32x32x3)"},
     {"--layers", "L", "attention blocks (default: 4)"},
     {"--dim", "D", "model width (default: 128)"},
     {"--heads", "H", "attention heads (default: 4)"},
     {"--batch", "B", "sequences per step (default: 4)"},
     {"--steps", "S", "timed steps (default: 10)"},
     {"--warmup-steps", "W", "untimed steps before them (default: 2)"},
     {"--threads", "T", "CPU threads, 0 = all cores (default: 0)"},
     {"--technique", "T", "stored, recompute or reversible (default: stored)"},
     {"--data", "PATH", "train on this data set (dataset_load) instead of random bytes"},
     {"--init-out", "FILE", "write the initial weights as a model file (for train_torch.py)"},
     {"--batch-out", "FILE", "write every step's batch, in order, as B*N raw bytes each"},
     {"--json", "", "print the JSON record only"}},
    0,
    "Random bytes are uniform (seed 1); with them the loss stays near 8 bits. Timing covers\n"
    "Trainer::step only (forward, backward, clipping and the AdamW update)."};

Status bench_attention(const Argv& argv, const Context& ctx) {
  auto args = Args::parse(kBenchAttentionSpec, argv);
  if (!args) return args.status();
  if (args->help()) {
    std::fputs(command_help(kBenchAttentionSpec).c_str(), stdout);
    return Status::ok();
  }
  const std::string device = args->text("--device", "cpu");
  if (device == "cuda") return bench_attention_cuda(*args);
  if (device != "cpu")
    return invalid_argument("--device must be cpu or cuda, got '" + device + "'");
  if (args->has("--precision")) return invalid_argument("--precision applies to --device cuda");
  const auto rows =
      bench_attention_cpu({1024, 4096, 16384}, kBenchHeads, kBenchHeadDim, ctx.cancel);
  if (args->has("--json")) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const AttnBenchRow& r : rows)
      out.push_back({{"kind", r.kind},
                     {"n", r.n},
                     {"ms", r.ms},
                     {"gflops_evaluated", r.gflops_evaluated},
                     {"density", r.density},
                     {"speedup_vs_dense", r.speedup_vs_dense}});
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    std::printf("%-16s %7s %11s %10s %9s %9s\n", "kind", "N", "ms", "GFLOP/s", "density",
                "speedup");
    for (const AttnBenchRow& r : rows)
      std::printf("%-16s %7lld %11.3f %10.2f %9.4f %8.2fx\n", r.kind.c_str(),
                  static_cast<long long>(r.n), r.ms, r.gflops_evaluated, r.density,
                  r.speedup_vs_dense);
  }
  if (ctx.cancel && ctx.cancel->load()) return cancelled("benchmark cancelled");
  return Status::ok();
}

double median_of(std::vector<double> v);

// bench generate --device cuda: whole 64x64x3 images from 12-layer, width-512 device models.
Status bench_generate_cuda(const Args& args, const Context& ctx) {
  auto precision = cuda_precision_from_name(args.text("--precision", "bf16"));
  if (!precision) return invalid_argument("--precision: " + precision.status().message());
  std::string info;
  Status avail = cuda_available(&info);
  if (!avail) return avail;
  const bool json = args.has("--json");
  if (!json) {
    std::printf("device: %s, %s\n", info.c_str(), cuda_precision_name(*precision));
    std::printf("%-14s %8s %12s %12s %12s\n", "family", "tokens", "ms/image", "best ms",
                "tokens/s");
  }
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  // The families the device decodes (dense and sparse: the graph on one row with device caches).
  const Family families[] = {Family::kDense, Family::kSparse};
  for (Family f : families) {
    ModelConfig cfg;
    cfg.family = f;
    cfg.modality = *modality_parse("image:64x64x3");
    cfg.layers = 12;
    cfg.dim = 512;
    cfg.heads = 8;
    cfg.seed = 1;
    ATTN_RETURN_IF_ERROR(config_resolve(cfg));
    ATTN_RETURN_IF_ERROR(config_validate(cfg));
    auto model = model_create_cuda(cfg, model_init_weights(cfg, InitOptions{1, false}), *precision);
    if (!model) return model.status();
    GenerateRequest req;
    req.sampling.seed = 1;
    req.cancel = ctx.cancel;
    std::vector<double> ms;
    size_t tokens = 0;
    for (int run = 0; run < 4; ++run) {  // run 0: warm-up (allocations, plans)
      const auto start = std::chrono::steady_clock::now();
      auto generated = generate(**model, req);
      if (!generated) return generated.status();
      const double t =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count();
      tokens = generated->size();
      if (run > 0) ms.push_back(t);
    }
    const double median = median_of(ms);
    const double best = *std::min_element(ms.begin(), ms.end());
    const double rate = static_cast<double>(tokens) / (median / 1000.0);
    if (json)
      out.push_back({{"family", family_name(f)},
                     {"tokens", tokens},
                     {"ms_per_image", median},
                     {"best_ms", best},
                     {"tokens_per_s", rate},
                     {"device", info},
                     {"precision", cuda_precision_name(*precision)}});
    else
      std::printf("%-14s %8zu %12.1f %12.1f %12.0f\n", family_name(f), tokens, median, best, rate);
    std::fflush(stdout);
  }
  if (json) std::printf("%s\n", out.dump(2).c_str());
  return Status::ok();
}

Status bench_generate(const Argv& argv, const Context& ctx) {
  auto args = Args::parse(kBenchGenerateSpec, argv);
  if (!args) return args.status();
  if (args->help()) {
    std::fputs(command_help(kBenchGenerateSpec).c_str(), stdout);
    return Status::ok();
  }
  const std::string device = args->text("--device", "cpu");
  if (device == "cuda") return bench_generate_cuda(*args, ctx);
  if (device != "cpu")
    return invalid_argument("--device must be cpu or cuda, got '" + device + "'");
  if (args->has("--precision")) return invalid_argument("--precision applies to --device cuda");
  const bool json = args->has("--json");
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  if (!json) std::printf("%-19s %8s %10s %10s\n", "family", "tokens", "seconds", "tokens/s");
  // Perceiver AR twice: its exact decode and the cached (most_recent_only) one.
  const std::pair<Family, PerceiverDecode> rows[] = {
      {Family::kDense, PerceiverDecode::kExact},
      {Family::kSparse, PerceiverDecode::kExact},
      {Family::kReformer, PerceiverDecode::kExact},
      {Family::kPerceiverAR, PerceiverDecode::kExact},
      {Family::kPerceiverAR, PerceiverDecode::kCached},
      {Family::kHourglass, PerceiverDecode::kExact}};
  for (const auto& [f, decode] : rows) {
    const std::string name =
        std::string(family_name(f)) + (decode == PerceiverDecode::kCached ? " cached" : "");
    ModelConfig cfg;
    cfg.family = f;
    cfg.perceiver.decode = decode;
    cfg.modality = *modality_parse("image:32x32x3");
    cfg.layers = 4;
    cfg.dim = 128;
    cfg.heads = 4;
    cfg.seed = 1;
    cfg.hourglass.hierarchy = "1@1,2@3,1@1";
    ATTN_RETURN_IF_ERROR(config_resolve(cfg));
    auto model = model_create(cfg, model_init_weights(cfg, InitOptions{1, false}));
    if (!model)
      return internal_error(std::string(family_name(f)) + ": " + model.status().message());
    if (!*model)
      return unsupported(std::string("the ") + family_name(f) +
                         " family is not available in this build");
    GenerateRequest req;
    req.sampling.seed = 1;
    req.cancel = ctx.cancel;
    const auto start = std::chrono::steady_clock::now();
    auto tokens = generate(**model, req);
    if (!tokens) return tokens.status();
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double rate = static_cast<double>(tokens->size()) / secs;
    if (json)
      out.push_back({{"family", family_name(f)},
                     {"decode", perceiver_decode_name(decode)},
                     {"tokens", tokens->size()},
                     {"seconds", secs},
                     {"tokens_per_s", rate}});
    else
      std::printf("%-19s %8zu %10.2f %10.1f\n", name.c_str(), tokens->size(), secs, rate);
    std::fflush(stdout);
  }
  if (json) std::printf("%s\n", out.dump(2).c_str());
  return Status::ok();
}

// CPU seconds of the whole process (all threads): on a shared machine the wall clock also
// counts the time other processes held the cores.
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// The median: robust to the odd slow step on a shared machine.
double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t m = v.size();
  return m % 2 ? v[m / 2] : 0.5 * (v[m / 2 - 1] + v[m / 2]);
}

Status bench_train(const Argv& argv, const Context& ctx) {
  auto args = Args::parse(kBenchTrainSpec, argv);
  if (!args) return args.status();
  if (args->help()) {
    std::fputs(command_help(kBenchTrainSpec).c_str(), stdout);
    return Status::ok();
  }
  constexpr int64_t kIntMax = 2147483647;
  ModelConfig cfg;
  auto family = family_from_name(args->text("--family", "dense"));
  if (!family) return family.status();
  cfg.family = *family;
  auto modality = modality_parse(args->text("--modality", "image:32x32x3"));
  if (!modality) return modality.status();
  cfg.modality = *modality;
  auto layers = args->integer("--layers", 4, 1, kIntMax);
  auto dim = args->integer("--dim", 128, 1, kIntMax);
  auto heads = args->integer("--heads", 4, 1, kIntMax);
  auto batch = args->integer("--batch", 4, 1, 1 << 20);
  auto steps = args->integer("--steps", 10, 1, kIntMax);
  auto warmup = args->integer("--warmup-steps", 2, 0, kIntMax);
  auto threads = args->integer("--threads", 0, 0, 4096);
  for (const auto* e : {&layers, &dim, &heads, &batch, &steps, &warmup, &threads})
    if (!*e) return e->status();
  auto technique = mem_technique_from_name(args->text("--technique", "stored"));
  if (!technique) return technique.status();
  cfg.layers = static_cast<int>(*layers);
  cfg.dim = static_cast<int>(*dim);
  cfg.heads = static_cast<int>(*heads);
  cfg.seed = 1;
  ATTN_RETURN_IF_ERROR(config_resolve(cfg));
  ATTN_RETURN_IF_ERROR(config_validate(cfg));
  const int64_t n = cfg.seq_len();
  const int nthreads = *threads > 0 ? static_cast<int>(*threads) : omp_get_num_procs();
  omp_set_num_threads(nthreads);

  // A random logit layer, so that the first loss depends on every weight (the paper's zero
  // logit layer would give exactly 8 bits whatever the rest).
  const WeightMap init = model_init_weights(cfg, InitOptions{1, false});
  if (args->has("--init-out"))
    ATTN_RETURN_IF_ERROR(safetensors_save(args->text("--init-out", ""), cfg, init));

  TrainOptions opt;
  opt.batch = static_cast<int>(*batch);
  opt.steps = *warmup + *steps;
  opt.threads = nthreads;
  train_apply_technique(opt, *technique);
  auto trainer = Trainer::create(cfg, init, opt);
  if (!trainer) return trainer.status();

  // The batches: examples of --data in turn, or uniform random bytes.
  Dataset data;
  if (args->has("--data")) {
    DataOptions dopt;
    dopt.image_decoder = image_dataset_decode;  // as attnscope-cli train reads images
    auto loaded = dataset_load(args->text("--data", ""), cfg.modality, dopt);
    if (!loaded) return loaded.status();
    data = std::move(*loaded);
  }
  std::mt19937_64 rng(1);
  std::vector<std::vector<uint8_t>> seqs(static_cast<size_t>(opt.batch),
                                         std::vector<uint8_t>(static_cast<size_t>(n)));
  size_t next_example = 0;
  auto fill_batch = [&] {
    for (auto& s : seqs) {
      if (!data.train.empty()) {
        s = data.train[next_example++ % data.train.size()];
      } else {
        for (auto& b : s) b = static_cast<uint8_t>(rng() & 0xff);
      }
    }
  };

  std::ofstream batch_out;
  if (args->has("--batch-out")) {
    batch_out.open(args->text("--batch-out", ""), std::ios::binary | std::ios::trunc);
    if (!batch_out) return invalid_argument("cannot write " + args->text("--batch-out", ""));
  }
  std::vector<double> times, cpu_times, losses;
  const int64_t total = opt.steps;
  for (int64_t i = 0; i < total; ++i) {
    fill_batch();
    if (batch_out.is_open()) {
      for (const auto& s : seqs)
        batch_out.write(reinterpret_cast<const char*>(s.data()), static_cast<std::streamsize>(n));
      if (!batch_out) return invalid_argument("cannot write " + args->text("--batch-out", ""));
    }
    std::vector<const std::vector<uint8_t>*> ptrs;
    for (const auto& s : seqs) ptrs.push_back(&s);
    if (i == *warmup) MemTracker::instance().reset_peaks();
    const double cpu_start = process_cpu_seconds();
    const auto start = std::chrono::steady_clock::now();
    auto loss = (*trainer)->step(ptrs, ctx.cancel);
    if (!loss) return loss.status();
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    losses.push_back(*loss);
    if (i >= *warmup) {
      times.push_back(secs);
      cpu_times.push_back(process_cpu_seconds() - cpu_start);
    }
    if (ctx.progress)
      std::fprintf(stderr, "step %lld/%lld: loss %.4f bits, %.0f ms\n",
                   static_cast<long long>(i + 1), static_cast<long long>(total), *loss, secs * 1e3);
  }
  const double median = median_of(times);
  const double cpu_median = median_of(cpu_times);
  const double tokens_per_s = static_cast<double>(opt.batch * n) / median;
  const size_t peak_tracked = MemTracker::instance().snapshot().total_peak;
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  const double peak_rss_mib = static_cast<double>(ru.ru_maxrss) / 1024.0;

  nlohmann::ordered_json rec = {
      {"impl", "attnscope"},
      {"threads", nthreads},
      {"family", family_name(cfg.family)},
      {"technique", mem_technique_name(*technique)},
      {"modality", cfg.modality.describe()},
      {"layers", cfg.layers},
      {"dim", cfg.dim},
      {"heads", cfg.heads},
      {"batch", opt.batch},
      {"seq_len", n},
      {"steps", static_cast<int64_t>(times.size())},
      {"ms_per_step", median * 1e3},
      {"cpu_ms_per_step", cpu_median * 1e3},
      {"tokens_per_s", tokens_per_s},
      {"peak_tracked_mib", static_cast<double>(peak_tracked) / (1024.0 * 1024.0)},
      {"peak_rss_mib", peak_rss_mib},
      {"first_loss_bits", losses.front()},
      {"losses_bits",
       std::vector<double>(losses.begin(), losses.begin() + std::min<size_t>(3, losses.size()))}};
  if (!args->has("--json")) {
    std::printf("%-10s %-14s %6s %4s %5s %5s %-10s %7s %10s %11s %10s %12s %10s %10s\n", "family",
                "modality", "layers", "dim", "heads", "batch", "technique", "threads", "ms/step",
                "cpu ms/step", "tokens/s", "peak tracked", "peak RSS", "first loss");
    std::printf("%-10s %-14s %6d %4d %5d %5d %-10s %7d %10.1f %11.1f %10.1f %12s %10s %10.4f\n",
                family_name(cfg.family), cfg.modality.describe().c_str(), cfg.layers, cfg.dim,
                cfg.heads, opt.batch, mem_technique_name(*technique), nthreads, median * 1e3,
                cpu_median * 1e3, tokens_per_s,
                mem_format_bytes(static_cast<double>(peak_tracked)).c_str(),
                mem_format_bytes(peak_rss_mib * 1024.0 * 1024.0).c_str(), losses.front());
    std::printf("BENCH_TRAIN %s\n", rec.dump().c_str());
  } else {
    std::printf("%s\n", rec.dump(2).c_str());
  }
  return Status::ok();
}

}  // namespace

Status cmd_bench(const Argv& argv, const Context& ctx) {
  const std::string what = argv.empty() ? "" : argv[0];
  const Argv rest(argv.begin() + (argv.empty() ? 0 : 1), argv.end());
  if (what == "attention") return bench_attention(rest, ctx);
  if (what == "generate") return bench_generate(rest, ctx);
  if (what == "train") return bench_train(rest, ctx);
  if (what == "--help" || what == "-h") {
    std::fputs(
        "usage: attnscope-cli bench attention|generate|train [--json]\n\n"
        "attnscope-cli bench attention --help, bench generate --help and bench train --help\n"
        "describe each.\n",
        stdout);
    return Status::ok();
  }
  return invalid_argument(what.empty() ? "bench needs 'attention', 'generate' or 'train'"
                                       : "unknown benchmark '" + what +
                                             "' (expected 'attention', 'generate' or 'train')");
}

}  // namespace cli
