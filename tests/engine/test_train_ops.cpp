// Tests of the training ops (exec/tape_ops.h) and the tape's recomputation
// helpers (exec/tape.h): backwards against central differences in double,
// float forwards against the inference code, chunked ops against unchunked
// ones, checkpoint and reversible stacks.
#include <QtTest>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "attnscope/model.h"
#include "core/rng.h"
#include "exec/tape_ops.h"
#include "models/common.h"
#include "ops/ops.h"

using namespace attnscope;
using namespace attnscope::tape;

namespace {

template <typename T>
Var<T> random_var(Rng& rng, int64_t rows, int64_t cols, double scale, bool requires_grad,
                  double offset = 0.0) {
  Var<T> v = make_var<T>(rows, cols, requires_grad);
  for (auto& e : v->data) e = static_cast<T>(offset + scale * rng.normal());
  return v;
}

// A tiny resolved config of the dense family.
ModelConfig tiny_config(ModalityKind kind, int dim, int ff_dim, int layers = 1) {
  ModelConfig cfg;
  cfg.family = Family::kDense;
  cfg.modality.kind = kind;
  if (kind == ModalityKind::kImage) {
    cfg.modality.width = 4;
    cfg.modality.height = 3;
    cfg.modality.channels = 3;
  } else {
    cfg.modality.length = 23;
  }
  cfg.dim = dim;
  cfg.heads = 2;
  cfg.ff_dim = ff_dim;
  cfg.layers = layers;
  const Status s = config_resolve(cfg);
  if (!s.is_ok()) qFatal("tiny config refused");
  return cfg;
}

// The model's tensors with random values (layer-norm weights near 1), so every
// path matters.
WeightMap random_weights(const ModelConfig& cfg, uint64_t seed) {
  InitOptions opt;
  opt.seed = seed;
  opt.zero_logits = false;
  WeightMap w = model_init_weights(cfg, opt);
  Rng rng(seed + 101);
  for (auto& [name, t] : w) {
    const bool ln_weight =
        name.find("ln") != std::string::npos && name.find(".weight") != std::string::npos;
    for (int64_t e = 0; e < t.numel(); ++e)
      t.data()[e] = static_cast<float>((ln_weight ? 1.0 : 0.0) + 0.5 * rng.normal());
  }
  return w;
}

template <typename T>
ParamSet<T> params_of(const WeightMap& w) {
  ParamSet<T> p;
  for (const auto& [name, t] : w) {
    const int64_t rows = t.rank() == 1 ? 1 : t.dim(0);
    const int64_t cols = t.rank() == 1 ? t.dim(0) : t.numel() / t.dim(0);
    p[name] = make_param<T>(rows, cols, t.data());
  }
  return p;
}

template <typename T>
std::vector<Var<T>> params_with_prefix(const ParamSet<T>& p, const std::string& prefix) {
  std::vector<Var<T>> out;
  for (const auto& [name, v] : p)
    if (name.rfind(prefix, 0) == 0) out.push_back(v);
  return out;
}

template <typename T>
std::vector<T> grad_of(const Var<T>& v) {
  if (!v->has_grad()) return std::vector<T>(static_cast<size_t>(v->numel()), T(0));
  return std::vector<T>(v->grad.begin(), v->grad.end());
}

template <typename T>
void clear_grads(const std::vector<Var<T>>& vars) {
  for (const auto& v : vars) v->grad.clear();
}

// max |a - b| / max |b| (b the reference; an all-zero reference compares
// absolutely).
template <typename A, typename B>
double rel_err(const A& a, const B& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    num = std::max(num, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
    den = std::max(den, std::abs(static_cast<double>(b[i])));
  }
  return den > 0 ? num / den : num;
}

template <typename T>
std::vector<T> data_of(const Var<T>& v) {
  return std::vector<T>(v->data.begin(), v->data.end());
}

// The loss the checks differentiate: sum(out * R) for a fixed random R.
using GraphFn = std::function<Var<double>(Tape<double>&)>;

double functional(const Var<double>& out, const std::vector<double>& R) {
  double s = 0;
  for (int64_t e = 0; e < out->numel(); ++e) s += out->data[e] * R[e];
  return s;
}

// Checks d sum(fn() * R) / d v for every v in vars against central differences
// (at most `probe` entries of each, spread over it). Returns the worst relative
// error over the vars.
double fd_check(const GraphFn& fn, const std::vector<Var<double>>& vars, uint64_t seed,
                int64_t probe = 64) {
  clear_grads(vars);
  Tape<double> tape;
  Var<double> out = fn(tape);
  Rng rng(seed);
  std::vector<double> R(static_cast<size_t>(out->numel()));
  for (double& r : R) r = rng.normal();
  double* go = out->g();
  for (int64_t e = 0; e < out->numel(); ++e) go[e] = R[e];
  tape.run_backward();
  double worst = 0;
  const double h = 1e-5;
  for (const auto& v : vars) {
    const std::vector<double> analytic = grad_of(v);
    const int64_t count = v->numel();
    const int64_t step = std::max<int64_t>(1, count / probe);
    std::vector<double> a, num;
    for (int64_t e = static_cast<int64_t>(rng.uniform() * step) % step; e < count; e += step) {
      const double keep = v->data[e];
      Tape<double> quiet(false);
      v->data[e] = keep + h;
      const double lp = functional(fn(quiet), R);
      v->data[e] = keep - h;
      const double lm = functional(fn(quiet), R);
      v->data[e] = keep;
      a.push_back(analytic[static_cast<size_t>(e)]);
      num.push_back((lp - lm) / (2 * h));
    }
    worst = std::max(worst, rel_err(a, num));
  }
  return worst;
}

// Total bytes above the starting point at the peak of run().
size_t peak_bytes(const std::function<void()>& run) {
  MemTracker& mt = MemTracker::instance();
  mt.reset_peaks();
  const size_t base = mt.snapshot().total_current;
  run();
  return mt.snapshot().total_peak - base;
}

// Seeds out's gradient with R and runs the tape.
template <typename T>
void backprop(Tape<T>& tape, const Var<T>& out, const std::vector<T>& R) {
  T* g = out->g();
  for (int64_t e = 0; e < out->numel(); ++e) g[e] = R[static_cast<size_t>(e)];
  tape.run_backward();
}

template <typename T>
std::vector<T> random_vec(uint64_t seed, int64_t count) {
  Rng rng(seed);
  std::vector<T> r(static_cast<size_t>(count));
  for (T& v : r) v = static_cast<T>(rng.normal());
  return r;
}

// "<tag><k>." (built in steps: GCC 12 warns falsely on operator+ chains here).
std::string prefixed(const char* tag, int k) {
  std::string s(tag);
  s.append(std::to_string(k));
  s.push_back('.');
  return s;
}

// F of the reversible test: linear(layernorm(x)) with parameters under "f<k>.".
template <typename T>
Var<T> f_branch(Tape<T>& tape, const ParamSet<T>& p, int k, const Var<T>& x) {
  const std::string q = prefixed("f", k);
  Var<T> h = layernorm(tape, x, p.at(q + "ln.weight"), p.at(q + "ln.bias"));
  return linear(tape, h, p.at(q + "w"), p.at(q + "b"));
}

// ln -> gelu -> linear with parameters under "c<k>." (the checkpoint test's
// sub-graph).
template <typename T>
Var<T> c_block(Tape<T>& tape, const ParamSet<T>& p, int k, const Var<T>& x) {
  const std::string q = prefixed("c", k);
  Var<T> h = layernorm(tape, x, p.at(q + "ln.weight"), p.at(q + "ln.bias"));
  Var<T> a = gelu(tape, h);
  return linear(tape, a, p.at(q + "w"), p.at(q + "b"));
}

// Parameters "<tag><k>.{ln.weight, ln.bias, w, b}" for k < count, all (D, D) /
// (1, D).
template <typename T>
void add_square_params(ParamSet<T>& p, const char* tag, int count, int64_t D, uint64_t seed) {
  Rng rng(seed);
  for (int k = 0; k < count; ++k) {
    const std::string q = prefixed(tag, k);
    std::vector<double> g(D), b(D), w(D * D), c(D);
    for (auto& v : g) v = 1.0 + 0.3 * rng.normal();
    for (auto& v : b) v = 0.3 * rng.normal();
    for (auto& v : w) v = rng.normal() / std::sqrt(static_cast<double>(D));
    for (auto& v : c) v = 0.3 * rng.normal();
    p[q + "ln.weight"] = make_param<T>(1, D, g.data());
    p[q + "ln.bias"] = make_param<T>(1, D, b.data());
    p[q + "w"] = make_param<T>(D, D, w.data());
    p[q + "b"] = make_param<T>(1, D, c.data());
  }
}

template <typename T>
std::vector<Var<T>> all_params(const ParamSet<T>& p) {
  std::vector<Var<T>> out;
  for (const auto& [name, v] : p) out.push_back(v);
  return out;
}

}  // namespace

class TestTrainOps : public QObject {
  Q_OBJECT

 private slots:
  // ---- (1) backward against central differences, in double ----

  void linearLayernormGeluGrads() {
    Rng rng(1);
    auto x = random_var<double>(rng, 5, 4, 1.0, true);
    auto w = random_var<double>(rng, 4, 3, 1.0, true);
    auto b = random_var<double>(rng, 1, 3, 1.0, true);
    const double e1 = fd_check([&](Tape<double>& t) { return linear(t, x, w, b); }, {x, w, b}, 2);
    const double e2 =
        fd_check([&](Tape<double>& t) { return linear(t, x, w, Var<double>()); }, {x, w}, 3);
    // More rows than the float path's small-m loop, so every shape rule is
    // exercised.
    auto x2 = random_var<double>(rng, 9, 4, 1.0, true);
    const double e3 = fd_check([&](Tape<double>& t) { return linear(t, x2, w, b); }, {x2, w, b}, 4);
    auto y = random_var<double>(rng, 4, 6, 2.0, true, 0.5);
    auto g = random_var<double>(rng, 1, 6, 0.3, true, 1.0);
    auto c = random_var<double>(rng, 1, 6, 0.3, true);
    const double e4 =
        fd_check([&](Tape<double>& t) { return layernorm(t, y, g, c); }, {y, g, c}, 5);
    auto z = random_var<double>(rng, 3, 5, 1.5, true);
    const double e5 = fd_check([&](Tape<double>& t) { return gelu(t, z); }, {z}, 6);
    qInfo("fd rel err: linear %.2e %.2e %.2e layernorm %.2e gelu %.2e", e1, e2, e3, e4, e5);
    for (double e : {e1, e2, e3, e4, e5}) QVERIFY(e <= 1e-6);
  }

  void geluIsTheTanhFormula() {
    // The float GELU (inference and training forward, vectorised tanh) against the tanh
    // formula in double, and the float backward against the double backward, over
    // x in [-12, 12] and far out (where GELU is x or 0).
    std::vector<float> xs;
    for (int i = -12000; i <= 12000; ++i) xs.push_back(static_cast<float>(i) * 1e-3f);
    for (float far : {30.0f, 1e4f, 3e38f}) xs.push_back(far), xs.push_back(-far);
    std::vector<float> y = xs;
    op_gelu(y.data(), static_cast<int64_t>(y.size()));
    double worst = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      const double v = xs[i];
      const double ref =
          0.5 * v * (1.0 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
      worst = std::max(worst, std::abs(y[i] - ref) / std::max(1.0, std::abs(v)));
    }
    qInfo("gelu forward: worst |float - double| / max(1, |x|) = %.2e", worst);
    QVERIFY(worst <= 3e-7);

    Tape<float> tf;
    Tape<double> td;
    const int64_t n = 24001;  // the [-12, 12] grid
    auto xf = make_var<float>(1, n, true);
    auto xd = make_var<double>(1, n, true);
    for (int64_t i = 0; i < n; ++i) xf->data[i] = xs[i], xd->data[i] = xs[i];
    Var<float> yf = gelu(tf, xf);
    Var<double> yd = gelu(td, xd);
    backprop(tf, yf, std::vector<float>(static_cast<size_t>(n), 1.0f));
    backprop(td, yd, std::vector<double>(static_cast<size_t>(n), 1.0));
    double gworst = 0;
    for (int64_t i = 0; i < n; ++i) gworst = std::max(gworst, std::abs(xf->grad[i] - xd->grad[i]));
    qInfo("gelu backward: worst |float - double| = %.2e", gworst);
    QVERIFY(gworst <= 5e-7);  // (std::tanh and 1 - t*t: 5.5e-7)
  }

  void shapeOpsGrads() {
    Rng rng(7);
    auto a = random_var<double>(rng, 4, 3, 1.0, true);
    auto b = random_var<double>(rng, 4, 3, 1.0, true);
    auto c = random_var<double>(rng, 2, 3, 1.0, true);
    std::vector<double> errs;
    errs.push_back(fd_check([&](Tape<double>& t) { return add(t, a, b); }, {a, b}, 8));
    errs.push_back(fd_check([&](Tape<double>& t) { return scale(t, a, -0.7); }, {a}, 9));
    errs.push_back(fd_check([&](Tape<double>& t) { return slice_rows(t, a, 1, 2); }, {a}, 10));
    errs.push_back(fd_check(
        [&](Tape<double>& t) {
          return concat_rows<double>(t, {a, c, b});
        },
        {a, b, c}, 11));
    errs.push_back(fd_check([&](Tape<double>& t) { return reshape(t, a, 2, 6); }, {a}, 12));
    // A composition that uses one value twice, so gradients must add up.
    errs.push_back(fd_check(
        [&](Tape<double>& t) {
          auto s = slice_rows(t, a, 2, 2);
          return add(t, concat_rows<double>(t, {s, c}), scale(t, reshape(t, b, 4, 3), 2.0));
        },
        {a, b, c}, 13));
    for (double e : errs) QVERIFY2(e <= 1e-6, qPrintable(QString::number(e)));
    // slice_rows alone: the rows outside the slice get exactly zero.
    clear_grads<double>({a});
    Tape<double> tape;
    auto s = slice_rows(tape, a, 1, 2);
    backprop<double>(tape, s, std::vector<double>(6, 1.0));
    for (int j = 0; j < 3; ++j) {
      QCOMPARE(a->grad[j], 0.0);
      QCOMPARE(a->grad[3 + j], 1.0);
      QCOMPARE(a->grad[9 + j], 0.0);
    }
  }

  void embedGrads_data() {
    QTest::addColumn<int>("kind");
    QTest::addColumn<int>("p0");
    QTest::addColumn<int>("count");
    QTest::newRow("image all") << static_cast<int>(ModalityKind::kImage) << 0 << 36;
    QTest::newRow("image tail") << static_cast<int>(ModalityKind::kImage) << 7 << 20;
    QTest::newRow("text all") << static_cast<int>(ModalityKind::kText) << 0 << 23;
    QTest::newRow("text middle") << static_cast<int>(ModalityKind::kText) << 3 << 11;
  }
  void embedGrads() {
    QFETCH(int, kind);
    QFETCH(int, p0);
    QFETCH(int, count);
    const ModelConfig cfg = tiny_config(static_cast<ModalityKind>(kind), 6, 12);
    QCOMPARE(cfg.seq_len(), kind == static_cast<int>(ModalityKind::kImage) ? 36 : 23);
    ParamSet<double> p = params_of<double>(random_weights(cfg, 21));
    // Few distinct tokens, so several positions scatter into one table row.
    std::vector<uint8_t> x(cfg.seq_len());
    Rng rng(22);
    for (auto& v : x) v = static_cast<uint8_t>(250 + rng.next_u64() % 4);
    std::vector<Var<double>> tables = params_with_prefix(p, "embed.");
    QCOMPARE(tables.size(), size_t(kind == static_cast<int>(ModalityKind::kImage) ? 5 : 4));
    // The token table's rows in use (250..253) are where its gradient lives:
    // probe them all.
    const double e = fd_check(
        [&](Tape<double>& t) { return embed(t, p, cfg, x.data(), p0, count); }, tables, 23, 3000);
    qInfo("embed fd rel err %.2e", e);
    QVERIFY(e <= 1e-6);
    // Every table row a position touches got its count of gradient rows: with R
    // = 1 the BOS row sums to D when p0 = 0 and 0 otherwise.
    clear_grads(tables);
    Tape<double> tape;
    auto y = embed(tape, p, cfg, x.data(), p0, count);
    backprop<double>(tape, y, std::vector<double>(y->numel(), 1.0));
    const auto gb = grad_of(p.at("embed.bos"));
    QCOMPARE(gb[0], p0 == 0 ? 1.0 : 0.0);
  }

  void ffnAndHeadGrads_data() {
    QTest::addColumn<int>("chunks");
    QTest::newRow("1 chunk") << 1;
    QTest::newRow("3 chunks") << 3;
  }
  void ffnAndHeadGrads() {
    QFETCH(int, chunks);
    const ModelConfig cfg = tiny_config(ModalityKind::kText, 6, 10);
    ParamSet<double> p = params_of<double>(random_weights(cfg, 31));
    Rng rng(32);
    auto x = random_var<double>(rng, 7, 6, 1.0, true);
    std::vector<Var<double>> vars = params_with_prefix(p, "blocks.0.ln2.");
    for (auto& v : params_with_prefix(p, "blocks.0.ff.")) vars.push_back(v);
    vars.push_back(x);
    const double ef = fd_check(
        [&](Tape<double>& t) { return ffn_block(t, p, "blocks.0.", x, chunks); }, vars, 33);
    std::vector<uint8_t> targets(7);
    for (auto& v : targets) v = static_cast<uint8_t>(rng.next_u64() % 256);
    std::vector<Var<double>> hv = params_with_prefix(p, "final_ln.");
    for (auto& v : params_with_prefix(p, "head.")) hv.push_back(v);
    hv.push_back(x);
    const double eh = fd_check(
        [&](Tape<double>& t) { return head_loss(t, p, x, targets.data(), chunks); }, hv, 34);
    const double el = fd_check([&](Tape<double>& t) { return head_logits(t, p, x); }, hv, 35);
    qInfo("chunks %d: fd rel err ffn_block %.2e head_loss %.2e head_logits %.2e", chunks, ef, eh,
          el);
    QVERIFY(ef <= 1e-6);
    QVERIFY(eh <= 1e-6);
    QVERIFY(el <= 1e-6);
  }

  void headLossValue() {
    // head_loss is the mean over rows of logsumexp(logits) - logits[target],
    // from head_logits.
    const ModelConfig cfg = tiny_config(ModalityKind::kText, 6, 10);
    ParamSet<double> p = params_of<double>(random_weights(cfg, 41));
    Rng rng(42);
    auto x = random_var<double>(rng, 5, 6, 1.0, false);
    std::vector<uint8_t> targets = {0, 17, 255, 17, 100};
    Tape<double> tape(false);
    auto logits = head_logits(tape, p, x);
    QCOMPARE(logits->rows, int64_t(5));
    QCOMPARE(logits->cols, int64_t(256));
    double want = 0;
    for (int r = 0; r < 5; ++r) {
      double s = 0;
      for (int j = 0; j < 256; ++j) s += std::exp(logits->data[r * 256 + j]);
      want += std::log(s) - logits->data[r * 256 + targets[r]];
    }
    want /= 5;
    for (int chunks : {1, 2, 5, 9}) {
      auto loss = head_loss(tape, p, x, targets.data(), chunks);
      QVERIFY(std::abs(loss->data[0] - want) <= 1e-12 * std::abs(want));
    }
  }

  // ---- (2) float forwards equal the inference code ----

  void floatForwardsMatchInference() {
    const ModelConfig cfg = tiny_config(ModalityKind::kImage, 16, 0, 2);
    InitOptions opt;
    opt.seed = 5;
    opt.zero_logits = false;
    WeightMap w = model_init_weights(cfg, opt);
    // Give the layer norms non-trivial weights so they matter.
    Rng rng(51);
    for (auto& [name, t] : w)
      if (name.find("ln") != std::string::npos)
        for (int64_t e = 0; e < t.numel(); ++e)
          t.data()[e] += static_cast<float>(0.2 * rng.normal());
    ParamSet<float> p = params_of<float>(w);
    const CommonParams cp = common_params(w, cfg);
    const BlockParams bp = block_params(w, "blocks.0.");
    const int64_t n = 29, D = cfg.dim;
    std::vector<uint8_t> x(cfg.seq_len());
    for (auto& v : x) v = static_cast<uint8_t>(rng.next_u64() % 256);
    Tape<float> tape;

    // embed == embed_inputs (from 0 and from a later position)
    for (int64_t p0 : {int64_t(0), int64_t(5)}) {
      auto e = embed(tape, p, cfg, x.data(), p0, n);
      std::vector<float> ref(static_cast<size_t>(n * D));
      embed_inputs(cp, cfg, x.data(), p0, n, ref.data());
      QVERIFY(rel_err(data_of(e), ref) <= 1e-6);
    }
    auto h = make_var<float>(n, D, true);
    for (auto& v : h->data) v = static_cast<float>(rng.normal());

    // layernorm == op_layernorm
    auto ln = layernorm(tape, h, p.at("blocks.0.ln1.weight"), p.at("blocks.0.ln1.bias"));
    std::vector<float> ref(static_cast<size_t>(n * D));
    op_layernorm(h->data.data(), bp.ln1_g, bp.ln1_b, ref.data(), n, D);
    QVERIFY(rel_err(data_of(ln), ref) <= 1e-6);

    // gelu == op_gelu
    auto ge = gelu(tape, h);
    std::vector<float> gref(h->data.begin(), h->data.end());
    op_gelu(gref.data(), n * D);
    QVERIFY(rel_err(data_of(ge), gref) <= 1e-6);

    // head_logits == head_forward
    auto lg = head_logits(tape, p, h);
    std::vector<float> lref(static_cast<size_t>(n * 256));
    head_forward(cp, cfg, h->data.data(), n, lref.data());
    const double elg = rel_err(data_of(lg), lref);
    QVERIFY2(elg <= 1e-6, qPrintable(QString::number(elg)));

    // ffn_block == LN2 + ffn_forward, chunked or not
    std::vector<float> hn(static_cast<size_t>(n * D)), fref(static_cast<size_t>(n * D));
    op_layernorm(h->data.data(), bp.ln2_g, bp.ln2_b, hn.data(), n, D);
    ffn_forward(bp, hn.data(), fref.data(), n, D, cfg.ff_dim);
    for (int chunks : {1, 3}) {
      auto f = ffn_block(tape, p, "blocks.0.", h, chunks);
      const double ef = rel_err(data_of(f), fref);
      QVERIFY2(ef <= 1e-6, qPrintable(QString("chunks %1: %2").arg(chunks).arg(ef)));
    }
    qInfo("float forwards: head_logits rel err %.2e", elg);
  }

  // ---- (3) chunked ffn_block and head_loss: same numbers, lower peak ----

  void chunkedMatchesAndSaves() {
    ModelConfig cfg = tiny_config(ModalityKind::kImage, 32, 128);
    cfg.modality.width = cfg.modality.height = 16;
    cfg.modality.channels = 1;
    QVERIFY(config_resolve(cfg).is_ok());
    ParamSet<float> p = params_of<float>(random_weights(cfg, 61));
    const int64_t n = 256, D = cfg.dim;
    Rng rng(62);
    auto x = random_var<float>(rng, n, D, 1.0, true);
    std::vector<uint8_t> targets(n);
    for (auto& v : targets) v = static_cast<uint8_t>(rng.next_u64() % 256);
    const std::vector<float> R = random_vec<float>(63, n * D);
    std::vector<Var<float>> watched = all_params(p);
    watched.push_back(x);

    struct Run {
      std::vector<float> value;
      std::vector<std::vector<float>> grads;
      size_t peak = 0;
    };
    auto run_ffn = [&](int chunks) {
      Run r;
      clear_grads(watched);
      r.peak = peak_bytes([&] {
        Tape<float> tape;
        auto y = ffn_block(tape, p, "blocks.0.", x, chunks);
        r.value = data_of(y);
        backprop(tape, y, R);
      });
      for (auto& v : watched) r.grads.push_back(grad_of(v));
      return r;
    };
    auto run_head = [&](int chunks) {
      Run r;
      clear_grads(watched);
      r.peak = peak_bytes([&] {
        Tape<float> tape;
        auto loss = head_loss(tape, p, x, targets.data(), chunks);
        r.value = data_of(loss);
        tape.backward(loss);
      });
      for (auto& v : watched) r.grads.push_back(grad_of(v));
      return r;
    };
    for (int which = 0; which < 2; ++which) {
      const Run whole = which == 0 ? run_ffn(1) : run_head(1);
      const Run parts = which == 0 ? run_ffn(4) : run_head(4);
      const double ev = rel_err(parts.value, whole.value);
      double eg = 0;
      for (size_t i = 0; i < watched.size(); ++i)
        eg = std::max(eg, rel_err(parts.grads[i], whole.grads[i]));
      qInfo("%s: chunked vs whole value %.2e grads %.2e; peak %zu -> %zu bytes",
            which == 0 ? "ffn_block" : "head_loss", ev, eg, whole.peak, parts.peak);
      QVERIFY(ev <= 1e-5);
      QVERIFY(eg <= 1e-5);
      QVERIFY(parts.peak < whole.peak);
    }
  }

  // ---- (4) checkpoint ----

  void checkpointMatchesPlain() {
    const int64_t n = 6, D = 5;
    ParamSet<double> p;
    add_square_params(p, "c", 3, D, 71);
    Rng rng(72);
    auto x = random_var<double>(rng, n, D, 1.0, true);
    std::vector<Var<double>> watched = all_params(p);
    watched.push_back(x);
    const std::vector<double> R = random_vec<double>(73, n * D);
    auto run = [&](bool ckpt) {
      clear_grads(watched);
      Tape<double> tape;
      Var<double> h = x;
      for (int k = 0; k < 3; ++k) {
        if (ckpt)
          h = checkpoint<double>(tape, {h},
                                 [&p, k](Tape<double>& t, const std::vector<Var<double>>& in) {
                                   return c_block(t, p, k, in[0]);
                                 });
        else
          h = c_block(tape, p, k, h);
      }
      std::vector<double> value = data_of(h);
      backprop(tape, h, R);
      std::vector<std::vector<double>> g;
      for (auto& v : watched) g.push_back(grad_of(v));
      return std::make_pair(value, g);
    };
    const auto plain = run(false);
    const auto ck = run(true);
    QVERIFY(rel_err(ck.first, plain.first) <= 1e-15);
    double eg = 0;
    for (size_t i = 0; i < watched.size(); ++i)
      eg = std::max(eg, rel_err(ck.second[i], plain.second[i]));
    qInfo("checkpoint vs plain grads rel err %.2e", eg);
    QVERIFY(eg <= 1e-10);
    // And the plain graph itself is right.
    const double efd = fd_check(
        [&](Tape<double>& t) {
          Var<double> h = x;
          for (int k = 0; k < 3; ++k)
            h = checkpoint<double>(t, {h},
                                   [&p, k](Tape<double>& tt, const std::vector<Var<double>>& in) {
                                     return c_block(tt, p, k, in[0]);
                                   });
          return h;
        },
        watched, 74);
    QVERIFY(efd <= 1e-6);
  }

  void checkpointLowersPeak() {
    const int64_t n = 128, D = 64;
    const int L = 8;
    ParamSet<float> p;
    add_square_params(p, "c", L, D, 81);
    Rng rng(82);
    auto x = random_var<float>(rng, n, D, 1.0, true);
    const std::vector<float> R = random_vec<float>(83, n * D);
    std::vector<Var<float>> watched = all_params(p);
    watched.push_back(x);
    auto run = [&](bool ckpt) {
      clear_grads(watched);
      return peak_bytes([&] {
        Tape<float> tape;
        Var<float> h = x;
        for (int k = 0; k < L; ++k) {
          if (ckpt)
            h = checkpoint<float>(tape, {h},
                                  [&p, k](Tape<float>& t, const std::vector<Var<float>>& in) {
                                    return c_block(t, p, k, in[0]);
                                  });
          else
            h = c_block(tape, p, k, h);
        }
        backprop(tape, h, R);
      });
    };
    const size_t plain = run(false), ck = run(true);
    qInfo("stack of %d: peak %zu bytes plain, %zu checkpointed", L, plain, ck);
    QVERIFY(ck < plain);
  }

  // ---- (5) reversible_stack ----

  void reversibleFloat() { reversible<float>(1e-4, 1e-6); }
  void reversibleDouble() { reversible<double>(1e-9, 1e-14); }

 private:
  template <typename T>
  void reversible(double grad_tol, double value_tol) {
    const ModelConfig cfg = tiny_config(ModalityKind::kText, 8, 20, 2);
    const WeightMap w = random_weights(cfg, 91);
    ParamSet<T> p = params_of<T>(w);
    add_square_params(p, "f", 2, cfg.dim, 92);
    // Smaller weights keep the stack's values moderate (its inputs are rebuilt
    // by subtraction).
    for (auto& [name, v] : p)
      if ((name.size() > 2 && name.compare(name.size() - 2, 2, ".w") == 0) ||
          name.find("ff.w") != std::string::npos)
        for (auto& e : v->data) e *= T(0.5);
    const int64_t n = 9, D = cfg.dim;
    Rng rng(93);
    auto x1 = random_var<T>(rng, n, D, 1.0, true);
    auto x2 = random_var<T>(rng, n, D, 1.0, true);
    const std::vector<T> R1 = random_vec<T>(94, n * D), R2 = random_vec<T>(95, n * D);
    std::vector<Var<T>> watched = all_params(p);
    watched.push_back(x1);
    watched.push_back(x2);

    std::vector<RevBlock<T>> blocks;
    for (int k = 0; k < 2; ++k) {
      const std::string prefix = prefixed("blocks.", k);
      blocks.push_back(
          {[&p, k](Tape<T>& t, const std::vector<Var<T>>& in) { return f_branch(t, p, k, in[0]); },
           [&p, prefix](Tape<T>& t, const std::vector<Var<T>>& in) {
             return ffn_block(t, p, prefix, in[0], 1);
           }});
    }
    // Plain, stored graph.
    clear_grads(watched);
    std::vector<T> py1, py2;
    {
      Tape<T> tape;
      Var<T> a = x1, b = x2;
      for (int k = 0; k < 2; ++k) {
        a = add(tape, a, f_branch(tape, p, k, b));
        b = add(tape, b, ffn_block(tape, p, prefixed("blocks.", k), a, 1));
      }
      py1 = data_of(a);
      py2 = data_of(b);
      std::copy(R1.begin(), R1.end(), a->g());
      std::copy(R2.begin(), R2.end(), b->g());
      tape.run_backward();
    }
    std::vector<std::vector<T>> pg;
    for (auto& v : watched) pg.push_back(grad_of(v));
    // Reversible.
    clear_grads(watched);
    {
      Tape<T> tape;
      auto [y1, y2] = reversible_stack(tape, x1, x2, blocks);
      const double e1 = rel_err(data_of(y1), py1), e2 = rel_err(data_of(y2), py2);
      QVERIFY2(e1 <= value_tol && e2 <= value_tol, qPrintable(QString("%1 %2").arg(e1).arg(e2)));
      std::copy(R1.begin(), R1.end(), y1->g());
      std::copy(R2.begin(), R2.end(), y2->g());
      tape.run_backward();
    }
    double eg = 0, ein = 0;
    for (size_t i = 0; i < watched.size(); ++i) {
      const double e = rel_err(grad_of(watched[i]), pg[i]);
      eg = std::max(eg, e);
      if (i + 2 >= watched.size()) ein = std::max(ein, e);
    }
    qInfo("reversible (%s): grads rel err %.2e (inputs %.2e)", sizeof(T) == 4 ? "float" : "double",
          eg, ein);
    QVERIFY(eg <= grad_tol);
    // The parameter gradients are not all zero (the check above compares
    // something).
    double mx = 0;
    for (const auto& g : pg)
      for (T v : g) mx = std::max(mx, std::abs(static_cast<double>(v)));
    QVERIFY(mx > 0.1);
  }
};

QTEST_APPLESS_MAIN(TestTrainOps)
#include "test_train_ops.moc"
