// Every op of the families' executors, CUDA against CPU, in the manner of ggml's test-backend-ops:
// the same random inputs through the training tape's op (a quiet Tape<float>, the CPU executor)
// and the CUDA executor's (exec/device_graph.h), compared with a stated tolerance per op and
// precision. Shapes include ragged ones (rows not a multiple of any tile, 1 row).
//
// Without a CUDA build or device it prints "SKIP: <reason>" and exits 77, which CTest reports as
// skipped (SKIP_RETURN_CODE), not passed.
#include <QtTest>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "attnscope/cuda.h"
#include "attnscope/model.h"
#include "cuda_checks.h"

#ifdef ATTNSCOPE_HAVE_CUDA
#include "exec/device_graph.h"
#include "exec/tape_attn.h"
#include "exec/tape_ops.h"
#endif

using namespace attnscope;
using namespace cuda_checks;

#ifdef ATTNSCOPE_HAVE_CUDA

namespace {

using exec::DeviceGraph;
using exec::DVar;
using tape::Tape;
using tape::Var;

// One op's inputs on both executors.
struct Both {
  Var<float> c;
  DVar g;
};

class TestBackendOps : public QObject {
  Q_OBJECT

  std::shared_ptr<exec::DeviceRuntime> rt_;
  CudaPrecision precision_ = CudaPrecision::kF32;
  uint64_t seed_ = 1;

  Both input(DeviceGraph& g, int64_t rows, int64_t cols, double scale = 1.0) {
    const auto x = random_vec(seed_++, static_cast<size_t>(rows * cols), scale);
    return {tape::make_param<float>(rows, cols, x.data()), exec::upload(g, x.data(), rows, cols)};
  }
  // The device value's numbers against the CPU value's.
  void compare(DeviceGraph& g, const Var<float>& c, const DVar& d, double tol, const char* what) {
    QCOMPARE(d->rows, c->rows);
    QCOMPARE(d->cols, c->cols);
    std::vector<float> got(static_cast<size_t>(d->numel()));
    CHECK_OK(exec::download(g, d, got.data()));
    CHECK_CLOSE(got, c->data, tol, what);
  }
  // A runtime whose products and attention run at p (the tolerance follows it).
  std::shared_ptr<exec::DeviceRuntime> runtime(CudaPrecision p) {
    precision_ = p;
    auto rt = exec::device_runtime_create(p);
    return rt ? *rt : nullptr;
  }
  // Matrix products and attention run at the precision; elementwise ops are float32 always.
  double tol() const { return tol_of(precision_); }

 private slots:
  void initTestCase() {
    auto rt = exec::device_runtime_create(CudaPrecision::kF32);
    if (!rt) {
      std::printf("SKIP: %s\n", rt.status().message().c_str());
      std::fflush(stdout);
      std::exit(kSkipExit);
    }
    rt_ = *rt;
  }

  void elementwise_and_rows() {
    Tape<float> t(false);
    DeviceGraph g(rt_);
    for (int64_t rows : {int64_t{1}, int64_t{37}, int64_t{130}}) {
      Both x = input(g, rows, 96), y = input(g, rows, 96);
      Both gam = input(g, 1, 96), bet = input(g, 1, 96);
      compare(g, tape::layernorm(t, x.c, gam.c, bet.c), exec::layernorm(g, x.g, gam.g, bet.g),
              kTolF32, "layernorm");
      compare(g, tape::gelu(t, x.c), exec::gelu(g, x.g), kTolF32, "gelu");
      compare(g, tape::add(t, x.c, y.c), exec::add(g, x.g, y.g), kTolF32, "add");
      compare(g, tape::scale(t, x.c, 0.5f), exec::scale(g, x.g, 0.5f), kTolF32, "scale");
      compare(g, tape::slice_rows(t, x.c, rows / 3, rows - rows / 3),
              exec::slice_rows(g, x.g, rows / 3, rows - rows / 3), 0, "slice_rows");
      compare(g, tape::concat_rows(t, {x.c, y.c, x.c}), exec::concat_rows(g, {x.g, y.g, x.g}), 0,
              "concat_rows");
      compare(g, tape::reshape(t, x.c, rows * 2, 48), exec::reshape(g, x.g, rows * 2, 48), 0,
              "reshape");
      for (int64_t k : {int64_t{2}, int64_t{3}}) {
        const int64_t out = (rows + k - 1) / k * k;
        compare(g, tape::shift_rows(t, x.c, k - 1, out), exec::shift_rows(g, x.g, k - 1, out), 0,
                "shift_rows");
        Both cat = input(g, out, 96);
        compare(g, tape::mean_groups(t, cat.c, k), exec::mean_groups(g, cat.g, k), kTolF32,
                "mean_groups");
        compare(g, tape::repeat_rows(t, x.c, k), exec::repeat_rows(g, x.g, k), 0, "repeat_rows");
      }
    }
    CHECK_OK(g.status());
  }

  void products_data() {
    QTest::addColumn<int>("precision");
    for (CudaPrecision p : kAll) QTest::newRow(cuda_precision_name(p)) << static_cast<int>(p);
  }
  void products() {
    QFETCH(int, precision);
    auto rt = runtime(static_cast<CudaPrecision>(precision));
    QVERIFY(rt);
    Tape<float> t(false);
    DeviceGraph g(rt);
    for (int64_t rows : {int64_t{1}, int64_t{77}, int64_t{300}}) {
      Both x = input(g, rows, 64), w = input(g, 64, 200, 0.1), b = input(g, 1, 200);
      compare(g, tape::linear(t, x.c, w.c, b.c), exec::linear(g, x.g, w.g, b.g), tol(), "linear");
      compare(g, tape::linear(t, x.c, w.c, Var<float>()), exec::linear(g, x.g, w.g, DVar()), tol(),
              "linear without bias");
      // The FFN half and the head, under their model-file names.
      std::map<std::string, Var<float>> pc;
      exec::DParams pg;
      auto put = [&](const std::string& name, int64_t r, int64_t c, double s) {
        Both v = input(g, r, c, s);
        pc[name] = v.c;
        pg[name] = v.g;
      };
      put("blocks.0.ln2.weight", 1, 64, 1), put("blocks.0.ln2.bias", 1, 64, 1);
      put("blocks.0.ff.w1", 64, 256, 0.1), put("blocks.0.ff.b1", 1, 256, 1);
      put("blocks.0.ff.w2", 256, 64, 0.1), put("blocks.0.ff.b2", 1, 64, 1);
      put("final_ln.weight", 1, 64, 1), put("final_ln.bias", 1, 64, 1);
      put("head.weight", 64, 256, 0.1), put("head.bias", 1, 256, 1);
      compare(g, tape::ffn_block(t, pc, "blocks.0.", x.c, 1),
              exec::ffn_block(g, pg, "blocks.0.", x.g, 1), tol(), "ffn_block");
      compare(g, tape::head_logits(t, pc, x.c), exec::head_logits(g, pg, x.g), tol(),
              "head_logits");
    }
    CHECK_OK(g.status());
  }

  void embedding() {
    ModelConfig cfg;
    cfg.modality = *modality_parse("image:6x5x3");
    cfg.dim = 64;
    cfg.heads = 2;
    cfg.layers = 1;
    CHECK_OK(config_resolve(cfg));
    const WeightMap w = model_init_weights(cfg, InitOptions{5, false});
    Tape<float> t(false);
    DeviceGraph g(rt_);
    std::map<std::string, Var<float>> pc;
    exec::DParams pg;
    for (const auto& [name, tensor] : w) {
      const int64_t rows = tensor.rank() == 1 ? 1 : tensor.dim(0);
      pc[name] = tape::make_param<float>(rows, tensor.numel() / rows, tensor.data());
      pg[name] = exec::upload(g, tensor.data(), rows, tensor.numel() / rows);
    }
    std::vector<uint8_t> x(90);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<uint8_t>(i * 37 + 11);
    for (auto [p0, count] : {std::pair<int64_t, int64_t>{0, 90}, {0, 1}, {17, 1}, {31, 40}})
      compare(g, tape::embed(t, pc, cfg, x.data(), p0, count),
              exec::embed(g, pg, cfg, x.data(), p0, count), 0, "embed");
    CHECK_OK(g.status());
  }

  void attention_data() {
    QTest::addColumn<QString>("kind");
    QTest::addColumn<int>("precision");
    for (const char* k : {"causal", "causal-offset", "strided", "fixed", "lsh"})
      for (CudaPrecision p : kAll)
        if (p == CudaPrecision::kF32 || std::string(k) != "lsh")  // bucket ids flip under rounding
          QTest::addRow("%s/%s", k, cuda_precision_name(p)) << QString(k) << static_cast<int>(p);
  }
  void attention() {
    QFETCH(QString, kind);
    QFETCH(int, precision);
    auto rt = runtime(static_cast<CudaPrecision>(precision));
    QVERIFY(rt);
    Tape<float> t(false);
    DeviceGraph g(rt);
    const int heads = 2, d = 64;
    const int64_t n = 200, nq = kind == "causal-offset" ? 75 : n;
    tape::TrainAttnSpec spec;
    spec.store_probs = false;
    std::vector<float> rot;
    if (kind == "causal-offset") spec.q_offset = n - nq;
    if (kind == "strided" || kind == "fixed") {
      spec.kind = tape::TrainAttnKind::kSparse;
      spec.sparse.pattern = kind == "strided" ? SparsePattern::kStrided : SparsePattern::kFixed;
      spec.sparse.stride = 16;
      spec.sparse.block = 16;
      spec.sparse.summary = 4;
      spec.layer = 1;
    }
    if (kind == "lsh") {
      spec.kind = tape::TrainAttnKind::kLsh;
      spec.lsh = {2, 16, 8};
      rot = attn_lsh_rotations(3, 0, 2, d, 8);
      spec.rotations = rot.data();
      spec.view_layer = 0;
    }
    Both q = input(g, nq, heads * d), k = input(g, n, heads * d), v = input(g, n, heads * d);
    const Both& kk = kind == "lsh" ? q : k;
    compare(g, tape::attention(t, q.c, kk.c, v.c, heads, spec),
            exec::attention(g, q.g, kk.g, v.g, heads, spec), tol(), qPrintable(kind));
    CHECK_OK(g.status());
  }
};

}  // namespace

QTEST_APPLESS_MAIN(TestBackendOps)
#include "test_backend_ops.moc"

#else  // no CUDA backend in this build

int main() {
  std::printf("SKIP: this build has no CUDA backend (configure with nvcc on the PATH)\n");
  return cuda_checks::kSkipExit;
}

#endif
