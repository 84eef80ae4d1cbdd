// The views' data: attention rows under each kind's exact rule (from the layer a family's
// attention_layer hands over), connectivity patterns by interval counting, the LSH buckets
// and kept mass, and the analytic and measured memory curve.
#include "attnscope/inspect.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>

#include "attention/lsh_rule.h"
#include "core/rng.h"

namespace attnscope {

namespace {

// The score the LSH forward gives a token for itself, and its key norm (attention/lsh_rule.h).
using detail::kLshSelfScore;
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// w (count) = softmax of s over the entries with ok set, exactly 0 elsewhere; returns the
// logsumexp (-inf when nothing is allowed, and then w is all 0).
double masked_softmax(const double* s, const char* ok, int64_t count, double* w) {
  double mx = kNegInf;
  for (int64_t j = 0; j < count; ++j)
    if (ok[j]) mx = std::max(mx, s[j]);
  std::fill(w, w + count, 0.0);
  if (mx == kNegInf) return kNegInf;
  double sum = 0.0;
  for (int64_t j = 0; j < count; ++j)
    if (ok[j]) sum += (w[j] = std::exp(s[j] - mx));
  for (int64_t j = 0; j < count; ++j) w[j] /= sum;
  return mx + std::log(sum);
}

double dot(const float* a, const float* b, int d) {
  double s = 0.0;
  for (int c = 0; c < d; ++c) s += static_cast<double>(a[c]) * b[c];
  return s;
}

// 1 / |x| with the LSH forward's floor on |x|^2: keys are qk rows scaled by this.
double inv_norm(const float* x, int d) {
  return 1.0 / detail::lsh_key_norm(dot(x, x, d));
}

// The sorted slots of one head of an LSH layer: slot (R, n) is the inverse of order.
struct LshSlots {
  int64_t n = 0, chunk = 0;
  int rounds = 0;
  const int* order = nullptr;  // (R, n) of this head
  std::vector<int64_t> slot;   // (R, n)
  LshSlots(const LshTrace& t, int head, int rounds_, int64_t n_, int64_t chunk_)
      : n(n_), chunk(chunk_), rounds(rounds_) {
    order = t.order.data() + static_cast<size_t>(head) * rounds * n;
    slot.resize(static_cast<size_t>(rounds * n));
    for (int r = 0; r < rounds; ++r)
      for (int64_t s = 0; s < n; ++s) slot[r * n + order[r * n + s]] = s;
  }
  // The slots [lo, hi) that query i sees in round r: its chunk and the one before.
  void window(int r, int64_t i, int64_t* lo, int64_t* hi) const {
    const AttnLshWindow w = attn_lsh_window(slot[r * n + i] / chunk, chunk, n);
    *lo = w.lo;
    *hi = w.hi;
  }
  bool sees(int r, int64_t i, int64_t j) const {
    int64_t lo, hi;
    window(r, i, &lo, &hi);
    const int64_t s = slot[r * n + j];
    return s >= lo && s < hi && j <= i;
  }
};

// w (n) for query i of one head, as attn_lsh_forward_cpu combines it: per round the softmax
// over the keys of i's window with j < i scored q_i · k_j / |k_j| / sqrt(d) and j = i at
// -1e5; the rounds weighted by the softmax of their logsumexps (a key in two windows gets
// both shares). qk is (n, d) of this head.
void lsh_row(const float* qk, int d, const LshSlots& sl, int64_t i, double* w) {
  const int64_t n = sl.n;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const float* q = qk + i * d;
  std::vector<double> s(static_cast<size_t>(n)), p(static_cast<size_t>(n) * sl.rounds);
  std::vector<char> ok(static_cast<size_t>(n));
  std::vector<double> lse(static_cast<size_t>(sl.rounds));
  for (int r = 0; r < sl.rounds; ++r) {
    int64_t lo, hi;
    sl.window(r, i, &lo, &hi);
    std::fill(ok.begin(), ok.end(), 0);
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t j = sl.order[r * n + t];
      if (j > i) continue;
      ok[j] = 1;
      s[j] = j == i ? kLshSelfScore : dot(q, qk + j * d, d) * scale * inv_norm(qk + j * d, d);
    }
    lse[r] = masked_softmax(s.data(), ok.data(), n, p.data() + r * n);
  }
  const double mx = *std::max_element(lse.begin(), lse.end());
  double z = 0.0;
  for (double l : lse) z += std::exp(l - mx);
  std::fill(w, w + n, 0.0);
  for (int r = 0; r < sl.rounds; ++r) {
    const double c = std::exp(lse[r] - mx) / z;
    for (int64_t j = 0; j < n; ++j) w[j] += c * p[r * n + j];
  }
}

Status check_input(const Model& m, const uint8_t* x, int64_t n, int layer) {
  const ModelConfig& cfg = m.config();
  if (!x) return invalid_argument("no input tokens (x is null)");
  if (n < 1 || n > cfg.seq_len())
    return invalid_argument("input of " + std::to_string(n) + " tokens; the model takes 1.." +
                            std::to_string(cfg.seq_len()));
  const int layers = inspect_layer_count(cfg);
  if (layer < 0 || layer >= layers)
    return invalid_argument("layer " + std::to_string(layer) + " does not exist: this " +
                            family_name(cfg.family) + " model has layers 0.." +
                            std::to_string(layers - 1));
  return Status::ok();
}

// Fills out with the pattern of rows x cols pairs where row r may see columns j <= r + offset
// and count(r, c0, c1) gives how many columns of [c0, c1) row r attends to (c1 is never past
// its causal limit). Rows are visited in increasing order. total_n sets the density's base.
void fill_pattern(int64_t rows, int64_t cols, int64_t offset, int grid, int64_t total_n,
                  const std::function<int64_t(int64_t, int64_t, int64_t)>& count,
                  PatternImage* out) {
  const int g = static_cast<int>(std::min<int64_t>(grid, std::min(rows, cols)));
  std::vector<double> allowed(static_cast<size_t>(g) * g, 0.0), causal(allowed.size(), 0.0);
  std::vector<char> any(allowed.size(), 0);
  double pairs = 0.0;
  for (int a = 0; a < g; ++a) {
    for (int64_t r = a * rows / g; r < (a + 1) * rows / g; ++r) {
      const int64_t lim = std::min(cols, r + offset + 1);  // columns [0, lim) are causal
      for (int b = 0; b < g; ++b) {
        const int64_t c0 = b * cols / g, c1 = std::min((b + 1) * cols / g, lim);
        if (c0 >= c1) break;
        const int64_t k = count(r, c0, c1);
        const size_t cell = static_cast<size_t>(a) * g + b;
        allowed[cell] += static_cast<double>(k);
        causal[cell] += static_cast<double>(c1 - c0);
        any[cell] |= k > 0 ? 1 : 0;
        pairs += static_cast<double>(k);
      }
    }
  }
  out->grid = g;
  out->rows = rows;
  out->cols = cols;
  out->row_first = 0;
  out->cells.assign(allowed.size(), 0.0f);
  out->cells_any.assign(allowed.size(), 0.0f);
  out->cells_causal.assign(allowed.size(), 0.0f);
  for (int a = 0; a < g; ++a)
    for (int b = 0; b < g; ++b) {
      const size_t c = static_cast<size_t>(a) * g + b;
      const double pairs_in_cell = static_cast<double>((a + 1) * rows / g - a * rows / g) *
                                   static_cast<double>((b + 1) * cols / g - b * cols / g);
      out->cells[c] = causal[c] > 0 ? static_cast<float>(allowed[c] / causal[c]) : 0.0f;
      out->cells_any[c] = any[c] ? 1.0f : 0.0f;
      out->cells_causal[c] =
          pairs_in_cell > 0 ? static_cast<float>(causal[c] / pairs_in_cell) : 0.0f;
    }
  const double n = static_cast<double>(total_n);
  out->density = pairs / (n * (n + 1) / 2);
  out->flops_saved = 1.0 - out->density;
}

// Positions j in [lo, hi) with j = res (mod l): how many.
int64_t count_residue(int64_t lo, int64_t hi, int64_t res, int64_t l) {
  auto below = [&](int64_t x) { return x <= res ? 0 : (x - res - 1) / l + 1; };
  return hi > lo ? below(hi) - below(lo) : 0;
}
// Summary columns (j mod l >= l - c) in [0, x).
int64_t summary_below(int64_t x, int64_t l, int64_t c) {
  return x / l * c + std::max<int64_t>(0, x % l - (l - c));
}
int64_t overlap(int64_t a0, int64_t a1, int64_t b0, int64_t b1) {
  return std::max<int64_t>(0, std::min(a1, b1) - std::max(a0, b0));
}

// Keys j in [lo, hi) (hi <= i + 1) that attn_sparse_allowed(cfg, set, i, j) admits, counted
// by intervals: the strided A1 ∩ A2 is {i}; the fixed A1 ∩ A2 is the summary columns of i's
// own block.
int64_t sparse_count(const SparseConfig& cfg, SparseSet set, int64_t i, int64_t lo, int64_t hi) {
  const int64_t l = cfg.stride;
  int64_t a1, a2, both;
  if (cfg.pattern == SparsePattern::kStrided) {
    a1 = overlap(lo, hi, std::max<int64_t>(0, i - l + 1), i + 1);
    a2 = count_residue(lo, hi, i % l, l);
    both = overlap(lo, hi, i, i + 1);
  } else {
    const int64_t c = cfg.summary, own = i / l * l;
    a1 = overlap(lo, hi, own, i + 1);
    a2 = hi > lo ? summary_below(hi, l, c) - summary_below(lo, l, c) : 0;
    const int64_t s = std::max(lo, own);
    both = hi > s ? summary_below(hi, l, c) - summary_below(s, l, c) : 0;
  }
  return set == SparseSet::kA1 ? a1 : set == SparseSet::kA2 ? a2 : a1 + a2 - both;
}

// An Hourglass layer: its level's depth, total factor and sequence length at input length n.
struct HourglassPlace {
  int depth = 0;
  int64_t factor = 1, len = 0;
};
HourglassPlace hourglass_place(const ModelConfig& cfg, int layer, int64_t n) {
  const auto levels = *hourglass_parse(cfg.hourglass.hierarchy);
  const int last = static_cast<int>(levels.size()) - 1;
  int lv = 0;
  for (int seen = 0; lv <= last; ++lv) {
    seen += levels[static_cast<size_t>(lv)].layers;
    if (layer < seen) break;
  }
  HourglassPlace p;
  p.depth = std::min(lv, last - lv);
  p.len = n;
  for (int s = 0; s < p.depth; ++s) {
    const int64_t k =
        levels[static_cast<size_t>(s + 1)].factor / levels[static_cast<size_t>(s)].factor;
    p.len = (p.len + k - 1) / k;
  }
  p.factor = levels[static_cast<size_t>(p.depth)].factor;
  return p;
}

}  // namespace

int inspect_layer_count(const ModelConfig& cfg) {
  return cfg.family == Family::kPerceiverAR ? cfg.layers + 1 : cfg.layers;
}

std::string inspect_layer_kind(const ModelConfig& c, int layer) {
  const std::string n = std::to_string(c.seq_len());
  switch (c.family) {
    case Family::kDense:
      return "dense causal";
    case Family::kSparse: {
      std::string sets;
      for (int h = 0; h < c.heads; ++h) {
        const SparseSet s = attn_sparse_set(c.sparse, layer, h, c.heads);
        const char* name = s == SparseSet::kA1 ? "A1" : s == SparseSet::kA2 ? "A2" : "A1+A2";
        if (sets.find(name) == std::string::npos)
          sets += std::string(sets.empty() ? "" : "/") + name;
      }
      return std::string(c.sparse.pattern == SparsePattern::kStrided ? "strided " : "fixed ") +
             sets + ", l = " + std::to_string(c.sparse.stride) + ", block " +
             std::to_string(c.sparse.block);
    }
    case Family::kReformer:
      return "LSH, " + std::to_string(c.lsh.n_hashes) + " rounds, chunk " +
             std::to_string(c.lsh.chunk) + ", " + std::to_string(c.lsh.n_buckets) + " buckets";
    case Family::kPerceiverAR:
      if (layer == 0)
        return "cross-attention, " + std::to_string(c.perceiver.latents) + " latents over " + n +
               " inputs";
      return "latent self-attention over " + std::to_string(c.perceiver.latents);
    case Family::kHourglass: {
      auto levels = hourglass_parse(c.hourglass.hierarchy);
      if (!levels) return "?";
      int first = 0;
      for (const HourglassLevel& lv : *levels) {
        if (layer < first + lv.layers)
          return "dense causal at shortening " + std::to_string(lv.factor) + " (length " +
                 std::to_string((c.seq_len() + lv.factor - 1) / lv.factor) + ")";
        first += lv.layers;
      }
      return "?";
    }
  }
  return "?";
}

// ---- attention row -------------------------------------------------------------------------

Status inspect_attention_row(const Model& m, const uint8_t* x, int64_t n, int layer, int64_t query,
                             AttnRow* out, AttnRowCheck* check) {
  ATTN_RETURN_IF_ERROR(check_input(m, x, n, layer));
  if (query < 0 || query >= n)
    return invalid_argument("query position " + std::to_string(query) +
                            " is outside the input 0.." + std::to_string(n - 1));
  const ModelConfig& cfg = m.config();
  if (cfg.family == Family::kPerceiverAR) {
    const int64_t first = n - std::min<int64_t>(cfg.perceiver.latents, n);
    if (query < first)
      return invalid_argument("position " + std::to_string(query) +
                              " is not a latent: Perceiver AR's latents are positions " +
                              std::to_string(first) + ".." + std::to_string(n - 1));
  }
  auto fn = [&](const AttnLayerView& v) -> Status {
    const int64_t row = (query - v.query_offset) / v.stride;
    const int H = v.heads, d = v.d;
    const int64_t nk = v.nk;
    out->heads = H;
    out->keys = nk;
    out->weights.assign(static_cast<size_t>(H * nk), 0.0f);
    out->key_space = v.key_space;
    out->key_offset = v.key_offset;
    out->key_stride = v.stride;
    out->query_index = row;
    out->dense_kept.assign(static_cast<size_t>(H), 1.0);
    if (check) {
      check->d = d;
      check->values.assign(v.v, v.v + static_cast<size_t>(H) * nk * d);
      check->output.resize(static_cast<size_t>(H) * d);
    }
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    std::vector<double> s(static_cast<size_t>(nk)), w(static_cast<size_t>(nk));
    std::vector<char> ok(static_cast<size_t>(nk));
    for (int h = 0; h < H; ++h) {
      const float* qh = v.q + static_cast<int64_t>(h) * v.nq * d;
      const float* kh = v.k + static_cast<int64_t>(h) * nk * d;
      if (cfg.family == Family::kReformer) {
        const LshSlots sl(*v.lsh, h, cfg.lsh.n_hashes, nk, cfg.lsh.chunk);
        lsh_row(qh, d, sl, row, w.data());
      } else {
        const SparseSet set = attn_sparse_set(cfg.sparse, v.kind_layer, h, H);
        for (int64_t j = 0; j < nk; ++j) {
          ok[j] = cfg.family == Family::kSparse ? attn_sparse_allowed(cfg.sparse, set, row, j)
                                                : j <= row + v.causal_offset;
          if (ok[j]) s[j] = dot(qh + row * d, kh + j * d, d) * scale;
        }
        masked_softmax(s.data(), ok.data(), nk, w.data());
      }
      std::copy(w.begin(), w.end(), out->weights.begin() + h * nk);
      // The dense causal softmax of the same scores over every key a dense layer would let
      // this row see, and the share of it on the keys the rule kept (1 for dense layers).
      {
        const int64_t lim = std::min(nk - 1, row + v.causal_offset);
        double mx = kNegInf;
        for (int64_t j = 0; j <= lim; ++j) {
          s[j] =
              cfg.family == Family::kReformer
                  ? (j == row ? kLshSelfScore
                              : dot(qh + row * d, qh + j * d, d) * scale * inv_norm(qh + j * d, d))
                  : dot(qh + row * d, kh + j * d, d) * scale;
          mx = std::max(mx, s[j]);
        }
        double z = 0.0, kept = 0.0;
        for (int64_t j = 0; j <= lim; ++j) {
          const double p = std::exp(s[j] - mx);
          z += p;
          const bool allowed = cfg.family == Family::kReformer ? (w[j] > 0 || j == row)
                               : cfg.family == Family::kSparse ? ok[j] != 0
                                                               : true;
          if (allowed) kept += p;
        }
        out->dense_kept[static_cast<size_t>(h)] = z > 0 ? kept / z : 0.0;
      }
      if (check)
        std::copy_n(v.o + (static_cast<int64_t>(h) * v.nq + row) * d, d,
                    check->output.begin() + h * d);
    }
    return Status::ok();
  };
  return m.attention_layer(x, n, layer, fn);
}

// ---- patterns ------------------------------------------------------------------------------

Status inspect_pattern(const ModelConfig& in, int layer, int head, int64_t n, int grid,
                       PatternImage* out) {
  ModelConfig cfg = in;
  ATTN_RETURN_IF_ERROR(config_resolve(cfg));
  ATTN_RETURN_IF_ERROR(config_validate(cfg));
  if (n < 1 || n > cfg.seq_len())
    return invalid_argument("length " + std::to_string(n) + " is outside the model's 1.." +
                            std::to_string(cfg.seq_len()));
  const int layers = inspect_layer_count(cfg);
  if (layer < 0 || layer >= layers)
    return invalid_argument("layer " + std::to_string(layer) + " does not exist: this " +
                            family_name(cfg.family) + " config has layers 0.." +
                            std::to_string(layers - 1));
  if (head < 0 || head >= cfg.heads)
    return invalid_argument("head " + std::to_string(head) + " does not exist: heads are 0.." +
                            std::to_string(cfg.heads - 1));
  if (grid < 1) return invalid_argument("grid must be at least 1 cell per side");
  auto all = [](int64_t, int64_t c0, int64_t c1) { return c1 - c0; };
  switch (cfg.family) {
    case Family::kDense:
      fill_pattern(n, n, 0, grid, n, all, out);
      out->rows_label = "query position";
      out->cols_label = "key position";
      return Status::ok();
    case Family::kSparse: {
      const SparseSet set = attn_sparse_set(cfg.sparse, layer, head, cfg.heads);
      fill_pattern(
          n, n, 0, grid, n,
          [&](int64_t i, int64_t c0, int64_t c1) {
            return sparse_count(cfg.sparse, set, i, c0, c1);
          },
          out);
      out->rows_label = "query position";
      out->cols_label = "key position";
      return Status::ok();
    }
    case Family::kReformer:
      return unsupported(
          "Reformer's LSH pattern depends on the input: use inspect_pattern_lsh with the model "
          "and the tokens");
    case Family::kPerceiverAR: {
      const int64_t rows = std::min<int64_t>(cfg.perceiver.latents, n), first = n - rows;
      const std::string span =
          " (positions " + std::to_string(first) + ".." + std::to_string(n - 1) + ")";
      if (layer == 0) {
        fill_pattern(rows, n, first, grid, n, all, out);
        out->row_first = first;
        out->rows_label = "latent" + span;
        out->cols_label = "input position";
      } else {
        fill_pattern(rows, rows, 0, grid, n, all, out);
        out->row_first = first;
        out->rows_label = "latent query" + span;
        out->cols_label = "latent key" + span;
      }
      return Status::ok();
    }
    case Family::kHourglass: {
      const HourglassPlace p = hourglass_place(cfg, layer, n);
      fill_pattern(p.len, p.len, 0, grid, n, all, out);
      const std::string at = p.depth == 0 ? " position"
                                          : " at level " + std::to_string(p.depth) + " (1/" +
                                                std::to_string(p.factor) + ")";
      out->rows_label = "query" + at;
      out->cols_label = "key" + at;
      return Status::ok();
    }
  }
  return internal_error("unknown family");
}

Status inspect_pattern_lsh(const Model& m, const uint8_t* x, int64_t n, int layer, int head,
                           int grid, PatternImage* out) {
  const ModelConfig& cfg = m.config();
  if (cfg.family != Family::kReformer)
    return unsupported(std::string("inspect_pattern_lsh needs a Reformer model, not ") +
                       family_name(cfg.family) + ": use inspect_pattern");
  ATTN_RETURN_IF_ERROR(check_input(m, x, n, layer));
  if (head < 0 || head >= cfg.heads)
    return invalid_argument("head " + std::to_string(head) + " does not exist: heads are 0.." +
                            std::to_string(cfg.heads - 1));
  if (grid < 1) return invalid_argument("grid must be at least 1 cell per side");
  return m.attention_layer(x, n, layer, [&](const AttnLayerView& v) -> Status {
    const LshSlots sl(*v.lsh, head, cfg.lsh.n_hashes, n, cfg.lsh.chunk);
    // keys: the sorted distinct keys j <= i of row i in any round (rows come in order).
    std::vector<int64_t> keys;
    int64_t row = -1;
    auto count = [&](int64_t i, int64_t c0, int64_t c1) {
      if (i != row) {
        keys.clear();
        for (int r = 0; r < sl.rounds; ++r) {
          int64_t lo, hi;
          sl.window(r, i, &lo, &hi);
          for (int64_t t = lo; t < hi; ++t)
            if (sl.order[r * n + t] <= i) keys.push_back(sl.order[r * n + t]);
        }
        std::sort(keys.begin(), keys.end());
        keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
        row = i;
      }
      return static_cast<int64_t>(std::lower_bound(keys.begin(), keys.end(), c1) -
                                  std::lower_bound(keys.begin(), keys.end(), c0));
    };
    fill_pattern(n, n, 0, grid, n, count, out);
    out->rows_label = "query position";
    out->cols_label = "key position";
    return Status::ok();
  });
}

// ---- LSH -----------------------------------------------------------------------------------

Status inspect_lsh(const Model& m, const uint8_t* x, int64_t n, int layer, LshInspect* out) {
  const ModelConfig& cfg = m.config();
  if (cfg.family != Family::kReformer)
    return unsupported(std::string("LSH buckets exist only in Reformer models; this one is ") +
                       family_name(cfg.family));
  ATTN_RETURN_IF_ERROR(check_input(m, x, n, layer));
  return m.attention_layer(x, n, layer, [&](const AttnLayerView& v) -> Status {
    const int H = v.heads, R = cfg.lsh.n_hashes, d = v.d;
    out->heads = H;
    out->n_hashes = R;
    out->n_buckets = cfg.lsh.n_buckets;
    out->chunk = cfg.lsh.chunk;
    out->n = n;
    out->buckets = v.lsh->buckets;
    out->order = v.lsh->order;
    out->kept_mass.assign(static_cast<size_t>(H), 0.0);
    out->kept_mass_round.assign(static_cast<size_t>(H) * R, 0.0);
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    // kn (n, d): this head's keys, the qk rows normalised; s (n) one query's dense scores.
    std::vector<double> kn(static_cast<size_t>(n) * d), s(static_cast<size_t>(n));
    for (int h = 0; h < H; ++h) {
      const float* qk = v.q + static_cast<int64_t>(h) * n * d;
      const LshSlots sl(*v.lsh, h, R, n, cfg.lsh.chunk);
      for (int64_t j = 0; j < n; ++j) {
        const double inv = inv_norm(qk + j * d, d) * scale;
        for (int c = 0; c < d; ++c) kn[j * d + c] = qk[j * d + c] * inv;
      }
      std::vector<int64_t> lo(static_cast<size_t>(R)), hi(static_cast<size_t>(R));
      for (int64_t i = 0; i < n; ++i) {
        const float* q = qk + i * d;
        double mx = kLshSelfScore;
        for (int64_t j = 0; j < i; ++j) {
          double acc = 0.0;
          for (int c = 0; c < d; ++c) acc += q[c] * kn[j * d + c];
          s[j] = acc;
          mx = std::max(mx, acc);
        }
        s[i] = kLshSelfScore;
        for (int r = 0; r < R; ++r) sl.window(r, i, &lo[r], &hi[r]);
        double z = 0.0, kept = 0.0;
        std::vector<double> kept_r(static_cast<size_t>(R), 0.0);
        for (int64_t j = 0; j <= i; ++j) {
          const double p = std::exp(s[j] - mx);
          z += p;
          bool any = false;
          for (int r = 0; r < R; ++r) {
            const int64_t slot = sl.slot[r * n + j];
            if (slot >= lo[r] && slot < hi[r]) {
              kept_r[r] += p;
              any = true;
            }
          }
          if (any) kept += p;
        }
        out->kept_mass[h] += kept / z;
        for (int r = 0; r < R; ++r) out->kept_mass_round[h * R + r] += kept_r[r] / z;
      }
      out->kept_mass[h] /= static_cast<double>(n);
      for (int r = 0; r < R; ++r) out->kept_mass_round[h * R + r] /= static_cast<double>(n);
    }
    return Status::ok();
  });
}

// ---- memory ----------------------------------------------------------------------------------

namespace {

constexpr double kF = sizeof(float);

size_t cat(MemCategory c) {
  return static_cast<size_t>(c);
}

// The analytic inference figures of cfg (resolved, at its own seq_len) in bytes. Each
// activation term follows the family's allocation sequence: the tensors alive together at
// the forward's fullest moment (written per family below).
MemBytes estimate(const ModelConfig& cfg) {
  const double n = static_cast<double>(cfg.seq_len()), D = cfg.dim, F = cfg.ff_dim, H = cfg.heads,
               L = cfg.layers, V = kVocab;
  MemBytes b{};
  b[cat(MemCategory::kWeights)] = static_cast<double>(model_param_count(cfg)) * kF;
  // One pre-LN block over r rows: h, t, q, k, v, o (6 r D) and the FFN's hidden (r F).
  auto block = [&](double r) { return r * (6 * D + F); };
  // Dense online-softmax state m, l (2 H r floats) and the pass's lo, hi (2 r int64).
  auto dense_scratch = [&](double r) { return r * (2 * H * kF + 16); };
  double act = 0, scratch = 0, caches = 0;
  switch (cfg.family) {
    case Family::kDense:
    case Family::kSparse: {
      // residual + block, or at the end residual + final LN + logits.
      act = std::max(n * D + block(n), n * (2 * D + V));
      scratch = dense_scratch(n);
      if (cfg.family == Family::kSparse) {
        // A set's passes hold lo, hi (and qpos, kpos when permuted): up to 48 bytes per
        // position; a layer has at most two distinct sets (per-head combining).
        const bool two = cfg.sparse.combine == SparseCombine::kPerHead && cfg.heads > 1;
        scratch += n * 48 * (two ? 2 : 1);
      }
      caches = L * 2 * n * D;  // k, v per layer, (H, N, d) each
      break;
    }
    case Family::kReformer: {
      const double s = cfg.lsh.reversible ? 2 : 1, R = cfg.lsh.n_hashes;
      const double rows = std::ceil(n / cfg.lsh.ff_chunks);
      // streams + h, t, qk, v, o + one FFN chunk (h, f, hidden); or streams + LN + logits.
      act = std::max(s * n * D + 5 * n * D + rows * (2 * D + F), s * n * D + n * (D + V));
      // norm, lse (double) and key scale (float) per (head, position); bucket (int) and
      // order (int64) per (head, round, position).
      scratch = H * n * (8 + 8 + 4) + H * R * n * (4 + 8);
      caches = L * (n * D + H * R * n * sizeof(int) / kF);  // LN'd inputs and bucket ids
      break;
    }
    case Family::kPerceiverAR: {
      const double r = std::min<double>(cfg.perceiver.latents, n);
      // cross: emb, z, hk, t, kh, vh (n rows), hq, qh, oh (r rows), then the cross FFN (h, f,
      // hidden over r rows); latents: emb, z + block; end: emb, z, LN, logits.
      act = std::max(
          {5 * n * D + 6 * r * D + r * F, n * D + r * D + block(r), n * D + 2 * r * D + r * V});
      scratch = dense_scratch(r);
      caches = 2 * n * D + r * D + L * 2 * r * D;  // cross K/V, z, latent K/V
      break;
    }
    case Family::kHourglass: {
      const auto levels = *hourglass_parse(cfg.hourglass.hierarchy);
      const int S = static_cast<int>(levels.size() / 2);
      auto layers_at = [&](int lv) { return levels[static_cast<size_t>(lv)].layers; };
      // len[s], held[s]: the sequence at depth s and the tensors alive while it runs: the
      // residual, then each shortening's cat, g, u (k len + len + k len rows of D). Depth s's
      // up level runs while its own shortening's tensors are still alive (held[s + 1]).
      std::vector<double> len{n}, held{n * D};
      for (int s = 0; s < S; ++s) {
        const double k =
            levels[static_cast<size_t>(s + 1)].factor / levels[static_cast<size_t>(s)].factor;
        len.push_back(std::ceil(len.back() / k));
        held.push_back(held.back() + len.back() * (2 * k + 1) * D);
        caches += 2 * k * D;  // recent and upsampled rows
      }
      double peak = n * (2 * D + V);
      for (int s = 0; s <= S; ++s) {
        const int down = layers_at(s), up = s < S ? layers_at(2 * S - s) : 0;
        if (down > 0) peak = std::max(peak, held[s] + block(len[s]));
        if (up > 0) peak = std::max(peak, held[s + 1] + block(len[s]));
        if (down + up > 0) scratch = std::max(scratch, dense_scratch(len[s]));
        caches += (down + up) * 2 * len[s] * D;
      }
      act = peak;
      break;
    }
  }
  b[cat(MemCategory::kActivations)] = act * kF;
  b[cat(MemCategory::kAttentionScratch)] = scratch;
  b[cat(MemCategory::kCaches)] = caches * kF;
  return b;
}

// base at length: a text sequence of that many bytes; see inspect.h.
Expected<ModelConfig> config_at(const ModelConfig& base, int64_t length) {
  ModelConfig c = base;
  c.modality = Modality{};
  c.modality.kind = ModalityKind::kText;
  c.modality.length = static_cast<int>(length);
  c.pos_width = 0;
  if (c.family == Family::kReformer) c.lsh.n_buckets = 0;
  if (c.family == Family::kPerceiverAR)
    c.perceiver.latents = static_cast<int>(
        std::min<int64_t>(c.perceiver.latents > 0 ? c.perceiver.latents : 256, length));
  ATTN_RETURN_IF_ERROR(config_resolve(c));
  ATTN_RETURN_IF_ERROR(config_validate(c));
  return c;
}

// One forward of random tokens at cfg's length and its decode state, measured on the ledger.
Status measure(const ModelConfig& cfg, MemBytes* out) {
  MemTracker& mt = MemTracker::instance();
  const size_t w0 = mt.snapshot().by_category[cat(MemCategory::kWeights)].current;
  WeightMap w = model_init_weights(cfg, InitOptions{1, false});
  (*out)[cat(MemCategory::kWeights)] =
      static_cast<double>(mt.snapshot().by_category[cat(MemCategory::kWeights)].current - w0);
  auto model = model_create(cfg, std::move(w));
  if (!model) return model.status();
  const int64_t n = cfg.seq_len();
  std::vector<uint8_t> x(static_cast<size_t>(n));
  Rng rng(derive_seed(cfg.seed, 0x4D454D));  // "MEM"
  for (auto& t : x) t = static_cast<uint8_t>(rng.next_u64() & 0xff);
  mt.reset_peaks();
  const MemSnapshot before = mt.snapshot();
  {
    Tensor logits;
    int64_t first = 0;
    ATTN_RETURN_IF_ERROR((*model)->forward(x.data(), n, &logits, &first));
  }
  const MemSnapshot after = mt.snapshot();
  for (MemCategory c : {MemCategory::kActivations, MemCategory::kAttentionScratch})
    (*out)[cat(c)] =
        static_cast<double>(after.by_category[cat(c)].peak - before.by_category[cat(c)].current);
  const size_t c0 = mt.snapshot().by_category[cat(MemCategory::kCaches)].current;
  auto st = (*model)->decode_begin();
  (*out)[cat(MemCategory::kCaches)] =
      static_cast<double>(mt.snapshot().by_category[cat(MemCategory::kCaches)].current - c0);
  return Status::ok();
}

}  // namespace

uint64_t memory_limit_bytes(std::string* what) {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  uint64_t limit = pages > 0 && page > 0
                       ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page)
                       : std::numeric_limits<uint64_t>::max();
  if (what) *what = "the machine's physical memory";
  rlimit as{};
  if (::getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) {
    // What the process has mapped already (the first field of /proc/self/statm, in pages).
    uint64_t mapped = 0;
    if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
      unsigned long long vm_pages = 0;
      if (std::fscanf(f, "%llu", &vm_pages) == 1) mapped = vm_pages * static_cast<uint64_t>(page);
      std::fclose(f);
    }
    const uint64_t left = as.rlim_cur > mapped ? as.rlim_cur - mapped : 0;
    if (left < limit) {
      limit = left;
      if (what) *what = "what is left under the process's address-space limit (ulimit -v)";
    }
  }
  return limit;
}

Status memory_check_inference(const ModelConfig& cfg, const std::string& doing, bool decode) {
  // Decoding holds the weights and the caches (a step's own tensors are a few rows); a forward
  // holds the weights, the activations and the attention scratch.
  MemBytes b = estimate(cfg);
  if (decode)
    b[cat(MemCategory::kActivations)] = b[cat(MemCategory::kAttentionScratch)] = 0;
  else
    b[cat(MemCategory::kCaches)] = 0;
  double total = 0;
  for (double v : b) total += v;
  std::string what;
  const uint64_t limit = memory_limit_bytes(&what);
  if (total <= static_cast<double>(limit)) return Status::ok();
  auto gib = [](double bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
    return std::string(buf);
  };
  return invalid_argument(doing + " this model would need about " + gib(total) + " (weights " +
                          gib(b[cat(MemCategory::kWeights)]) +
                          (decode ? ", decode caches " + gib(b[cat(MemCategory::kCaches)])
                                  : ", activations " + gib(b[cat(MemCategory::kActivations)])) +
                          "), over the limit of " + gib(static_cast<double>(limit)) + ", " + what +
                          "; nothing was allocated");
}

std::vector<MemoryPoint> inspect_memory_curve(const ModelConfig& base,
                                              const std::vector<int64_t>& lengths, bool measure_too,
                                              const std::atomic<bool>* cancel) {
  std::vector<MemoryPoint> points;
  for (int64_t len : lengths) {
    if (cancel && cancel->load()) break;
    auto cfg = config_at(base, len);
    if (!cfg) continue;
    MemoryPoint p;
    p.length = len;
    p.estimate = estimate(*cfg);
    p.dense_stored_attention = static_cast<double>(cfg->layers) * cfg->heads *
                               static_cast<double>(len) * static_cast<double>(len) * kF;
    if (measure_too && len <= kInspectMeasureMax)
      p.measured = measure(*cfg, &p.measured_bytes).is_ok();
    points.push_back(p);
  }
  return points;
}

}  // namespace attnscope
