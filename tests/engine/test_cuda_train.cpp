// Parity of the CUDA backward (training) ops with the CPU training code (engine/train): matrix
// product, layer norm, GELU (the tape's own backward), embedding scatter and cross-entropy
// (double references), fused dense causal and block-sparse attention backward
// (attn_train_backward), gradients added to what the caller holds, and errors as values.
// Without a CUDA build or device the parity tests print a SKIP line and pass; the error test
// runs everywhere.
#include <QtTest>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "attnscope/attention.h"
#include "backend/cuda/testing.h"
#include "core/rng.h"
#include "cuda_checks.h"
#include "exec/tape.h"
#include "exec/tape_attn.h"
#include "exec/tape_ops.h"

using namespace attnscope;
using namespace cuda_checks;

namespace {

// a[i] + b[i].
std::vector<float> plus(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> c(a.size());
  for (size_t i = 0; i < a.size(); ++i) c[i] = a[i] + b[i];
  return c;
}

// A failed call: non-ok with a message; invalid_argument when the device could have run it.
#define CHECK_FAILS(expr, device)                                                               \
  do {                                                                                          \
    const Status _s = (expr);                                                                   \
    QVERIFY2(!_s.is_ok(), #expr " succeeded");                                                  \
    QVERIFY2(!_s.message().empty(), #expr " failed without a message");                         \
    if (device)                                                                                 \
      QVERIFY2(_s.code() == StatusCode::kInvalidArgument, (#expr ": " + _s.message()).c_str()); \
  } while (0)

// CPU attention gradients (attn_train_backward, zero-started) for q, k, v, dout.
struct AttnGrads {
  std::vector<float> dq, dk, dv;
};
AttnGrads cpu_attention_grads(const std::vector<float>& q, const std::vector<float>& k,
                              const std::vector<float>& v, const std::vector<float>& dout,
                              int heads, int64_t nq, int64_t nk, int d,
                              const tape::TrainAttnSpec& spec, Status* st) {
  AttnGrads g;
  std::vector<float> out(q.size());
  std::shared_ptr<tape::AttnSaved<float>> saved;
  *st = tape::attn_train_forward<float>(q.data(), k.data(), v.data(), out.data(), heads, nq, nk, d,
                                        spec, &saved);
  g.dq.assign(q.size(), 0.0f);
  g.dk.assign(k.size(), 0.0f);
  g.dv.assign(v.size(), 0.0f);
  if (st->is_ok())
    tape::attn_train_backward<float>(*saved, dout.data(), g.dq.data(), g.dk.data(), g.dv.data());
  return g;
}

}  // namespace

class TestCudaTrain : public QObject {
  Q_OBJECT

  bool device_ = false;
  std::string why_;

 private slots:
  void initTestCase() {
    std::string info;
    const Status s = cuda_available(&info);
    if (!s.is_ok()) {
      why_ = s.message();
      std::printf("SKIP: %s\n", why_.c_str());
      std::fflush(stdout);
      return;
    }
    device_ = true;
    qInfo("CUDA device: %s", info.c_str());
  }

  // Runs in every build. Without a device each op refuses with a message; with one, valid
  // calls succeed and bad sizes are invalid_argument with a message, never a crash.
  void errors_are_values() {
    const int64_t n = 5, D = 32;
    const auto x = random_vec(1, n * D), y = random_vec(2, n * D), w = random_vec(3, D * D);
    const auto gain = random_vec(6, D);
    std::vector<float> gx(x.size()), gw(w.size()), gg(D), gb(D), table(256 * D);
    std::vector<float> logits = random_vec(4, n * 256), dl(logits.size());
    std::vector<uint8_t> tok = {1, 2, 3, 2, 255};
    double loss = 0;
    const std::vector<float> qkv = random_vec(5, 2 * 70 * 32);
    std::vector<float> dq(qkv.size()), dk(qkv.size()), dv(qkv.size());
    SparseConfig cfg;
    cfg.stride = 8;
    const Status valid[] = {
        cuda_matmul_backward(x.data(), w.data(), y.data(), gx.data(), gw.data(), n, D, D,
                             CudaPrecision::kF32),
        cuda_layernorm_backward(x.data(), gain.data(), y.data(), gx.data(), gg.data(), gb.data(), n,
                                D),
        cuda_gelu_backward(x.data(), y.data(), gx.data(), n * D),
        cuda_embed_backward(tok.data(), y.data(), table.data(), n, D),
        cuda_xent_backward(logits.data(), tok.data(), dl.data(), &loss, n, 1.0f),
        cuda_attn_dense_backward(qkv.data(), qkv.data(), qkv.data(), qkv.data(), dq.data(),
                                 dk.data(), dv.data(), 2, 70, 70, 32, 0, CudaPrecision::kF32),
        cuda_attn_sparse_backward(qkv.data(), qkv.data(), qkv.data(), qkv.data(), dq.data(),
                                  dk.data(), dv.data(), 2, 70, 32, cfg, 0, CudaPrecision::kF32),
    };
    for (const Status& s : valid) {
      if (device_) {
        QVERIFY2(s.is_ok(), s.message().c_str());
      } else {
        QVERIFY(!s.is_ok());
        QVERIFY(!s.message().empty());
      }
    }
    // Bad sizes: negative, head width beyond the kernels', a sparse layout the GPU refuses.
    CHECK_FAILS(cuda_matmul_backward(x.data(), w.data(), y.data(), gx.data(), gw.data(), -1, D, D,
                                     CudaPrecision::kF32),
                device_);
    CHECK_FAILS(cuda_layernorm_backward(x.data(), gain.data(), y.data(), gx.data(), gg.data(),
                                        gb.data(), n, -D),
                device_);
    CHECK_FAILS(cuda_gelu_backward(x.data(), y.data(), gx.data(), -1), device_);
    CHECK_FAILS(cuda_embed_backward(tok.data(), y.data(), table.data(), -n, D), device_);
    CHECK_FAILS(cuda_xent_backward(logits.data(), tok.data(), dl.data(), &loss, -1, 1.0f), device_);
    std::vector<float> wide(2 * 4 * 256);
    CHECK_FAILS(
        cuda_attn_dense_backward(wide.data(), wide.data(), wide.data(), wide.data(), wide.data(),
                                 wide.data(), wide.data(), 2, 4, 4, 256, 0, CudaPrecision::kF32),
        device_);
    CHECK_FAILS(
        cuda_attn_dense_backward(qkv.data(), qkv.data(), qkv.data(), qkv.data(), dq.data(),
                                 dk.data(), dv.data(), 2, 70, -70, 32, 0, CudaPrecision::kF32),
        device_);
    CHECK_FAILS(
        cuda_attn_sparse_backward(wide.data(), wide.data(), wide.data(), wide.data(), wide.data(),
                                  wide.data(), wide.data(), 2, 4, 256, cfg, 0, CudaPrecision::kF32),
        device_);
    SparseConfig bad = cfg;
    bad.block = 128;
    CHECK_FAILS(
        cuda_attn_sparse_backward(qkv.data(), qkv.data(), qkv.data(), qkv.data(), dq.data(),
                                  dk.data(), dv.data(), 2, 70, 32, bad, 0, CudaPrecision::kF32),
        device_);
  }

  // linear's backward on the tape: dx += dy · wᵀ, dw += xᵀ · dy; the GPU adds to held values.
  void matmul_backward() {
    if (!device_) QSKIP(why_.c_str());
    const int64_t shapes[][3] = {{37, 129, 65}, {1, 64, 300}, {5, 7, 3}, {130, 256, 96}};
    for (const auto& s : shapes) {
      const int64_t m = s[0], k = s[1], n = s[2];
      const auto a = random_vec(11, m * k), b = random_vec(12, k * n), dc = random_vec(13, m * n);
      tape::Tape<float> tape;
      auto x = tape::make_param<float>(m, k, a.data());
      auto w = tape::make_param<float>(k, n, b.data());
      auto y = tape::linear(tape, x, w, tape::Var<float>());
      std::copy(dc.begin(), dc.end(), y->g());
      tape.run_backward();
      const std::vector<float> want_da(x->grad.begin(), x->grad.end());
      const std::vector<float> want_db(w->grad.begin(), w->grad.end());
      const auto da0 = random_vec(14, m * k), db0 = random_vec(15, k * n);
      for (CudaPrecision p : kAll) {
        std::vector<float> da = da0, db = db0;
        CHECK_OK(
            cuda_matmul_backward(a.data(), b.data(), dc.data(), da.data(), db.data(), m, k, n, p));
        for (size_t i = 0; i < da.size(); ++i) da[i] -= da0[i];
        for (size_t i = 0; i < db.size(); ++i) db[i] -= db0[i];
        const std::string what = std::string("matmul ") + cuda_precision_name(p) + " " +
                                 std::to_string(m) + "x" + std::to_string(k) + "x" +
                                 std::to_string(n);
        CHECK_CLOSE(da, want_da, tol_of(p), what + " da");
        CHECK_CLOSE(db, want_db, tol_of(p), what + " db");
      }
    }
  }

  void layernorm_backward() {
    if (!device_) QSKIP(why_.c_str());
    const int64_t shapes[][2] = {{7, 300}, {33, 64}, {1, 1000}};
    for (const auto& s : shapes) {
      const int64_t n = s[0], D = s[1];
      const auto xv = random_vec(21, n * D, 2.0), gv = random_vec(22, D), bv = random_vec(23, D);
      const auto dy = random_vec(24, n * D);
      tape::Tape<float> tape;
      auto x = tape::make_param<float>(n, D, xv.data());
      auto g = tape::make_param<float>(1, D, gv.data());
      auto b = tape::make_param<float>(1, D, bv.data());
      auto y = tape::layernorm(tape, x, g, b);
      std::copy(dy.begin(), dy.end(), y->g());
      tape.run_backward();
      const std::vector<float> want_dx(x->grad.begin(), x->grad.end());
      const std::vector<float> want_dg(g->grad.begin(), g->grad.end());
      const std::vector<float> want_db(b->grad.begin(), b->grad.end());
      const auto dx0 = random_vec(25, n * D), dg0 = random_vec(26, D), db0 = random_vec(27, D);
      std::vector<float> dx = dx0, dg = dg0, db = db0;
      CHECK_OK(cuda_layernorm_backward(xv.data(), gv.data(), dy.data(), dx.data(), dg.data(),
                                       db.data(), n, D));
      const std::string what = "layernorm " + std::to_string(n) + "x" + std::to_string(D);
      CHECK_CLOSE(dx, plus(dx0, want_dx), kTolF32, what + " dx");
      CHECK_CLOSE(dg, plus(dg0, want_dg), kTolF32, what + " dg");
      CHECK_CLOSE(db, plus(db0, want_db), kTolF32, what + " db");
    }
  }

  void gelu_backward() {
    if (!device_) QSKIP(why_.c_str());
    const int64_t count = 4099;
    const auto xv = random_vec(31, count, 3.0), dy = random_vec(32, count);
    tape::Tape<float> tape;
    auto x = tape::make_param<float>(1, count, xv.data());
    auto y = tape::gelu(tape, x);
    std::copy(dy.begin(), dy.end(), y->g());
    tape.run_backward();
    const std::vector<float> want(x->grad.begin(), x->grad.end());
    const auto dx0 = random_vec(33, count);
    std::vector<float> dx = dx0;
    CHECK_OK(cuda_gelu_backward(xv.data(), dy.data(), dx.data(), count));
    CHECK_CLOSE(dx, plus(dx0, want), kTolF32, "gelu dx");
  }

  void embed_backward() {
    if (!device_) QSKIP(why_.c_str());
    const int64_t n = 777, D = 40;
    Rng rng(41);
    std::vector<uint8_t> tok(n);
    for (auto& t : tok) t = static_cast<uint8_t>(rng.next_u64() % 7 * 37);  // many repeats
    tok[0] = 255;
    const auto dy = random_vec(42, n * D);
    const auto t0 = random_vec(43, 256 * D);
    std::vector<double> want(t0.begin(), t0.end());
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < D; ++i) want[tok[r] * D + i] += dy[r * D + i];
    std::vector<float> table = t0;
    CHECK_OK(cuda_embed_backward(tok.data(), dy.data(), table.data(), n, D));
    CHECK_CLOSE(table, want, kTolF32, "embed dtable");
  }

  void xent_backward() {
    if (!device_) QSKIP(why_.c_str());
    const int64_t n = 37;
    const float scale = 0.7f;
    const auto logits = random_vec(51, n * 256, 3.0);
    Rng rng(52);
    std::vector<uint8_t> tg(n);
    for (auto& t : tg) t = static_cast<uint8_t>(rng.next_u64() % 256);
    const auto dl0 = random_vec(53, n * 256);
    std::vector<double> want(dl0.begin(), dl0.end());
    double nats = 0;
    for (int64_t r = 0; r < n; ++r) {
      const float* lr = logits.data() + r * 256;
      double mx = lr[0];
      for (int j = 1; j < 256; ++j) mx = std::max<double>(mx, lr[j]);
      double s = 0;
      for (int j = 0; j < 256; ++j) s += std::exp(lr[j] - mx);
      const double lse = mx + std::log(s);
      nats += lse - lr[tg[r]];
      for (int j = 0; j < 256; ++j)
        want[r * 256 + j] += scale * (std::exp(lr[j] - lse) - (j == tg[r] ? 1.0 : 0.0)) / n;
    }
    const double want_bits = nats / n / std::log(2.0);
    std::vector<float> dl = dl0;
    double bits = -1;
    CHECK_OK(cuda_xent_backward(logits.data(), tg.data(), dl.data(), &bits, n, scale));
    QVERIFY2(std::abs(bits - want_bits) <= 1e-6 * want_bits,
             (std::to_string(bits) + " bits vs " + std::to_string(want_bits)).c_str());
    // Compare the added gradient itself (dl0 is much larger than it).
    std::vector<double> got_g(dl.size()), want_g(dl.size());
    for (size_t i = 0; i < dl.size(); ++i) {
      got_g[i] = static_cast<double>(dl[i]) - dl0[i];
      want_g[i] = want[i] - dl0[i];
    }
    CHECK_CLOSE(got_g, want_g, kTolF32, "xent dlogits");
  }

  // Dense causal backward against attn_train_backward: query offsets with nq < nk, nq = 1,
  // lengths off the 64 tile, d = 32, 40 (padded), 64, 128, three heads.
  void attn_dense_backward() {
    if (!device_) QSKIP(why_.c_str());
    struct Case {
      int heads;
      int64_t nq, nk;
      int d;
      int64_t q_offset;
    };
    const Case cases[] = {{2, 100, 100, 64, 0},  {3, 1, 77, 128, 76}, {3, 70, 200, 64, 130},
                          {1, 130, 130, 128, 0}, {2, 65, 65, 32, 0},  {3, 50, 90, 40, 20},
                          {3, 64, 64, 64, 0},    {2, 5, 300, 64, 295}};
    uint64_t seed = 100;
    for (const Case& c : cases) {
      const auto q = random_vec(++seed, size_t(c.heads) * c.nq * c.d);
      const auto k = random_vec(++seed, size_t(c.heads) * c.nk * c.d);
      const auto v = random_vec(++seed, size_t(c.heads) * c.nk * c.d);
      const auto dout = random_vec(++seed, q.size());
      tape::TrainAttnSpec spec;
      spec.kind = tape::TrainAttnKind::kCausal;
      spec.q_offset = c.q_offset;
      Status st;
      const AttnGrads want =
          cpu_attention_grads(q, k, v, dout, c.heads, c.nq, c.nk, c.d, spec, &st);
      CHECK_OK(st);
      const std::string what = "dense H=" + std::to_string(c.heads) +
                               " nq=" + std::to_string(c.nq) + " nk=" + std::to_string(c.nk) +
                               " d=" + std::to_string(c.d) + " off=" + std::to_string(c.q_offset);
      for (CudaPrecision p : {CudaPrecision::kF32, CudaPrecision::kBF16}) {
        std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
        CHECK_OK(cuda_attn_dense_backward(q.data(), k.data(), v.data(), dout.data(), dq.data(),
                                          dk.data(), dv.data(), c.heads, c.nq, c.nk, c.d,
                                          c.q_offset, p));
        const double tol = tol_of(p);
        CHECK_CLOSE(dq, want.dq, tol, what + " dq");
        CHECK_CLOSE(dk, want.dk, tol, what + " dk");
        CHECK_CLOSE(dv, want.dv, tol, what + " dv");
      }
    }
  }

  // The gradients are added to what dq, dk, dv hold.
  void attn_accumulates() {
    if (!device_) QSKIP(why_.c_str());
    const int heads = 2, d = 64;
    const int64_t n = 90;
    const size_t count = size_t(heads) * n * d;
    const auto q = random_vec(201, count), k = random_vec(202, count), v = random_vec(203, count);
    const auto dout = random_vec(204, count);
    const auto g0 = random_vec(205, count);
    tape::TrainAttnSpec spec;
    Status st;
    const AttnGrads want = cpu_attention_grads(q, k, v, dout, heads, n, n, d, spec, &st);
    CHECK_OK(st);
    std::vector<float> dq = g0, dk = g0, dv = g0;
    CHECK_OK(cuda_attn_dense_backward(q.data(), k.data(), v.data(), dout.data(), dq.data(),
                                      dk.data(), dv.data(), heads, n, n, d, 0,
                                      CudaPrecision::kF32));
    CHECK_CLOSE(dq, plus(g0, want.dq), kTolF32, "dense += dq");
    CHECK_CLOSE(dk, plus(g0, want.dk), kTolF32, "dense += dk");
    CHECK_CLOSE(dv, plus(g0, want.dv), kTolF32, "dense += dv");
    SparseConfig cfg;
    cfg.stride = 9;
    cfg.combine = SparseCombine::kMerged;
    spec.kind = tape::TrainAttnKind::kSparse;
    spec.sparse = cfg;
    const AttnGrads ws = cpu_attention_grads(q, k, v, dout, heads, n, n, d, spec, &st);
    CHECK_OK(st);
    dq = g0, dk = g0, dv = g0;
    CHECK_OK(cuda_attn_sparse_backward(q.data(), k.data(), v.data(), dout.data(), dq.data(),
                                       dk.data(), dv.data(), heads, n, d, cfg, 0,
                                       CudaPrecision::kF32));
    CHECK_CLOSE(dq, plus(g0, ws.dq), kTolF32, "sparse += dq");
    CHECK_CLOSE(dk, plus(g0, ws.dk), kTolF32, "sparse += dk");
    CHECK_CLOSE(dv, plus(g0, ws.dv), kTolF32, "sparse += dv");
  }

  // Block-sparse backward against attn_train_backward: strided and fixed patterns, every
  // combine mode, two layers (interleaved A1 then A2, whose fixed rows may see no key at all),
  // blocks 16, 32 and 64, lengths off the 64 tile, three heads (per-head sets differ).
  void attn_sparse_backward() {
    if (!device_) QSKIP(why_.c_str());
    struct Case {
      SparsePattern pattern;
      SparseCombine combine;
      int stride, summary, block, heads, d;
      int64_t n;
    };
    const Case cases[] = {
        {SparsePattern::kStrided, SparseCombine::kInterleaved, 12, 0, 32, 2, 64, 150},
        {SparsePattern::kStrided, SparseCombine::kMerged, 16, 0, 16, 3, 64, 200},
        {SparsePattern::kStrided, SparseCombine::kPerHead, 8, 0, 32, 3, 128, 97},
        {SparsePattern::kStrided, SparseCombine::kMerged, 11, 0, 64, 1, 32, 1},
        {SparsePattern::kFixed, SparseCombine::kInterleaved, 16, 4, 32, 2, 64, 150},
        {SparsePattern::kFixed, SparseCombine::kMerged, 32, 8, 64, 3, 128, 260},
        {SparsePattern::kFixed, SparseCombine::kPerHead, 20, 5, 16, 3, 48, 133},
    };
    uint64_t seed = 300;
    for (const Case& c : cases) {
      SparseConfig cfg;
      cfg.pattern = c.pattern;
      cfg.combine = c.combine;
      cfg.stride = c.stride;
      cfg.summary = c.summary > 0 ? c.summary : cfg.summary;
      cfg.block = c.block;
      const size_t count = size_t(c.heads) * c.n * c.d;
      const auto q = random_vec(++seed, count), k = random_vec(++seed, count);
      const auto v = random_vec(++seed, count), dout = random_vec(++seed, count);
      for (int layer = 0; layer < 2; ++layer) {
        tape::TrainAttnSpec spec;
        spec.kind = tape::TrainAttnKind::kSparse;
        spec.sparse = cfg;
        spec.layer = layer;
        Status st;
        const AttnGrads want =
            cpu_attention_grads(q, k, v, dout, c.heads, c.n, c.n, c.d, spec, &st);
        CHECK_OK(st);
        const std::string what =
            std::string("sparse ") + (c.pattern == SparsePattern::kStrided ? "strided" : "fixed") +
            " combine " + std::to_string(static_cast<int>(c.combine)) +
            " l=" + std::to_string(c.stride) + " block=" + std::to_string(c.block) +
            " H=" + std::to_string(c.heads) + " d=" + std::to_string(c.d) +
            " n=" + std::to_string(c.n) + " layer=" + std::to_string(layer);
        for (CudaPrecision p : {CudaPrecision::kF32, CudaPrecision::kBF16}) {
          std::vector<float> dq(count), dk(count), dv(count);
          CHECK_OK(cuda_attn_sparse_backward(q.data(), k.data(), v.data(), dout.data(), dq.data(),
                                             dk.data(), dv.data(), c.heads, c.n, c.d, cfg, layer,
                                             p));
          const double tol = tol_of(p);
          CHECK_CLOSE(dq, want.dq, tol, what + " dq");
          CHECK_CLOSE(dk, want.dk, tol, what + " dk");
          CHECK_CLOSE(dv, want.dv, tol, what + " dv");
        }
      }
    }
  }
};

QTEST_APPLESS_MAIN(TestCudaTrain)
#include "test_cuda_train.moc"
