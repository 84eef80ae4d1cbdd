// The attention benchmark: times each CPU attention kind at several lengths in one process,
// so that the ratios hold on a shared host.
#include <algorithm>
#include <chrono>
#include <functional>
#include <string>
#include <utility>

#include "attnscope/attention.h"
#include "attnscope/bench.h"
#include "core/rng.h"

namespace attnscope {
namespace {

constexpr double kSingleRunSeconds = 0.25;
constexpr int kMaxRuns = 20;

std::vector<float> random_floats(uint64_t seed, int64_t count) {
  Rng rng(seed);
  std::vector<float> x(static_cast<size_t>(count));
  for (auto& e : x) e = static_cast<float>(rng.normal());
  return x;
}

// Best wall time in seconds of run(stats); the first run is a warm-up unless it alone takes
// kSingleRunSeconds. Returns a negative time when run fails; entries gets one run's count.
double time_kind(const std::function<Status(AttnStats*)>& run, int64_t& entries) {
  using clock = std::chrono::steady_clock;
  auto once = [&]() -> double {
    AttnStats stats;
    const auto t0 = clock::now();
    if (!run(&stats)) return -1.0;
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    entries = stats.score_entries.load();
    return s;
  };
  const double first = once();
  if (first < 0.0 || first >= kSingleRunSeconds) return first;
  double best = -1.0, total = 0.0;
  for (int r = 0; r < kMaxRuns && (r < 2 || total < kSingleRunSeconds); ++r) {
    const double s = once();
    if (s < 0.0) return s;
    best = best < 0.0 ? s : std::min(best, s);
    total += s;
  }
  return best;
}

}  // namespace

std::vector<AttnBenchRow> bench_attention_cpu(const std::vector<int64_t>& lengths, int heads, int d,
                                              const std::atomic<bool>* cancel) {
  std::vector<AttnBenchRow> rows;
  auto cancelled = [&] { return cancel && cancel->load(); };
  SparseConfig strided;
  strided.pattern = SparsePattern::kStrided;
  strided.stride = 128;
  strided.block = 32;
  strided.combine = SparseCombine::kMerged;
  SparseConfig fixed = strided;
  fixed.pattern = SparsePattern::kFixed;
  fixed.summary = 32;
  for (const int64_t n : lengths) {
    // q, k, v, out are (heads, n, d); LSH uses q as its shared qk.
    const int64_t count = static_cast<int64_t>(heads) * n * d;
    const auto q = random_floats(derive_seed(17, n, 0), count);
    const auto k = random_floats(derive_seed(17, n, 1), count);
    const auto v = random_floats(derive_seed(17, n, 2), count);
    std::vector<float> out(static_cast<size_t>(count));
    LshSpec lsh;
    lsh.n_hashes = 2;
    lsh.chunk = 64;
    lsh.n_buckets = std::max<int>(2, static_cast<int>((2 * n / lsh.chunk + 1) / 2 * 2));
    const auto rotations =
        attn_lsh_rotations(derive_seed(17, n, 3), 0, lsh.n_hashes, d, lsh.n_buckets);
    const std::pair<const char*, std::function<Status(AttnStats*)>> kinds[] = {
        {"dense",
         [&](AttnStats* st) {
           return attn_dense_forward_cpu(q.data(), k.data(), v.data(), out.data(), heads, n, n, d,
                                         0, st);
         }},
        {"sparse-strided",
         [&](AttnStats* st) {
           return attn_sparse_forward_cpu(q.data(), k.data(), v.data(), out.data(), heads, n, d,
                                          strided, 0, st);
         }},
        {"sparse-fixed",
         [&](AttnStats* st) {
           return attn_sparse_forward_cpu(q.data(), k.data(), v.data(), out.data(), heads, n, d,
                                          fixed, 0, st);
         }},
        {"lsh",
         [&](AttnStats* st) {
           return attn_lsh_forward_cpu(q.data(), v.data(), out.data(), heads, n, d, lsh,
                                       rotations.data(), nullptr, st);
         }},
    };
    const double causal = static_cast<double>(heads) * static_cast<double>(n) * (n + 1) / 2.0;
    double dense_s = 0.0;
    for (const auto& [name, run] : kinds) {
      if (cancelled()) return rows;
      int64_t entries = 0;
      const double s = time_kind(run, entries);
      if (s < 0.0) continue;
      if (std::string(name) == "dense") dense_s = s;
      AttnBenchRow row;
      row.kind = name;
      row.n = n;
      row.ms = s * 1e3;
      row.gflops_evaluated = s > 0.0 ? 4.0 * d * static_cast<double>(entries) / s / 1e9 : 0.0;
      row.density = causal > 0.0 ? static_cast<double>(entries) / causal : 0.0;
      row.speedup_vs_dense = dense_s > 0.0 && s > 0.0 ? dense_s / s : 0.0;
      rows.push_back(row);
    }
  }
  return rows;
}

}  // namespace attnscope
