// Parity of the CUDA backend with the CPU ops it replaces: matrix products, layer norm, GELU,
// dense causal attention (query offsets, head widths 32/64/128, lengths off the 64 tile),
// Sparse Transformer block-sparse attention (both patterns, every combine mode), Reformer LSH
// (outputs, and buckets and sort order exactly), decode, and errors returned as values.
// Without a CUDA build or device it prints one "SKIP: <reason>" line and passes.
#include <QtTest>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <regex>
#include <string>
#include <vector>

#include "attnscope/attention.h"
#include "attnscope/generate.h"
#include "backend/cuda/testing.h"
#include "core/rng.h"
#include "cuda_checks.h"
#include "ops/ops.h"

using namespace attnscope;
using namespace cuda_checks;

class TestCudaParity : public QObject {
  Q_OBJECT

  bool skip_ = false;

 private slots:
  void initTestCase() {
    std::string info;
    const Status s = cuda_available(&info);
    if (!s.is_ok()) {
      skip_ = true;
      std::printf("SKIP: %s\n", s.message().c_str());
      std::fflush(stdout);
      return;
    }
    qInfo("CUDA device: %s", info.c_str());
  }

  void precision_names() {
    // Works in every build, device or not.
    for (CudaPrecision p : kAll) {
      auto back = cuda_precision_from_name(cuda_precision_name(p));
      QVERIFY(back.has_value());
      QVERIFY(*back == p);
    }
    QVERIFY(!cuda_precision_from_name("fp8").has_value());
  }

  void matmul() {
    if (skip_) return;
    const int64_t shapes[][3] = {{37, 129, 65}, {256, 512, 384}, {1, 64, 300}, {5, 7, 3}};
    for (const auto& s : shapes) {
      const int64_t m = s[0], k = s[1], n = s[2];
      const auto a = random_vec(1, static_cast<size_t>(m * k));
      const auto b = random_vec(2, static_cast<size_t>(k * n));
      std::vector<float> want(static_cast<size_t>(m * n)), got(want.size());
      op_matmul(a.data(), b.data(), want.data(), m, k, n);
      for (CudaPrecision p : kAll) {
        CHECK_OK(cuda_matmul(a.data(), b.data(), got.data(), m, k, n, p));
        CHECK_CLOSE(got, want, tol_of(p),
                    std::string("matmul ") + cuda_precision_name(p) + " " + std::to_string(m) +
                        "x" + std::to_string(k) + "x" + std::to_string(n));
      }
    }
  }

  void layernorm_and_gelu() {
    if (skip_) return;
    const int64_t n = 17, D = 384;
    const auto x = random_vec(3, static_cast<size_t>(n * D), 3.0);
    auto g = random_vec(4, static_cast<size_t>(D));
    const auto b = random_vec(5, static_cast<size_t>(D));
    std::vector<float> want(x.size()), got(x.size());
    op_layernorm(x.data(), g.data(), b.data(), want.data(), n, D);
    CHECK_OK(cuda_layernorm(x.data(), g.data(), b.data(), got.data(), n, D));
    CHECK_CLOSE(got, want, kTolF32, "layernorm");

    std::vector<float> gx = random_vec(6, 10000, 3.0), gy = gx;
    op_gelu(gx.data(), static_cast<int64_t>(gx.size()));
    CHECK_OK(cuda_gelu(gy.data(), static_cast<int64_t>(gy.size())));
    CHECK_CLOSE(gy, gx, kTolF32, "gelu");
  }

  void dense_causal() {
    if (skip_) return;
    const int heads = 3;
    // (nq, nk, q_offset): self-attention at lengths on and off the 64-row tile, and
    // Perceiver-style cross-attention with the queries at the end.
    const int64_t cases[][3] = {{1, 1, 0},      {63, 63, 0},   {64, 64, 0},
                                {65, 65, 0},    {200, 200, 0}, {333, 333, 0},
                                {40, 300, 260}, {70, 150, 80}, {16, 100, 10}};
    for (int d : {32, 64, 128}) {
      for (const auto& c : cases) {
        const int64_t nq = c[0], nk = c[1], off = c[2];
        const auto q = random_vec(10 + d, static_cast<size_t>(heads * nq * d));
        const auto k = random_vec(11 + d, static_cast<size_t>(heads * nk * d));
        const auto v = random_vec(12 + d, static_cast<size_t>(heads * nk * d));
        std::vector<float> want(q.size()), got(q.size());
        CHECK_OK(attn_dense_forward_cpu(q.data(), k.data(), v.data(), want.data(), heads, nq, nk, d,
                                        off));
        for (CudaPrecision p : kAll) {
          CHECK_OK(cuda_attn_dense_forward(q.data(), k.data(), v.data(), got.data(), heads, nq, nk,
                                           d, off, p));
          CHECK_CLOSE(got, want, tol_of(p),
                      std::string("dense ") + cuda_precision_name(p) + " d=" + std::to_string(d) +
                          " nq=" + std::to_string(nq) + " nk=" + std::to_string(nk) +
                          " offset=" + std::to_string(off));
        }
      }
    }
  }

  void sparse() {
    if (skip_) return;
    const int heads = 4, d = 64;
    const int64_t n = 333;
    const auto q = random_vec(20, static_cast<size_t>(heads * n * d));
    const auto k = random_vec(21, static_cast<size_t>(heads * n * d));
    const auto v = random_vec(22, static_cast<size_t>(heads * n * d));
    std::vector<float> want(q.size()), got(q.size());
    for (SparsePattern pat : {SparsePattern::kStrided, SparsePattern::kFixed}) {
      for (SparseCombine comb :
           {SparseCombine::kInterleaved, SparseCombine::kMerged, SparseCombine::kPerHead}) {
        SparseConfig cfg;
        cfg.pattern = pat;
        cfg.combine = comb;
        cfg.block = 32;
        cfg.stride = pat == SparsePattern::kStrided ? 24 : 32;  // 24: groups off the block
        cfg.summary = 8;
        for (int layer : {0, 1}) {
          CHECK_OK(attn_sparse_forward_cpu(q.data(), k.data(), v.data(), want.data(), heads, n, d,
                                           cfg, layer));
          for (CudaPrecision p : kAll) {
            CHECK_OK(cuda_attn_sparse_forward(q.data(), k.data(), v.data(), got.data(), heads, n, d,
                                              cfg, layer, p));
            CHECK_CLOSE(got, want, tol_of(p),
                        std::string("sparse ") + cuda_precision_name(p) +
                            (pat == SparsePattern::kStrided ? " strided" : " fixed") +
                            " combine=" + std::to_string(static_cast<int>(comb)) +
                            " layer=" + std::to_string(layer));
          }
        }
      }
    }
  }

  void lsh() {
    if (skip_) return;
    const int heads = 2, d = 64;
    const int64_t n = 300;
    // chunk 32: the tiled kernel (window of 64 rows in shared memory); chunk 200: a window of
    // 300 rows, past the tiled kernel's 256, takes the warp-per-query kernel.
    for (const auto& [R, chunk] : {std::pair{1, 32}, std::pair{2, 32}, std::pair{2, 200}}) {
      LshSpec spec;
      spec.n_hashes = R;
      spec.chunk = chunk;
      spec.n_buckets = 8;
      const auto rot = attn_lsh_rotations(7, 0, R, d, spec.n_buckets);
      const auto qk = random_vec(30 + R, static_cast<size_t>(heads * n * d));
      const auto v = random_vec(40 + R, static_cast<size_t>(heads * n * d));
      std::vector<float> want(qk.size()), got(qk.size());
      LshTrace tw, tg;
      CHECK_OK(attn_lsh_forward_cpu(qk.data(), v.data(), want.data(), heads, n, d, spec, rot.data(),
                                    &tw));
      CHECK_OK(cuda_attn_lsh_forward(qk.data(), v.data(), got.data(), heads, n, d, spec, rot.data(),
                                     &tg));
      // Buckets come from double projections on both sides: they must agree exactly, and so
      // must the (bucket, position) order.
      const std::string what =
          "lsh rounds " + std::to_string(R) + " chunk " + std::to_string(chunk);
      QVERIFY2(tg.buckets == tw.buckets, (what + ": buckets differ").c_str());
      QVERIFY2(tg.order == tw.order, (what + ": order differs").c_str());
      CHECK_CLOSE(got, want, kTolF32, what);
    }
  }

  void decode() {
    if (skip_) return;
    const int heads = 4, d = 64;
    const int64_t cap = 300;
    const auto q = random_vec(50, static_cast<size_t>(heads * d));
    const auto kc = random_vec(51, static_cast<size_t>(heads * cap * d));
    const auto vc = random_vec(52, static_cast<size_t>(heads * cap * d));
    std::vector<float> want(q.size()), got(q.size());
    for (int64_t nk : {int64_t{1}, int64_t{77}, int64_t{257}, cap}) {
      attn_dense_decode_cpu(q.data(), kc.data(), vc.data(), want.data(), heads, cap, nk, d);
      CHECK_OK(
          cuda_attn_dense_decode(q.data(), kc.data(), vc.data(), got.data(), heads, cap, nk, d));
      CHECK_CLOSE(got, want, kTolF32, "dense decode n_keys=" + std::to_string(nk));
    }
    for (SparsePattern pat : {SparsePattern::kStrided, SparsePattern::kFixed}) {
      for (SparseCombine comb :
           {SparseCombine::kInterleaved, SparseCombine::kMerged, SparseCombine::kPerHead}) {
        SparseConfig cfg;
        cfg.pattern = pat;
        cfg.combine = comb;
        cfg.stride = pat == SparsePattern::kStrided ? 24 : 32;
        cfg.summary = 8;
        for (int layer : {0, 1})
          for (int64_t i : {int64_t{0}, int64_t{5}, int64_t{31}, int64_t{100}, cap - 1}) {
            attn_sparse_decode_cpu(q.data(), kc.data(), vc.data(), want.data(), heads, cap, i, d,
                                   cfg, layer);
            CHECK_OK(cuda_attn_sparse_decode(q.data(), kc.data(), vc.data(), got.data(), heads, cap,
                                             i, d, cfg, layer));
            CHECK_CLOSE(got, want, kTolF32,
                        std::string("sparse decode ") +
                            (pat == SparsePattern::kStrided ? "strided" : "fixed") +
                            " combine=" + std::to_string(static_cast<int>(comb)) +
                            " layer=" + std::to_string(layer) + " i=" + std::to_string(i));
          }
      }
    }
  }

  void sampling() {
    if (skip_) return;
    // The uniform Sampler draws for its first token: its state is splitmix64 of the seed, the
    // draw a fresh xoshiro over state[0] ^ state[1] after two outputs (generate.cpp).
    auto first_uniform = [](uint64_t seed) {
      uint64_t s = seed, st[4];
      for (auto& w : st) w = splitmix64(s);
      Rng rng(st[0] ^ st[1]);
      rng.next_u64();
      rng.next_u64();
      return rng.uniform();
    };
    struct Case {
      float temperature;
      int top_k;
      float top_p;
    };
    const Case cases[] = {{1.0f, 0, 1.0f}, {0.0f, 0, 1.0f}, {0.7f, 40, 1.0f},
                          {1.3f, 0, 0.9f}, {1.0f, 5, 0.5f}, {2.0f, 256, 0.99f}};
    int checked = 0;
    for (const Case& c : cases) {
      for (uint64_t seed = 1; seed <= 25; ++seed) {
        auto logits = random_vec(100 + seed, kVocab, 2.0);
        logits[7] = logits[9];  // a tie: the stable order puts 7 first on both sides
        SamplingParams sp;
        sp.temperature = c.temperature;
        sp.top_k = c.top_k;
        sp.top_p = c.top_p;
        sp.seed = seed;
        Sampler cpu(sp);
        const int want = cpu.sample(logits.data());
        auto got =
            cuda_sample_token(logits.data(), c.temperature, c.top_k, c.top_p, first_uniform(seed));
        QVERIFY2(got.has_value(), got.status().message().c_str());
        QCOMPARE(*got, want);
        ++checked;
      }
    }
    QCOMPARE(checked, 150);
  }

  void errors_are_values() {
    if (skip_) return;
    // 2^45 floats (128 TiB) cannot be allocated: the Status names the failing call's file:line
    // and nothing reads the (small) host buffer.
    std::vector<float> x(16, 1.0f);
    const Status s = cuda_gelu(x.data(), int64_t{1} << 45);
    QVERIFY(!s.is_ok());
    QCOMPARE(s.code(), StatusCode::kInternal);
    QVERIFY2(std::regex_search(s.message(), std::regex(R"(\.cuh?:[0-9]+)")), s.message().c_str());
    // Refused before any device work: negative sizes, a head width the kernel does not run.
    QVERIFY(!cuda_matmul(x.data(), x.data(), x.data(), -1, 2, 2, CudaPrecision::kF32).is_ok());
    const Status w = cuda_attn_dense_forward(x.data(), x.data(), x.data(), x.data(), 1, 1, 1, 16, 0,
                                             CudaPrecision::kF32);
    QCOMPARE(w.code(), StatusCode::kUnsupported);
    // The device still works afterwards.
    std::vector<float> y = {0.5f, -1.0f}, ref = y;
    CHECK_OK(cuda_gelu(y.data(), 2));
    op_gelu(ref.data(), 2);
    CHECK_CLOSE(y, ref, kTolF32, "gelu after errors");
  }
};

QTEST_APPLESS_MAIN(TestCudaParity)
#include "test_cuda_parity.moc"
