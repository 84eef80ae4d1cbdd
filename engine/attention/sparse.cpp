// Sparse Transformer attention on the CPU (Child et al. 2019): the strided and fixed
// factorised patterns, their combination per layer/head, block-sparse execution and decode.
#include <algorithm>
#include <cassert>
#include <map>
#include <string>

#include "attention/blocks.h"
#include "attention/sparse_keys.h"

namespace attnscope {
namespace {

using detail::AttnPass;

// The strided A1 is the released code's local mask: the l positions {i-l+1 .. i}, not the
// paper's l+1 positions {i-l .. i}. With it the union A1 ∪ A2 splits into the disjoint parts
// A1 and {i - k·l : k >= 1}, since i - l lies just outside A1.
//
// Passes of one (pattern, set) at length n, run in order into one online-softmax state;
// their key sets are disjoint, so no (i, j) pair is evaluated twice:
//   strided A1     local window, natural order;
//   strided A2     strided-transposed order (residue groups i mod l made contiguous, as in
//                  openai/sparse_attention's strided_transpose): causal inside each group;
//   strided union  A1, then the transposed pass made strictly causal (i - k·l, k >= 1);
//   fixed A1       own block of l, natural order;
//   fixed A2       keys are the summary columns {j mod l >= l-c} packed in order: row i sees
//                  the prefix of them with j <= i;
//   fixed union    A1, then the packed summary columns of earlier blocks (A2 minus A1).
std::vector<detail::SparsePassRanges> ranges_of(const SparseConfig& cfg, SparseSet set, int64_t n) {
  using detail::SparsePassRanges;
  const int64_t l = cfg.stride;
  std::vector<SparsePassRanges> passes;
  auto natural_pass = [&](auto lo_of) {
    SparsePassRanges p;
    p.lo.resize(static_cast<size_t>(n));
    p.hi.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      p.lo[i] = lo_of(i);
      p.hi[i] = i + 1;
    }
    p.segments.push_back({0, n, 0, n});
    return p;
  };
  if (cfg.pattern == SparsePattern::kStrided) {
    if (set != SparseSet::kA2)
      passes.push_back(natural_pass([&](int64_t i) { return std::max<int64_t>(0, i - l + 1); }));
    if (set != SparseSet::kA1) {
      const int64_t self = set == SparseSet::kA2 ? 1 : 0;  // union: strictly earlier only
      SparsePassRanges p;
      p.qpos.reserve(static_cast<size_t>(n));
      p.lo.reserve(static_cast<size_t>(n));
      p.hi.reserve(static_cast<size_t>(n));
      for (int64_t r = 0; r < std::min(l, n); ++r) {
        const int64_t start = static_cast<int64_t>(p.qpos.size());
        for (int64_t i = r, t = 0; i < n; i += l, ++t) {
          p.qpos.push_back(i);
          p.lo.push_back(start);
          p.hi.push_back(start + t + self);
        }
      }
      p.kpos = p.qpos;
      // One segment per residue group [s, e), its (n - first + l - 1) / l members; blocks
      // aligned at the group's start.
      for (int64_t s = 0; s < n;) {
        const int64_t e = std::min(n, s + (n - p.qpos[s] + l - 1) / l);
        p.segments.push_back({s, e, s, e});
        s = e;
      }
      passes.push_back(std::move(p));
    }
    return passes;
  }
  const int64_t c = cfg.summary;
  if (set != SparseSet::kA2) passes.push_back(natural_pass([&](int64_t i) { return i / l * l; }));
  if (set != SparseSet::kA1) {
    SparsePassRanges p;
    for (int64_t j = 0; j < n; ++j)
      if (j % l >= l - c) p.kpos.push_back(j);
    const int64_t n_summary = static_cast<int64_t>(p.kpos.size());
    p.lo.assign(static_cast<size_t>(n), 0);
    p.hi.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const int64_t earlier = i / l * c;
      p.hi[i] =
          set == SparseSet::kA2 ? earlier + std::max<int64_t>(0, i % l - (l - c) + 1) : earlier;
    }
    p.segments.push_back({0, n, 0, n_summary});
    passes.push_back(std::move(p));
  }
  return passes;
}

std::vector<AttnPass> build_passes(const SparseConfig& cfg, SparseSet set, int64_t n) {
  return detail::sparse_build_passes(cfg, set, n, cfg.block, cfg.block);
}

// The pattern A(i) of one set as a list of key positions, in sparse_key_at's order.
void pattern_keys(const SparseConfig& cfg, SparseSet set, int64_t i, ScratchVector<int64_t>& out) {
  out.clear();
  const detail::SparseKeys p = detail::sparse_keys_of(cfg, set);
  const int64_t n = detail::sparse_key_count(p, i);
  for (int64_t t = 0; t < n; ++t) out.push_back(detail::sparse_key_at(p, i, t));
}

// The set of each head of a layer.
std::vector<SparseSet> head_sets(const SparseConfig& cfg, int layer, int heads) {
  std::vector<SparseSet> sets(static_cast<size_t>(std::max(heads, 0)));
  for (int h = 0; h < heads; ++h) sets[h] = attn_sparse_set(cfg, layer, h, heads);
  return sets;
}

}  // namespace

SparseSet attn_sparse_set(const SparseConfig& cfg, int layer, int head, int heads) {
  return detail::sparse_head_set(cfg.combine, layer, head, heads);
}

Status attn_sparse_validate(const SparseConfig& cfg) {
  if (cfg.stride <= 0)
    return invalid_argument("sparse attention: stride " + std::to_string(cfg.stride) +
                            " must be > 0 (resolve stride 0 = auto before calling)");
  if (cfg.block <= 0)
    return invalid_argument("sparse attention: block " + std::to_string(cfg.block) +
                            " must be > 0 (32 or 64)");
  if (cfg.pattern == SparsePattern::kFixed && (cfg.summary <= 0 || cfg.summary > cfg.stride))
    return invalid_argument("sparse attention: fixed summary c = " + std::to_string(cfg.summary) +
                            " must be in [1, stride " + std::to_string(cfg.stride) + "]");
  return Status::ok();
}

bool attn_sparse_allowed(const SparseConfig& cfg, SparseSet set, int64_t i, int64_t j) {
  return detail::sparse_key_allowed(detail::sparse_keys_of(cfg, set), i, j);
}

// q, k, v, out are (H, n, d). Pass 0 of every head runs first, then pass 1 of the heads
// whose set is a union; both add into one online-softmax state.
Status attn_sparse_forward_cpu(const float* q, const float* k, const float* v, float* out,
                               int heads, int64_t n, int d, const SparseConfig& cfg, int layer,
                               AttnStats* stats) {
  if (Status s = attn_sparse_validate(cfg); !s) return s;
  if (heads < 0 || n < 0 || d <= 0)
    return invalid_argument("attn_sparse_forward_cpu: heads, n must be >= 0 and d > 0");
  const std::vector<SparseSet> sets = head_sets(cfg, layer, heads);
  std::map<SparseSet, std::vector<AttnPass>> passes;
  for (SparseSet s : sets)
    if (!passes.count(s)) passes[s] = build_passes(cfg, s, n);
  detail::AttnState state(out, heads, n, d);
  for (size_t stage = 0; stage < 2; ++stage) {
    std::vector<const AttnPass*> pass(static_cast<size_t>(heads), nullptr);
    bool any = false;
    for (int h = 0; h < heads; ++h) {
      const auto& ps = passes[sets[h]];
      if (stage < ps.size()) {
        pass[h] = &ps[stage];
        any = true;
      }
    }
    if (any) detail::attn_pass_run(pass, q, k, v, n, n, d, state, stats);
  }
  state.finish(d);
  return Status::ok();
}

// Counts rows x keys of every kept tile of every pass (b x b, smaller at the edges of a
// segment), masked entries inside a kept tile included: what the forward evaluates. Returns
// 0 for a configuration attn_sparse_forward_cpu would reject.
int64_t attn_sparse_layout_entries(const SparseConfig& cfg, int layer, int heads, int64_t n) {
  if (!attn_sparse_validate(cfg) || n <= 0) return 0;
  std::map<SparseSet, int64_t> per_set;
  int64_t total = 0;
  for (SparseSet s : head_sets(cfg, layer, heads)) {
    if (!per_set.count(s)) {
      int64_t e = 0;
      for (const AttnPass& p : build_passes(cfg, s, n)) e += p.entries();
      per_set[s] = e;
    }
    total += per_set[s];
  }
  return total;
}

// q is (H, d); kcache, vcache are (H, cap, d) holding positions 0..i; out is (H, d).
void attn_sparse_decode_cpu(const float* q, const float* kcache, const float* vcache, float* out,
                            int heads, int64_t cap, int64_t i, int d, const SparseConfig& cfg,
                            int layer, AttnStats* stats) {
  assert(attn_sparse_validate(cfg).is_ok() &&
         "resolve SparseConfig.stride (0 = auto) before decoding");
  ScratchVector<int64_t> keys;
  int64_t read = 0;
  for (int h = 0; h < heads; ++h) {
    pattern_keys(cfg, attn_sparse_set(cfg, layer, h, heads), i, keys);
    detail::attn_decode_row(q + h * d, kcache + h * cap * d, vcache + h * cap * d, keys.data(),
                            static_cast<int64_t>(keys.size()), d, out + h * d);
    read += static_cast<int64_t>(keys.size());
  }
  if (stats) stats->keys_read += read;
}

namespace detail {

std::vector<SparsePassRanges> sparse_pass_ranges(const SparseConfig& cfg, SparseSet set,
                                                 int64_t n) {
  return ranges_of(cfg, set, n);
}

std::vector<AttnPass> sparse_build_passes(const SparseConfig& cfg, SparseSet set, int64_t n, int bq,
                                          int bk) {
  std::vector<AttnPass> passes;
  for (SparsePassRanges& r : ranges_of(cfg, set, n)) {
    AttnPass p;
    p.qpos = std::move(r.qpos);
    p.kpos = std::move(r.kpos);
    p.lo = std::move(r.lo);
    p.hi = std::move(r.hi);
    for (const SparsePassRanges::Segment& g : r.segments)
      p.add_segment(g.qs, g.qe, g.ks, g.ke, bq, bk);
    passes.push_back(std::move(p));
  }
  return passes;
}

}  // namespace detail

}  // namespace attnscope
