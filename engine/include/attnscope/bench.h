// The attention benchmark behind `attnscope-cli bench attention`: dense, Sparse Transformer
// (strided, fixed) and Reformer LSH forwards timed side by side in one process on the CPU.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace attnscope {

// One kind at one length. gflops_evaluated counts 4·d flops per evaluated score entry (q·k
// and p·v); density is the evaluated entries over the causal H·N(N+1)/2; speedup_vs_dense
// is the dense time at the same N over this time.
struct AttnBenchRow {
  std::string kind;  // "dense", "sparse-strided", "sparse-fixed", "lsh"
  int64_t n = 0;
  double ms = 0.0;
  double gflops_evaluated = 0.0;
  double density = 0.0;
  double speedup_vs_dense = 0.0;
};

// Random q, k, v of shape (heads, N, d) per N in lengths; kinds in the order above, with
// sparse-strided l = 128 and sparse-fixed l = 128, c = 32 (both merged, block 32) and lsh
// 2 hashes, chunk 64, 2N/64 buckets. Each time is the best of repeated runs (a single run
// when one takes over 0.25 s). Stops early, returning the rows so far, once *cancel is set.
// A kind whose kernel rejects the shape is left out.
std::vector<AttnBenchRow> bench_attention_cpu(const std::vector<int64_t>& lengths, int heads, int d,
                                              const std::atomic<bool>* cancel = nullptr);

}  // namespace attnscope
