// attnscope-cli bench: attention kernels side by side (bench attention) and generation speed
// of every family on a 32x32x3 image (bench generate), as a table or as JSON.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "args.h"
#include "attnscope/bench.h"
#include "attnscope/generate.h"
#include "commands.h"

namespace cli {

using namespace attnscope;

namespace {

constexpr int kBenchHeads = 4;
constexpr int kBenchHeadDim = 64;

const CommandSpec kBenchAttentionSpec = {
    "bench attention",
    "bench attention [--json]",
    "Times the CPU attention forwards (dense, sparse-strided l = 128, sparse-fixed l = 128 c = "
    "32,\n"
    "LSH 2 hashes chunk 64) on random q, k, v with 4 heads of width 64 at N = 1024, 4096, 16384:\n"
    "milliseconds (best of repeated runs), GFLOP/s over the entries each kind evaluates, density\n"
    "(evaluated share of the causal pairs) and speedup over dense at the same N.",
    {{"--json", "", "print a JSON array of rows instead of a table"}},
    0,
    ""};

const CommandSpec kBenchGenerateSpec = {
    "bench generate",
    "bench generate [--json]",
    "Generates one 32x32x3 image (3072 tokens) with a 4-layer, width-128, 4-head model of each\n"
    "family (random weights, seed 1; hourglass 1@1,2@3,1@1; sampling seed 1) and reports\n"
    "tokens per second.",
    {{"--json", "", "print a JSON array of rows instead of a table"}},
    0,
    ""};

Status bench_attention(const Argv& argv, const Context& ctx) {
  auto args = Args::parse(kBenchAttentionSpec, argv);
  if (!args) return args.status();
  if (args->help()) {
    std::fputs(command_help(kBenchAttentionSpec).c_str(), stdout);
    return Status::ok();
  }
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

Status bench_generate(const Argv& argv, const Context& ctx) {
  auto args = Args::parse(kBenchGenerateSpec, argv);
  if (!args) return args.status();
  if (args->help()) {
    std::fputs(command_help(kBenchGenerateSpec).c_str(), stdout);
    return Status::ok();
  }
  const bool json = args->has("--json");
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  if (!json) std::printf("%-14s %8s %10s %10s\n", "family", "tokens", "seconds", "tokens/s");
  const Family families[] = {Family::kDense, Family::kSparse, Family::kReformer,
                             Family::kPerceiverAR, Family::kHourglass};
  for (Family f : families) {
    ModelConfig cfg;
    cfg.family = f;
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
                     {"tokens", tokens->size()},
                     {"seconds", secs},
                     {"tokens_per_s", rate}});
    else
      std::printf("%-14s %8zu %10.2f %10.1f\n", family_name(f), tokens->size(), secs, rate);
    std::fflush(stdout);
  }
  if (json) std::printf("%s\n", out.dump(2).c_str());
  return Status::ok();
}

}  // namespace

Status cmd_bench(const Argv& argv, const Context& ctx) {
  const std::string what = argv.empty() ? "" : argv[0];
  const Argv rest(argv.begin() + (argv.empty() ? 0 : 1), argv.end());
  if (what == "attention") return bench_attention(rest, ctx);
  if (what == "generate") return bench_generate(rest, ctx);
  if (what == "--help" || what == "-h") {
    std::fputs(
        "usage: attnscope-cli bench attention|generate [--json]\n\n"
        "attnscope-cli bench attention --help and bench generate --help describe each.\n",
        stdout);
    return Status::ok();
  }
  return invalid_argument(what.empty() ? "bench needs 'attention' or 'generate'"
                                       : "unknown benchmark '" + what +
                                             "' (expected 'attention' or 'generate')");
}

}  // namespace cli
