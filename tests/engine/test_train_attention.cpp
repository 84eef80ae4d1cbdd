// Tests of the training attention (exec/tape_attn.h): forwards against the f64 oracle and the
// inference kernels, backwards against finite differences, stored against recomputed gradients,
// the tape op, and how the saved attention memory grows with the length.
#include <QtTest>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "attnscope/attention.h"
#include "core/rng.h"
#include "exec/tape_attn.h"

using namespace attnscope;
using namespace attnscope::tape;

namespace {

template <typename T>
std::vector<T> random_vec(uint64_t seed, size_t count, double scale = 1.0) {
  Rng rng(seed);
  std::vector<T> x(count);
  for (T& v : x) v = static_cast<T>(scale * rng.normal());
  return x;
}

template <typename A>
double max_abs(const A& a) {
  double m = 0.0;
  for (auto v : a) m = std::max(m, std::abs(static_cast<double>(v)));
  return m;
}

template <typename A, typename B>
double max_diff(const A& a, const B& b) {
  double m = 0.0;
  for (size_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  return m;
}

// One attention problem: q (H, nq, d); k, v (H, nk, d); spec (rotations owned here, shared by
// copies: spec.rotations points into them, so a copied Problem must not own its own).
struct Problem {
  int heads = 2, d = 4;
  int64_t nq = 0, nk = 0;
  TrainAttnSpec spec;
  std::shared_ptr<const std::vector<float>> rot;
};

Problem causal(int64_t nq, int64_t nk, int64_t q_offset, int heads = 2, int d = 4) {
  Problem p;
  p.heads = heads, p.d = d, p.nq = nq, p.nk = nk;
  p.spec.kind = TrainAttnKind::kCausal;
  p.spec.q_offset = q_offset;
  return p;
}

Problem sparse(int64_t n, SparsePattern pat, SparseCombine comb, int layer, int stride, int block,
               int heads = 2, int d = 4) {
  Problem p;
  p.heads = heads, p.d = d, p.nq = p.nk = n;
  p.spec.kind = TrainAttnKind::kSparse;
  p.spec.sparse.pattern = pat;
  p.spec.sparse.combine = comb;
  p.spec.sparse.stride = stride;
  p.spec.sparse.block = block;
  p.spec.sparse.summary = std::max(1, stride / 3);
  p.spec.layer = layer;
  return p;
}

Problem lsh(int64_t n, int n_hashes, int chunk, int n_buckets, int heads = 2, int d = 6) {
  Problem p;
  p.heads = heads, p.d = d, p.nq = p.nk = n;
  p.spec.kind = TrainAttnKind::kLsh;
  p.spec.lsh.n_hashes = n_hashes;
  p.spec.lsh.chunk = chunk;
  p.spec.lsh.n_buckets = n_buckets;
  p.rot =
      std::make_shared<const std::vector<float>>(attn_lsh_rotations(7, 0, n_hashes, d, n_buckets));
  p.spec.rotations = p.rot->data();
  return p;
}

// The allowed (i, j) of a causal or sparse problem, for the oracle.
AttnMask mask_of(const Problem& p) {
  if (p.spec.kind == TrainAttnKind::kCausal) {
    const int64_t off = p.spec.q_offset;
    return [off](int, int64_t i, int64_t j) { return j <= off + i; };
  }
  const SparseConfig cfg = p.spec.sparse;
  const int layer = p.spec.layer, heads = p.heads;
  return [cfg, layer, heads](int h, int64_t i, int64_t j) {
    return attn_sparse_allowed(cfg, attn_sparse_set(cfg, layer, h, heads), i, j);
  };
}

struct Inputs {
  std::vector<double> q, k, v;
};
Inputs inputs(const Problem& p, uint64_t seed) {
  Inputs in;
  in.q = random_vec<double>(seed, static_cast<size_t>(p.heads * p.nq * p.d));
  in.k = random_vec<double>(seed + 1, static_cast<size_t>(p.heads * p.nk * p.d));
  in.v = random_vec<double>(seed + 2, static_cast<size_t>(p.heads * p.nk * p.d));
  if (p.spec.kind == TrainAttnKind::kLsh) in.k = in.q;
  return in;
}

template <typename T>
std::vector<T> cast(const std::vector<double>& x) {
  return std::vector<T>(x.begin(), x.end());
}

template <typename T>
std::vector<T> forward(const Problem& p, const std::vector<T>& q, const std::vector<T>& k,
                       const std::vector<T>& v, std::shared_ptr<AttnSaved<T>>* saved = nullptr,
                       bool store = true) {
  TrainAttnSpec spec = p.spec;
  spec.store_probs = store;
  std::vector<T> out(static_cast<size_t>(p.heads * p.nq * p.d));
  const Status st = attn_train_forward<T>(q.data(), k.data(), v.data(), out.data(), p.heads, p.nq,
                                          p.nk, p.d, spec, saved);
  if (!st) qFatal("attn_train_forward: %s", st.message().c_str());
  return out;
}

struct Grads {
  std::vector<double> dq, dk, dv;
};
template <typename T>
Grads backward(const Problem& p, const Inputs& in, const std::vector<double>& dout, bool store) {
  std::shared_ptr<AttnSaved<T>> saved;
  forward<T>(p, cast<T>(in.q), cast<T>(in.k), cast<T>(in.v), &saved, store);
  std::vector<T> dq(in.q.size(), T(0)), dk(in.k.size(), T(0)), dv(in.v.size(), T(0));
  const std::vector<T> go = cast<T>(dout);
  attn_train_backward<T>(*saved, go.data(), dq.data(), dk.data(), dv.data());
  Grads g;
  g.dq.assign(dq.begin(), dq.end());
  g.dk.assign(dk.begin(), dk.end());
  g.dv.assign(dv.begin(), dv.end());
  return g;
}

// LSH in f64 straight from its definition: per head and round, buckets of the rows (float
// hash), slots sorted by (bucket, position), the query in slot s attends to the slots of its
// chunk and the previous one with original position j < i (score x_i·x_j/|x_j|/sqrt(d)), itself
// at -1e5; the rounds' outputs weighted by the softmax of their logsumexps.
std::vector<double> lsh_reference(const Problem& p, const std::vector<double>& x,
                                  const std::vector<double>& v) {
  const int H = p.heads, d = p.d, R = p.spec.lsh.n_hashes, nb = p.spec.lsh.n_buckets;
  const int64_t n = p.nq, m = p.spec.lsh.chunk;
  std::vector<double> out(x.size(), 0.0);
  for (int h = 0; h < H; ++h) {
    const double* xh = x.data() + h * n * d;
    const double* vh = v.data() + h * n * d;
    std::vector<std::vector<double>> o(n, std::vector<double>(static_cast<size_t>(R * d), 0.0));
    std::vector<std::vector<double>> lse(n, std::vector<double>(static_cast<size_t>(R), 0.0));
    for (int r = 0; r < R; ++r) {
      std::vector<std::pair<int64_t, int64_t>> key(n);
      for (int64_t i = 0; i < n; ++i) {
        std::vector<float> xf(xh + i * d, xh + i * d + d);
        key[i] = {attn_lsh_hash(xf.data(), p.rot->data(), r, d, nb), i};
      }
      std::sort(key.begin(), key.end());
      for (int64_t s = 0; s < n; ++s) {
        const int64_t i = key[s].second, c = s / m;
        std::vector<double> sc;
        std::vector<int64_t> js;
        for (int64_t t = std::max<int64_t>(0, (c - 1) * m); t < std::min(n, (c + 1) * m); ++t) {
          const int64_t j = key[t].second;
          if (j > i) continue;
          double score = -1e5;
          if (j < i) {
            double dot = 0.0, ss = 0.0;
            for (int e = 0; e < d; ++e) dot += xh[i * d + e] * xh[j * d + e];
            for (int e = 0; e < d; ++e) ss += xh[j * d + e] * xh[j * d + e];
            score = dot / std::sqrt(std::max(ss, 1e-6)) / std::sqrt(static_cast<double>(d));
          }
          sc.push_back(score);
          js.push_back(j);
        }
        const double mx = *std::max_element(sc.begin(), sc.end());
        double z = 0.0;
        for (size_t t = 0; t < sc.size(); ++t) {
          const double w = std::exp(sc[t] - mx);
          z += w;
          for (int e = 0; e < d; ++e) o[i][r * d + e] += w * vh[js[t] * d + e];
        }
        for (int e = 0; e < d; ++e) o[i][r * d + e] /= z;
        lse[i][r] = mx + std::log(z);
      }
    }
    for (int64_t i = 0; i < n; ++i) {
      const double mx = *std::max_element(lse[i].begin(), lse[i].end());
      double z = 0.0;
      for (int r = 0; r < R; ++r) z += std::exp(lse[i][r] - mx);
      for (int r = 0; r < R; ++r) {
        const double w = std::exp(lse[i][r] - mx) / z;
        for (int e = 0; e < d; ++e) out[(h * n + i) * d + e] += w * o[i][r * d + e];
      }
    }
  }
  return out;
}

// Whether perturbing row (h, i) of an LSH problem's x to xp changes any of its buckets.
bool bucket_changes(const Problem& p, const double* row, const double* row_p) {
  std::vector<float> a(row, row + p.d), b(row_p, row_p + p.d);
  for (int r = 0; r < p.spec.lsh.n_hashes; ++r)
    if (attn_lsh_hash(a.data(), p.rot->data(), r, p.d, p.spec.lsh.n_buckets) !=
        attn_lsh_hash(b.data(), p.rot->data(), r, p.d, p.spec.lsh.n_buckets))
      return true;
  return false;
}

// Largest |analytic - central difference| over every entry of q, k, v, relative to the largest
// analytic entry. Entries whose perturbation moves an LSH bucket are skipped (buckets are
// constants of the backward); *skipped counts them.
double fd_error(const Problem& p, bool store, int* skipped) {
  const Inputs in = inputs(p, 100 + p.nq);
  const std::vector<double> w = random_vec<double>(999, static_cast<size_t>(p.heads * p.nq * p.d));
  const Grads g = backward<double>(p, in, w, store);
  const bool lsh_kind = p.spec.kind == TrainAttnKind::kLsh;
  auto loss = [&](const Inputs& x) {
    const std::vector<double> out = forward<double>(p, x.q, lsh_kind ? x.q : x.k, x.v);
    double s = 0.0;
    for (size_t e = 0; e < out.size(); ++e) s += out[e] * w[e];
    return s;
  };
  const double eps = 1e-5;
  double err = 0.0, scale = std::max({max_abs(g.dq), max_abs(g.dk), max_abs(g.dv)});
  *skipped = 0;
  for (int which = 0; which < 3; ++which) {
    if (lsh_kind && which == 1) continue;  // keys are q's rows: dq holds the whole gradient
    const std::vector<double>& ga = which == 0 ? g.dq : which == 1 ? g.dk : g.dv;
    for (size_t e = 0; e < ga.size(); ++e) {
      Inputs plus = in, minus = in;
      std::vector<double>& xp = which == 0 ? plus.q : which == 1 ? plus.k : plus.v;
      std::vector<double>& xm = which == 0 ? minus.q : which == 1 ? minus.k : minus.v;
      xp[e] += eps;
      xm[e] -= eps;
      if (lsh_kind && which == 0) {
        const size_t r0 = e / p.d * p.d;
        if (bucket_changes(p, in.q.data() + r0, xp.data() + r0) ||
            bucket_changes(p, in.q.data() + r0, xm.data() + r0)) {
          ++*skipped;
          continue;
        }
      }
      const double num = (loss(plus) - loss(minus)) / (2 * eps);
      err = std::max(err, std::abs(num - ga[e]));
    }
  }
  return err / scale;
}

// Peak attention-scratch bytes during a float forward that keeps what its backward needs.
size_t scratch_peak(const Problem& p, bool store) {
  const Inputs in = inputs(p, 5);
  const std::vector<float> q = cast<float>(in.q), k = cast<float>(in.k), v = cast<float>(in.v);
  const size_t idx = static_cast<size_t>(MemCategory::kAttentionScratch);
  const size_t before = MemTracker::instance().snapshot().by_category[idx].current;
  MemTracker::instance().reset_peaks();
  std::shared_ptr<AttnSaved<float>> saved;
  forward<float>(p, q, k, v, &saved, store);
  const size_t peak = MemTracker::instance().snapshot().by_category[idx].peak;
  return peak - before;
}

std::vector<Problem> sparse_problems(int64_t n, int stride, int block, int heads, int d) {
  std::vector<Problem> ps;
  for (SparsePattern pat : {SparsePattern::kStrided, SparsePattern::kFixed})
    for (SparseCombine comb :
         {SparseCombine::kInterleaved, SparseCombine::kMerged, SparseCombine::kPerHead})
      for (int layer : {0, 1}) ps.push_back(sparse(n, pat, comb, layer, stride, block, heads, d));
  return ps;
}

}  // namespace

class TestTrainAttention : public QObject {
  Q_OBJECT

 private slots:
  // (1) Double forwards equal the f64 oracle under each kind's mask.
  void forward_matches_oracle() {
    std::vector<Problem> ps = {causal(37, 37, 0, 3, 8), causal(13, 40, 27, 2, 5),
                               causal(10, 40, 5, 2, 4), causal(70, 150, 80, 2, 6),
                               causal(150, 150, 0, 2, 4)};
    for (const Problem& p : sparse_problems(45, 5, 8, 4, 6)) ps.push_back(p);
    for (const Problem& p : sparse_problems(150, 12, 16, 4, 4)) ps.push_back(p);
    double worst = 0.0;
    for (const Problem& p : ps) {
      const Inputs in = inputs(p, 11);
      const std::vector<double> got = forward<double>(p, in.q, in.k, in.v);
      std::vector<double> want(got.size());
      attn_naive_forward_f64(in.q.data(), in.k.data(), in.v.data(), want.data(), p.heads, p.nq,
                             p.nk, p.d, mask_of(p));
      worst = std::max(worst, max_diff(got, want));
      QVERIFY2(max_diff(got, want) <= 1e-10, qPrintable(QString("kind %1 nq %2 diff %3")
                                                            .arg(int(p.spec.kind))
                                                            .arg(p.nq)
                                                            .arg(max_diff(got, want))));
    }
    for (const Problem& p :
         {lsh(40, 1, 4, 4), lsh(40, 2, 4, 4), lsh(100, 3, 8, 6, 3, 8), lsh(130, 2, 70, 2, 2, 4)}) {
      const Inputs in = inputs(p, 12);
      const std::vector<double> got = forward<double>(p, in.q, in.q, in.v);
      const std::vector<double> want = lsh_reference(p, in.q, in.v);
      worst = std::max(worst, max_diff(got, want));
      QVERIFY2(max_diff(got, want) <= 1e-10, qPrintable(QString::number(max_diff(got, want))));
    }
    qInfo("%zu oracle problems + 4 LSH references: worst |diff| %.3g", ps.size(), worst);
  }

  // (2) Float forwards equal the inference kernels.
  void float_forward_matches_inference() {
    double worst = 0.0;
    auto check = [&worst](const std::vector<float>& got, const std::vector<float>& want,
                          const char* what) {
      const double rel = max_diff(got, want) / max_abs(want);
      worst = std::max(worst, rel);
      QVERIFY2(rel <= 1e-5, qPrintable(QString("%1: rel %2").arg(what).arg(rel)));
    };
    for (const Problem& p :
         {causal(300, 300, 0, 3, 16), causal(100, 300, 200, 2, 32), causal(129, 200, 71, 2, 8)}) {
      const Inputs in = inputs(p, 21);
      const auto q = cast<float>(in.q), k = cast<float>(in.k), v = cast<float>(in.v);
      std::vector<float> want(q.size());
      QVERIFY(attn_dense_forward_cpu(q.data(), k.data(), v.data(), want.data(), p.heads, p.nq, p.nk,
                                     p.d, p.spec.q_offset)
                  .is_ok());
      check(forward<float>(p, q, k, v), want, "dense");
    }
    for (const Problem& p : sparse_problems(300, 16, 32, 4, 16)) {
      const Inputs in = inputs(p, 22);
      const auto q = cast<float>(in.q), k = cast<float>(in.k), v = cast<float>(in.v);
      std::vector<float> want(q.size());
      QVERIFY(attn_sparse_forward_cpu(q.data(), k.data(), v.data(), want.data(), p.heads, p.nq, p.d,
                                      p.spec.sparse, p.spec.layer)
                  .is_ok());
      check(forward<float>(p, q, k, v), want, "sparse");
    }
    for (const Problem& p :
         {lsh(256, 2, 32, 8, 2, 16), lsh(300, 1, 64, 4, 3, 32), lsh(200, 3, 100, 4, 2, 8)}) {
      const Inputs in = inputs(p, 23);
      const auto q = cast<float>(in.q), v = cast<float>(in.v);
      std::vector<float> want(q.size());
      QVERIFY(attn_lsh_forward_cpu(q.data(), v.data(), want.data(), p.heads, p.nq, p.d, p.spec.lsh,
                                   p.spec.rotations)
                  .is_ok());
      check(forward<float>(p, q, q, v), want, "lsh");
    }
    qInfo("float against inference kernels: worst relative difference %.3g", worst);
  }

  // (3) Double backwards equal central finite differences, stored and recomputed.
  void backward_matches_finite_differences() {
    std::vector<Problem> ps = {causal(24, 24, 0, 2, 4), causal(9, 30, 21, 2, 5),
                               causal(20, 30, 4, 2, 4)};
    for (const Problem& p : sparse_problems(26, 4, 4, 2, 4)) ps.push_back(p);
    ps.push_back(lsh(20, 1, 4, 4, 2, 6));
    ps.push_back(lsh(24, 2, 3, 4, 2, 4));
    ps.push_back(lsh(22, 2, 5, 2, 2, 8));
    int skipped_total = 0, checked = 0;
    double worst = 0.0;
    for (const Problem& p : ps)
      for (bool store : {true, false}) {
        int skipped = 0;
        const double err = fd_error(p, store, &skipped);
        skipped_total += skipped;
        worst = std::max(worst, err);
        ++checked;
        QVERIFY2(err <= 1e-6, qPrintable(QString("kind %1 n %2 store %3 rel err %4")
                                             .arg(int(p.spec.kind))
                                             .arg(p.nq)
                                             .arg(store)
                                             .arg(err)));
      }
    QVERIFY(checked == 2 * static_cast<int>(ps.size()));
    QVERIFY2(skipped_total < 20, qPrintable(QString::number(skipped_total)));
    qInfo(
        "%d finite-difference checks: worst relative error %.3g, %d LSH entries skipped "
        "(bucket moved)",
        checked, worst, skipped_total);
  }

  // (4) Float gradients agree between stored probabilities and recomputed tiles.
  void float_store_and_recompute_agree() {
    std::vector<Problem> ps = {causal(200, 200, 0, 2, 16), causal(90, 200, 110, 2, 16),
                               lsh(256, 2, 32, 8, 2, 16)};
    for (const Problem& p : sparse_problems(200, 16, 32, 2, 16)) ps.push_back(p);
    double worst = 0.0;
    for (const Problem& p : ps) {
      const Inputs in = inputs(p, 31);
      const std::vector<double> w = random_vec<double>(32, in.q.size());
      const Grads a = backward<float>(p, in, w, true), b = backward<float>(p, in, w, false);
      for (auto [x, y] : {std::pair{&a.dq, &b.dq}, {&a.dk, &b.dk}, {&a.dv, &b.dv}}) {
        const double rel = max_diff(*x, *y) / std::max(max_abs(*x), 1e-30);
        worst = std::max(worst, rel);
        QVERIFY2(rel <= 1e-5, qPrintable(QString::number(rel)));
      }
      // And they are not trivially zero.
      QVERIFY(max_abs(a.dq) > 1e-3 && max_abs(a.dv) > 1e-3);
    }
    qInfo("float stored vs recomputed gradients: worst relative difference %.3g", worst);
  }

  // The tape op equals the kernels on split heads, gradients included; without recording it
  // saves nothing and gives the same output; for LSH the key gradient lands in q.
  void tape_op_matches_kernels() {
    for (const Problem& p :
         {causal(30, 45, 15, 3, 4),
          sparse(40, SparsePattern::kStrided, SparseCombine::kPerHead, 1, 5, 8, 4, 4),
          lsh(32, 2, 4, 4, 2, 4)}) {
      const Inputs in = inputs(p, 41);
      const int H = p.heads, d = p.d, D = H * d;
      const std::vector<double> w = random_vec<double>(42, in.q.size());
      // (H, n, d) -> (n, D).
      auto merge = [&](const std::vector<double>& x, int64_t n) {
        std::vector<double> y(x.size());
        for (int h = 0; h < H; ++h)
          for (int64_t i = 0; i < n; ++i)
            for (int e = 0; e < d; ++e) y[(i * D) + h * d + e] = x[(h * n + i) * d + e];
        return y;
      };
      auto var = [&](const std::vector<double>& x, int64_t n) {
        const std::vector<double> y = merge(x, n);
        return make_param<double>(n, D, y.data());
      };
      const bool is_lsh = p.spec.kind == TrainAttnKind::kLsh;
      Var<double> q = var(in.q, p.nq), k = is_lsh ? q : var(in.k, p.nk), v = var(in.v, p.nk);
      for (bool store : {true, false}) {
        TrainAttnSpec spec = p.spec;
        spec.store_probs = store;
        Tape<double> tape;
        Var<double> out = attention(tape, q, k, v, H, spec);
        QCOMPARE(tape.size(), size_t(1));
        const std::vector<double> want = merge(forward<double>(p, in.q, in.k, in.v), p.nq);
        QVERIFY(max_diff(out->data, want) <= 1e-13);
        const std::vector<double> wm = merge(w, p.nq);
        std::copy(wm.begin(), wm.end(), out->g());
        tape.run_backward();
        const Grads g = backward<double>(p, in, w, store);
        QVERIFY(max_diff(q->grad, merge(g.dq, p.nq)) <= 1e-12);
        if (!is_lsh) QVERIFY(max_diff(k->grad, merge(g.dk, p.nk)) <= 1e-12);
        QVERIFY(max_diff(v->grad, merge(g.dv, p.nk)) <= 1e-12);
        QVERIFY(max_abs(q->grad) > 1e-3);
        q->grad.clear(), k->grad.clear(), v->grad.clear();
        Tape<double> quiet(false);
        Var<double> o2 = attention(quiet, q, k, v, H, spec);
        QCOMPARE(quiet.size(), size_t(0));
        QVERIFY(max_diff(o2->data, want) <= 1e-13);
      }
    }
  }

  // Invalid arguments give messages, not crashes.
  void rejects_bad_specs() {
    Problem p = sparse(16, SparsePattern::kStrided, SparseCombine::kMerged, 0, 0, 8);
    const Inputs in = inputs(p, 1);
    std::vector<double> out(in.q.size());
    Status st = attn_train_forward<double>(in.q.data(), in.k.data(), in.v.data(), out.data(),
                                           p.heads, p.nq, p.nk, p.d, p.spec, nullptr);
    QVERIFY(!st.is_ok());
    QVERIFY(st.message().find("stride") != std::string::npos);
    Problem l = lsh(16, 1, 4, 3);
    st = attn_train_forward<double>(in.q.data(), in.q.data(), in.v.data(), out.data(), l.heads,
                                    l.nq, l.nk, l.d, l.spec, nullptr);
    QVERIFY(!st.is_ok());
  }

  // (5) Saved attention memory: dense quadratic, strided ~N sqrt(N), LSH linear; the
  // recomputing form keeps far less.
  void memory_grows_as_designed() {
    const int H = 2, d = 16;
    // Dense at n and 4n: 64x64 tiles on and below the diagonal, ratio about 16.
    const size_t dense_n = scratch_peak(causal(512, 512, 0, H, d), true);
    const size_t dense_4n = scratch_peak(causal(2048, 2048, 0, H, d), true);
    const double dense_ratio = double(dense_4n) / double(dense_n);
    // Stored probabilities alone: H * tiles * 64 * 64 floats.
    QVERIFY(dense_4n >= size_t(H) * (32 * 33 / 2) * 64 * 64 * sizeof(float));
    QVERIFY2(dense_ratio > 11.0 && dense_ratio < 17.0, qPrintable(QString::number(dense_ratio)));
    const size_t dense_re = scratch_peak(causal(2048, 2048, 0, H, d), false);
    QVERIFY2(double(dense_re) < double(dense_4n) / 20.0,
             qPrintable(QString("%1 vs %2").arg(dense_re).arg(dense_4n)));

    // Strided with l = sqrt(n): merged A1 + A2, evaluated entries ~ n sqrt(n).
    auto strided = [&](int64_t n, int l) {
      return sparse(n, SparsePattern::kStrided, SparseCombine::kMerged, 0, l, 32, H, d);
    };
    const size_t st_n = scratch_peak(strided(1024, 32), true);
    const size_t st_4n = scratch_peak(strided(4096, 64), true);
    const double st_ratio = double(st_4n) / double(st_n);
    const int64_t entries_4n =
        attn_sparse_layout_entries(strided(4096, 64).spec.sparse, 0, H, 4096);
    QVERIFY(st_4n >= size_t(entries_4n) * sizeof(float));
    QVERIFY(st_4n <= size_t(entries_4n) * sizeof(float) * 5 / 4);
    QVERIFY2(st_ratio > 4.5 && st_ratio < 10.5 && st_ratio < dense_ratio / 1.5,
             qPrintable(QString::number(st_ratio)));
    const size_t st_re = scratch_peak(strided(4096, 64), false);
    QVERIFY2(double(st_re) < double(st_4n) / 3.0,
             qPrintable(QString("%1 vs %2").arg(st_re).arg(st_4n)));

    // LSH: N * 2m per round per head, linear in N.
    const size_t l_n = scratch_peak(lsh(1024, 2, 32, 16, H, d), true);
    const size_t l_4n = scratch_peak(lsh(4096, 2, 32, 64, H, d), true);
    const double l_ratio = double(l_4n) / double(l_n);
    QVERIFY(l_4n >= size_t(H) * 2 * 4096 * 64 * sizeof(float));
    QVERIFY2(l_ratio > 3.5 && l_ratio < 4.5, qPrintable(QString::number(l_ratio)));
    const size_t l_re = scratch_peak(lsh(4096, 2, 32, 64, H, d), false);
    QVERIFY2(double(l_re) < double(l_4n) / 3.0,
             qPrintable(QString("%1 vs %2").arg(l_re).arg(l_4n)));
    qInfo(
        "attention scratch peaks (bytes): dense %zu -> %zu (x%.2f, recompute "
        "%zu); strided "
        "%zu -> %zu (x%.2f, recompute %zu); lsh %zu -> %zu (x%.2f, recompute "
        "%zu)",
        dense_n, dense_4n, dense_ratio, dense_re, st_n, st_4n, st_ratio, st_re, l_n, l_4n, l_ratio,
        l_re);
  }
};

QTEST_APPLESS_MAIN(TestTrainAttention)
#include "test_train_attention.moc"
