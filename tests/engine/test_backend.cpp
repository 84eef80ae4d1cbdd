// Backend selection: asking for CUDA on a machine without a device or driver gives the CPU
// and one line saying why, never a crash; asking for the CPU gives the CPU. The same for a
// model (model_create_placed): the CPU model runs whatever the device cannot.
#include <QtTest>

#include "attnscope/backend.h"
#include "attnscope/cuda.h"
#include "attnscope/model.h"

using namespace attnscope;

class TestBackend : public QObject {
  Q_OBJECT
 private slots:
  void cpu_when_asked() {
    auto c = backend_select(false);
    QCOMPARE(c.kind, BackendKind::kCpu);
    QCOMPARE(QString::fromStdString(c.note), QString("backend: cpu"));
  }
  void cuda_only_with_a_device() {
    std::string why;
    const int devices = backend_cuda_device_count(&why);
    auto c = backend_select(true);
    if (devices == 0) {
      QCOMPARE(c.kind, BackendKind::kCpu);
      QVERIFY2(!why.empty(), "no device must come with a reason");
      QVERIFY(c.note.find(why) != std::string::npos);
      QVERIFY(c.note.find('\n') == std::string::npos);
      qInfo("SKIP: no CUDA device here (%s); checked the CPU fallback", why.c_str());
    } else {
      QCOMPARE(c.kind, BackendKind::kCuda);
    }
  }

  void supported_ops_are_named() {
#ifdef ATTNSCOPE_HAVE_CUDA
    const bool built = true;
#else
    const bool built = false;
#endif
    for (const char* op :
         {"matmul", "attn_dense", "attn_sparse", "attn_lsh", "decode_dense", "decode_sparse",
          "sample", "attn_dense_backward", "attn_sparse_backward", "layernorm_backward"})
      QVERIFY2(backend_cuda_supports(op) == built, op);
    // Declined everywhere: they run on the CPU.
    for (const char* op : {"decode_lsh", "attn_lsh_backward", "no_such_op", ""})
      QVERIFY2(!backend_cuda_supports(op), op);
    QVERIFY(!backend_cuda_supports(nullptr));
  }

  static ModelConfig small(Family f) {
    ModelConfig c;
    c.family = f;
    c.modality = *modality_parse("image:8x8x3");
    c.layers = 2;
    c.dim = 32;
    c.heads = 4;
    c.seed = 1;
    if (!config_resolve(c)) qFatal("config");
    return c;
  }

  void model_placed_on_cpu_or_device() {
    const ModelConfig c = small(Family::kSparse);
    const WeightMap w = model_init_weights(c, InitOptions{1, false});
    auto cpu = model_create_placed(c, w, false, CudaPrecision::kF32, ModelUse::kGenerate);
    QVERIFY(cpu.has_value());
    QVERIFY(!cpu->on_cuda);
    QCOMPARE(QString::fromStdString(cpu->note), QString("backend: cpu"));

    // The placed CPU model is the ordinary one: the same logits as model_create's.
    std::vector<uint8_t> x(static_cast<size_t>(c.seq_len()));
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<uint8_t>(i * 29 + 3);
    auto plain = model_create(c, w);
    QVERIFY(plain.has_value() && *plain);
    Tensor a, b;
    int64_t r0 = 0, r1 = 0;
    QVERIFY(cpu->model->forward(x.data(), c.seq_len(), &a, &r0, nullptr).is_ok());
    QVERIFY((*plain)->forward(x.data(), c.seq_len(), &b, &r1, nullptr).is_ok());
    QCOMPARE(a.numel(), b.numel());
    QVERIFY(std::equal(a.data(), a.data() + a.numel(), b.data()));

    std::string why;
    auto want = model_create_placed(c, w, true, CudaPrecision::kBF16, ModelUse::kGenerate);
    QVERIFY(want.has_value());
    QVERIFY(want->model);
    QVERIFY(want->note.find('\n') == std::string::npos);
    if (cuda_available(&why).is_ok()) {
      QVERIFY(want->on_cuda);
      QVERIFY2(want->note.rfind("backend: cuda (", 0) == 0, want->note.c_str());
      QVERIFY(want->note.find("bf16") != std::string::npos);
    } else {
      QVERIFY(!want->on_cuda);
      auto st = cuda_available(&why);
      QCOMPARE(QString::fromStdString(want->note),
               QString::fromStdString("backend: cpu (" + st.message() + ")"));
      qInfo("SKIP: no CUDA device here (%s); checked the CPU fallback", st.message().c_str());
    }
  }

  void reformer_generates_on_cpu() {
    const ModelConfig c = small(Family::kReformer);
    auto placed = model_create_placed(c, model_init_weights(c, InitOptions{1, false}), true,
                                      CudaPrecision::kF32, ModelUse::kGenerate);
    QVERIFY(placed.has_value());
    QVERIFY(!placed->on_cuda);
    QVERIFY2(placed->note.rfind("backend: cpu (", 0) == 0, placed->note.c_str());
  }

  void invalid_model_is_an_error_not_a_fallback() {
    ModelConfig c = small(Family::kDense);
    WeightMap w = model_init_weights(c, InitOptions{1, false});
    w.erase(w.begin());  // a weight missing
    for (bool want : {false, true}) {
      auto placed = model_create_placed(c, w, want, CudaPrecision::kF32, ModelUse::kForward);
      QVERIFY(!placed.has_value());
      QCOMPARE(placed.status().code(), StatusCode::kInvalidArgument);
      QVERIFY(!placed.status().message().empty());
    }
  }
};

QTEST_APPLESS_MAIN(TestBackend)
#include "test_backend.moc"
