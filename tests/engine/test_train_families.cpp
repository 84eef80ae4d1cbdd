// Tests of the training graphs (models/graph.h) of every family: the forward
// equals Model::forward, the backward equals finite differences in double, the
// memory techniques change nothing but memory, and Perceiver AR's cross dropout
// acts only when asked.
#include <QtTest>
#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "attnscope/model.h"
#include "core/rng.h"
#include "model_checks.h"
#include "models/graph.h"

using namespace attnscope;
using namespace attnscope::tape;

namespace {

struct Case {
  std::string name;
  ModelConfig cfg;
};

// Tiny models: D = 16, H = 2 (d = 8), 2 layers, F = 32, 48 positions.
ModelConfig tiny(Family f, const std::string& modality = "text:48") {
  ModelConfig c;
  c.family = f;
  c.modality = *modality_parse(modality);
  c.layers = 2;
  c.dim = 16;
  c.heads = 2;
  c.ff_dim = 32;
  c.seed = 7;
  return c;
}

ModelConfig sparse_cfg(SparsePattern pattern, SparseCombine combine) {
  ModelConfig c = tiny(Family::kSparse);
  c.sparse.pattern = pattern;
  c.sparse.combine = combine;
  c.sparse.block = 16;
  c.sparse.stride = 16;
  c.sparse.summary = 4;
  return c;
}

ModelConfig reformer_cfg(bool reversible) {
  ModelConfig c = tiny(Family::kReformer);
  c.lsh.n_hashes = 2;
  c.lsh.chunk = 4;
  c.lsh.n_buckets = 4;
  c.lsh.ff_chunks = 3;
  c.lsh.reversible = reversible;
  return c;
}

ModelConfig perceiver_cfg() {
  ModelConfig c = tiny(Family::kPerceiverAR);
  c.perceiver.latents = 16;
  return c;
}

ModelConfig hourglass_cfg(const std::string& hierarchy, HourglassPool pool, HourglassUpsample up) {
  ModelConfig c = tiny(Family::kHourglass);
  c.hourglass.hierarchy = hierarchy;
  c.hourglass.pool = pool;
  c.hourglass.upsample = up;
  return c;
}

std::vector<Case> all_cases() {
  return {
      {"dense text", tiny(Family::kDense)},
      {"dense image", tiny(Family::kDense, "image:4x4x3")},
      {"sparse strided", sparse_cfg(SparsePattern::kStrided, SparseCombine::kInterleaved)},
      {"sparse fixed merged", sparse_cfg(SparsePattern::kFixed, SparseCombine::kMerged)},
      {"reformer reversible", reformer_cfg(true)},
      {"reformer plain", reformer_cfg(false)},
      {"perceiver", perceiver_cfg()},
      {"hourglass k=2 average/repeat",
       hourglass_cfg("1@1,1@2,1@1", HourglassPool::kAverage, HourglassUpsample::kRepeat)},
      {"hourglass k=3 linear/linear",
       hourglass_cfg("1@1,1@3,1@1", HourglassPool::kLinear, HourglassUpsample::kLinear)},
      {"hourglass nested k=2,3 linear/repeat",
       hourglass_cfg("1@1,1@2,1@6,1@2,1@1", HourglassPool::kLinear, HourglassUpsample::kRepeat)},
  };
}

// The model's own init with logits on, the matrices scaled up so that attention
// scores and block outputs are O(1) (a wrong mask, key or weight then shows in
// the logits), and every tensor (layer norms and biases included) moved off its
// init so that each one matters.
WeightMap test_weights(const ModelConfig& in) {
  ModelConfig cfg = in;
  if (!config_resolve(cfg).is_ok()) return {};
  WeightMap w = model_init_weights(cfg, InitOptions{5, /*zero_logits=*/false});
  Rng rng(99);
  for (auto& [name, t] : w) {
    auto has = [&](const char* part) { return name.find(part) != std::string::npos; };
    const bool scaled =
        (has("attn.w") || has("ff.w") || has("embed.") || has("shorten.") || has("upsample.")) &&
        !has("bias");
    for (int64_t e = 0; e < t.numel(); ++e) {
      if (scaled) t.data()[e] *= 20.0f;
      t.data()[e] += static_cast<float>(0.1 * rng.normal());
    }
  }
  return w;
}

template <typename T>
double loss_value(const ModelConfig& cfg, const ParamSet<T>& p, const std::vector<uint8_t>& x,
                  int64_t n, const GraphOptions& opt) {
  Tape<T> tape(false);
  auto loss = graph_loss(tape, cfg, p, x.data(), n, opt);
  if (!loss) qFatal("graph_loss: %s", loss.status().message().c_str());
  return static_cast<double>((*loss)->data[0]);
}

// Loss and every parameter's gradient (float) of one forward + backward.
struct Grads {
  double loss = 0;
  int64_t rows = 0;
  std::map<std::string, std::vector<double>> g;
};
Grads float_grads(const ModelConfig& cfg, const WeightMap& w, const std::vector<uint8_t>& x,
                  int64_t n, const GraphOptions& opt) {
  Grads out;
  ParamSet<float> p = params_from_weights<float>(cfg, w);
  Tape<float> tape;
  auto loss = graph_loss(tape, cfg, p, x.data(), n, opt, &out.rows);
  if (!loss) qFatal("graph_loss: %s", loss.status().message().c_str());
  out.loss = (*loss)->data[0];
  tape.backward(*loss);
  for (const auto& [name, v] : p) {
    std::vector<double>& g = out.g[name];
    g.assign(static_cast<size_t>(v->numel()), 0.0);
    if (v->has_grad())
      for (int64_t e = 0; e < v->numel(); ++e) g[static_cast<size_t>(e)] = v->grad[e];
  }
  return out;
}

// Largest gradient difference of any tensor relative to that tensor's largest
// gradient.
double grads_err(const Grads& a, const Grads& b, std::string* worst) {
  double err = 0;
  for (const auto& [name, gb] : b.g) {
    const auto& ga = a.g.at(name);
    double scale = 0, diff = 0;
    for (size_t e = 0; e < gb.size(); ++e) {
      scale = std::max(scale, std::abs(gb[e]));
      diff = std::max(diff, std::abs(ga[e] - gb[e]));
    }
    const double rel = diff / std::max(scale, 1e-12);
    if (rel > err) {
      err = rel;
      *worst = name;
    }
  }
  return err;
}

}  // namespace

class TestTrainFamilies : public QObject {
  Q_OBJECT

 private slots:
  // Weights survive the round trip to tape parameters and back, in the file's
  // shapes.
  void params_round_trip() {
    for (const Case& c : all_cases()) {
      const WeightMap w = test_weights(c.cfg);
      const ParamSet<float> p = params_from_weights<float>(c.cfg, w);
      QCOMPARE(p.size(), w.size());
      QCOMPARE(p.at("embed.bos")->rows, int64_t{1});
      QCOMPARE(p.at("head.weight")->rows, int64_t{16});
      QCOMPARE(p.at("head.weight")->cols, int64_t{kVocab});
      const WeightMap back = params_to_weights(c.cfg, p);
      QCOMPARE(back.size(), w.size());
      for (const auto& [name, t] : w) {
        const Tensor& b = back.at(name);
        QVERIFY2(b.shape() == t.shape(), (c.name + ": " + name).c_str());
        QVERIFY(std::equal(t.data(), t.data() + t.numel(), b.data()));
      }
    }
  }

  // The graph's hidden rows through the head equal Model::forward's logits, at
  // full length, at lengths that are not multiples of the hourglass factors,
  // and (Perceiver AR) below M.
  void forward_matches_model() {
    for (const Case& c : all_cases()) {
      const WeightMap w = test_weights(c.cfg);
      auto m = model_create(c.cfg, w);
      QVERIFY2(m.has_value(), m.status().message().c_str());
      const ParamSet<float> p = params_from_weights<float>(c.cfg, w);
      for (int64_t n : {48, 47, 37, 10}) {
        const auto x = random_tokens(static_cast<uint64_t>(n) * 31 + 1, n);
        Tensor logits;
        int64_t first = -1;
        QVERIFY((*m)->forward(x.data(), n, &logits, &first).is_ok());
        Tape<float> tape(false);
        auto gh = graph_hidden(tape, c.cfg, p, x.data(), n, GraphOptions{});
        QVERIFY2(gh.has_value(), gh.status().message().c_str());
        QCOMPARE(gh->first_row, first);
        Var<float> lg = head_logits(tape, p, gh->hidden);
        QCOMPARE(lg->rows, logits.dim(0));
        QCOMPARE(lg->cols, int64_t{kVocab});
        // |a - b| / max(1, |b|); float kernels that sum in different orders
        // differ by ~1e-6.
        const double err = max_err(lg->data.data(), logits.data(), logits.numel());
        QVERIFY2(err <= 1e-4,
                 (c.name + " n=" + std::to_string(n) + " err " + std::to_string(err)).c_str());
      }
    }
  }

  // The backward (double) against central differences of the loss for entries
  // of every tensor.
  void backward_matches_finite_differences() {
    std::vector<Case> cases = all_cases();
    ModelConfig dropped = perceiver_cfg();
    dropped.perceiver.cross_dropout = 0.4;
    cases.push_back({"perceiver cross dropout 0.4", dropped});
    const int64_t n = 48;
    const auto x = random_tokens(17, n);
    for (const Case& c : cases) {
      const WeightMap w = test_weights(c.cfg);
      ParamSet<double> p = params_from_weights<double>(c.cfg, w);
      GraphOptions opt;
      opt.dropout_seed = 3;
      Tape<double> tape;
      auto loss = graph_loss(tape, c.cfg, p, x.data(), n, opt);
      QVERIFY2(loss.has_value(), loss.status().message().c_str());
      tape.backward(*loss);
      // One entry of every tensor, then random tensors up to 30 entries; token
      // rows are drawn among the tokens the sequence feeds (other rows have
      // zero gradient).
      std::vector<std::string> names;
      for (const auto& kv : p) names.push_back(kv.first);
      Rng rng(derive_seed(5, names.size()));
      std::vector<std::pair<std::string, int64_t>> picks;
      for (size_t i = 0; picks.size() < std::max<size_t>(30, names.size()); ++i) {
        const std::string& name =
            i < names.size() ? names[i] : names[rng.next_u64() % names.size()];
        const Value<double>& v = *p.at(name);
        int64_t e = static_cast<int64_t>(rng.next_u64() % static_cast<uint64_t>(v.numel()));
        if (name == "embed.token")
          e = x[rng.next_u64() % static_cast<uint64_t>(n - 1)] * v.cols + e % v.cols;
        picks.push_back({name, e});
      }
      // eps 1e-5: truncation ~eps^2 |L'''| and rounding ~1e-16 / eps are both
      // ~1e-10, far below the 1e-5 relative bound for gradients of 1e-3 and up
      // (the floor below).
      const double eps = 1e-5;
      double worst = 0;
      std::string worst_at;
      int nonzero = 0;
      for (const auto& [name, e] : picks) {
        Value<double>& v = *p.at(name);
        const double keep = v.data[static_cast<size_t>(e)];
        v.data[static_cast<size_t>(e)] = keep + eps;
        const double lp = loss_value(c.cfg, p, x, n, opt);
        v.data[static_cast<size_t>(e)] = keep - eps;
        const double lm = loss_value(c.cfg, p, x, n, opt);
        v.data[static_cast<size_t>(e)] = keep;
        const double fd = (lp - lm) / (2 * eps);
        const double an = v.has_grad() ? v.grad[static_cast<size_t>(e)] : 0.0;
        nonzero += std::abs(an) > 1e-6;
        const double rel = std::abs(fd - an) / std::max(std::abs(an), 1e-3);
        if (rel > worst) {
          worst = rel;
          worst_at = name + "[" + std::to_string(e) + "] fd " + std::to_string(fd) + " an " +
                     std::to_string(an);
        }
      }
      qInfo("%s: worst FD relative error %.2e (%s)", c.name.c_str(), worst, worst_at.c_str());
      QVERIFY2(worst <= 1e-5, (c.name + ": " + worst_at).c_str());
      // Most picked entries carry a real gradient (the check is not vacuous).
      QVERIFY2(nonzero >= static_cast<int>(picks.size()) * 2 / 3, c.name.c_str());
    }
  }

  // Recomputed attention, recomputed blocks, chunked FFN and logits, and the
  // reversible stack give the stored default's loss and gradients.
  void techniques_match_stored() {
    const int64_t n = 48;
    const auto x = random_tokens(23, n);
    for (const Case& c : all_cases()) {
      const WeightMap w = test_weights(c.cfg);
      const Grads base = float_grads(c.cfg, w, x, n, GraphOptions{});
      QCOMPARE(base.rows, c.cfg.family == Family::kPerceiverAR ? int64_t{16} : n);
      std::vector<std::pair<std::string, GraphOptions>> variants;
      GraphOptions o;
      o.store_attention = false;
      variants.push_back({"recomputed attention", o});
      o = {};
      o.recompute_blocks = true;
      variants.push_back({"recomputed blocks", o});
      o = {};
      o.ff_chunks = 3;
      variants.push_back({"ff chunks 3", o});
      o = {};
      o.logit_chunks = 3;
      variants.push_back({"logit chunks 3", o});
      o = {};
      o.store_attention = false;
      o.recompute_blocks = true;
      o.ff_chunks = 5;
      o.logit_chunks = 7;
      variants.push_back({"all of them", o});
      if (c.cfg.family == Family::kReformer && c.cfg.lsh.reversible) {
        o = {};
        o.reversible = true;
        variants.push_back({"reversible", o});
        o.store_attention = false;
        o.ff_chunks = 4;
        o.logit_chunks = 4;
        variants.push_back({"reversible preset", o});
      }
      double worst_all = 0;
      for (const auto& [vname, opt] : variants) {
        const Grads g = float_grads(c.cfg, w, x, n, opt);
        const std::string label = c.name + ", " + vname;
        QVERIFY2(std::abs(g.loss - base.loss) <= 1e-4 * std::max(1.0, std::abs(base.loss)),
                 label.c_str());
        std::string worst;
        const double err = grads_err(g, base, &worst);
        // Float rounding of different summation orders and of rebuilding inputs
        // from outputs: ~1e-6 relative; the acceptance bound is 1e-4.
        QVERIFY2(err <= 1e-4, (label + ": " + worst + " " + std::to_string(err)).c_str());
        worst_all = std::max(worst_all, err);
      }
      qInfo("%s: techniques' largest relative gradient difference %.2e", c.name.c_str(), worst_all);
    }
  }

  // A window (GraphOptions::pos0) is the model run as if the sequence began at pos0 with
  // x[pos0 - 1] for its BOS: its loss and gradients equal those of the window's tokens from
  // position 0 under weights whose row embeddings are moved up by pos0 / pos_width rows and
  // whose BOS is the embedding of x[pos0 - 1]. Dense and both sparse patterns (their masks
  // depend on i - j alone once pos0 is a multiple of the stride).
  void window_equals_shifted_sequence() {
    for (const Case& c : std::vector<Case>{
             {"dense text", tiny(Family::kDense)},
             {"sparse strided interleaved",
              sparse_cfg(SparsePattern::kStrided, SparseCombine::kInterleaved)},
             {"sparse fixed merged", sparse_cfg(SparsePattern::kFixed, SparseCombine::kMerged)}}) {
      ModelConfig cfg = c.cfg;
      QVERIFY(config_resolve(cfg).is_ok());
      // Dense: 3 rows of 7 in; sparse (stride 16): one stride in, spanning two more.
      const int64_t W = cfg.pos_width, pos0 = cfg.family == Family::kDense ? 3 * W : W;
      const int64_t m = cfg.family == Family::kDense ? 24 : 32;
      QVERIFY(pos0 + m <= cfg.seq_len());
      QVERIFY(pos0 % graph_window_align(cfg) == 0);
      const auto x = random_tokens(11, cfg.seq_len());
      const WeightMap w = test_weights(cfg);
      GraphOptions win;
      win.pos0 = pos0;
      const Grads a = float_grads(cfg, w, x, m, win);

      WeightMap shifted = test_weights(cfg);
      const int64_t D = cfg.dim, rows = pos0 / W;
      const Tensor& row = w.at("embed.pos_row");
      Tensor& srow = shifted.at("embed.pos_row");
      for (int64_t r = 0; r + rows < row.shape()[0]; ++r)
        std::copy_n(row.data() + (r + rows) * D, D, srow.data() + r * D);
      std::copy_n(w.at("embed.token").data() + x[static_cast<size_t>(pos0 - 1)] * D, D,
                  shifted.at("embed.bos").data());
      const std::vector<uint8_t> y(x.begin() + pos0, x.end());
      const Grads b = float_grads(cfg, shifted, y, m, GraphOptions{});

      QCOMPARE(a.rows, m);
      QVERIFY2(
          std::abs(a.loss - b.loss) <= 1e-6 * std::abs(b.loss),
          qPrintable(
              QString("%1: window %2, shifted %3").arg(c.name.c_str()).arg(a.loss).arg(b.loss)));
      // The window's row-embedding gradient sits rows further up; the rows below the window
      // get none. Every other tensor's gradient is the shifted run's, BOS aside (the window
      // puts it on the token x[pos0 - 1]).
      const auto& ga = a.g.at("embed.pos_row");
      const auto& gb = b.g.at("embed.pos_row");
      double scale = 0, diff = 0;
      for (int64_t e = 0; e < rows * D; ++e) diff = std::max(diff, std::abs(ga[e]));
      for (int64_t e = rows * D; e < static_cast<int64_t>(ga.size()); ++e) {
        scale = std::max(scale, std::abs(gb[static_cast<size_t>(e - rows * D)]));
        diff = std::max(diff, std::abs(ga[e] - gb[static_cast<size_t>(e - rows * D)]));
      }
      QVERIFY2(scale > 0 && diff <= 1e-5 * scale, c.name.c_str());
      for (const auto& [name, g] : b.g) {
        if (name == "embed.pos_row" || name == "embed.bos" || name == "embed.token") continue;
        double sc = 0, df = 0;
        for (size_t e = 0; e < g.size(); ++e) {
          sc = std::max(sc, std::abs(g[e]));
          df = std::max(df, std::abs(a.g.at(name)[e] - g[e]));
        }
        QVERIFY2(
            df <= 1e-5 * std::max(sc, 1e-12),
            qPrintable(
                QString("%1: %2 differs by %3").arg(c.name.c_str()).arg(name.c_str()).arg(df)));
      }
    }
  }

  // Windows are refused where attention depends on absolute positions, off the pattern's
  // period, and past the model's end.
  void window_refusals() {
    const auto x = random_tokens(3, 48);
    for (const ModelConfig& cfg :
         {reformer_cfg(true), perceiver_cfg(),
          hourglass_cfg("1@1,1@2,1@1", HourglassPool::kAverage, HourglassUpsample::kRepeat)}) {
      ModelConfig r = cfg;
      QVERIFY(config_resolve(r).is_ok());
      QCOMPARE(graph_window_align(r), int64_t{0});
      const ParamSet<float> p = params_from_weights<float>(cfg, test_weights(cfg));
      Tape<float> tape;
      GraphOptions win;
      win.pos0 = 16;
      auto loss = graph_loss(tape, cfg, p, x.data(), 16, win);
      QVERIFY(!loss.has_value());
      QVERIFY2(loss.status().message().find("dense or sparse") != std::string::npos,
               loss.status().message().c_str());
    }
    const ModelConfig cfg = sparse_cfg(SparsePattern::kStrided, SparseCombine::kInterleaved);
    const ParamSet<float> p = params_from_weights<float>(cfg, test_weights(cfg));
    Tape<float> tape;
    GraphOptions win;
    win.pos0 = 8;  // the stride is 16
    auto off = graph_loss(tape, cfg, p, x.data(), 16, win);
    QVERIFY(!off.has_value());
    QVERIFY2(off.status().message().find("multiple of 16") != std::string::npos,
             off.status().message().c_str());
    win.pos0 = 32;
    QVERIFY(graph_loss(tape, cfg, p, x.data(), 16, win).has_value());
    QVERIFY(!graph_loss(tape, cfg, p, x.data(), 17, win).has_value());  // ends past 48
  }

  // The reversible backward exists only for a reversible Reformer; bad lengths
  // are refused.
  void refusals() {
    const auto x = random_tokens(3, 48);
    GraphOptions rev;
    rev.reversible = true;
    for (const ModelConfig& cfg : {tiny(Family::kDense), reformer_cfg(false), perceiver_cfg()}) {
      const ParamSet<float> p = params_from_weights<float>(cfg, test_weights(cfg));
      Tape<float> tape;
      auto loss = graph_loss(tape, cfg, p, x.data(), 48, rev);
      QVERIFY(!loss.has_value());
      QVERIFY(loss.status().message().find("reversible") != std::string::npos);
    }
    const ModelConfig cfg = tiny(Family::kDense);
    const ParamSet<float> p = params_from_weights<float>(cfg, test_weights(cfg));
    Tape<float> tape;
    QVERIFY(!graph_loss(tape, cfg, p, x.data(), 0, GraphOptions{}).has_value());
    QVERIFY(!graph_loss(tape, cfg, p, x.data(), 49, GraphOptions{}).has_value());
    ParamSet<float> missing = p;
    missing.erase("blocks.1.ff.b2");
    auto r = graph_loss(tape, cfg, missing, x.data(), 48, GraphOptions{});
    QVERIFY(!r.has_value());
    QVERIFY(r.status().message().find("blocks.1.ff.b2") != std::string::npos);
  }

  // Cross dropout changes the loss when the rate is above 0 (from the options
  // or the config), reproducibly per seed; at 0 the loss is exactly the
  // inference forward's.
  void perceiver_cross_dropout() {
    const int64_t n = 48;
    const auto x = random_tokens(29, n);
    ModelConfig cfg = perceiver_cfg();
    const WeightMap w = test_weights(cfg);
    const ParamSet<float> p = params_from_weights<float>(cfg, w);
    GraphOptions opt;
    const double plain = loss_value(cfg, p, x, n, opt);
    // The forward's own loss: mean -log softmax over rows first..n-1.
    auto m = model_create(cfg, w);
    QVERIFY(m.has_value());
    Tensor logits;
    int64_t first = 0;
    QVERIFY((*m)->forward(x.data(), n, &logits, &first).is_ok());
    double nats = 0;
    for (int64_t r = 0; r < logits.dim(0); ++r) {
      const float* row = logits.data() + r * kVocab;
      double mx = row[0], s = 0;
      for (int i = 0; i < kVocab; ++i) mx = std::max(mx, static_cast<double>(row[i]));
      for (int i = 0; i < kVocab; ++i) s += std::exp(row[i] - mx);
      nats += mx + std::log(s) - row[x[static_cast<size_t>(first + r)]];
    }
    nats /= static_cast<double>(logits.dim(0));
    QVERIFY2(std::abs(plain - nats) <= 1e-5 * nats, "loss differs from the forward's");

    opt.cross_dropout = 0.0;
    QCOMPARE(loss_value(cfg, p, x, n, opt), plain);
    opt.cross_dropout = 0.5;
    opt.dropout_seed = 1;
    const double d1 = loss_value(cfg, p, x, n, opt);
    QVERIFY2(std::abs(d1 - plain) > 1e-4, "dropout 0.5 left the loss unchanged");
    QCOMPARE(loss_value(cfg, p, x, n, opt), d1);  // same seed, same subset
    opt.dropout_seed = 2;
    QVERIFY(std::abs(loss_value(cfg, p, x, n, opt) - d1) > 1e-6);
    // The config's rate is taken when the options leave it unset; options
    // override it.
    cfg.perceiver.cross_dropout = 0.5;
    opt.cross_dropout = -1;
    opt.dropout_seed = 1;
    QCOMPARE(loss_value(cfg, p, x, n, opt), d1);
    opt.cross_dropout = 0;
    QCOMPARE(loss_value(cfg, p, x, n, opt), plain);
    // With no context (n <= M) there is nothing to drop.
    opt.cross_dropout = 0.5;
    GraphOptions none;
    QCOMPARE(loss_value(cfg, p, x, 12, opt), loss_value(cfg, p, x, 12, none));
  }
};

QTEST_APPLESS_MAIN(TestTrainFamilies)
#include "test_train_families.moc"
