// Model-level tests for the shared machinery and the dense/sparse families: decode equals
// the full forward, causality, sparse decode reads only its pattern, sampling, bits/dim,
// config round trip and refusals, memory accounting.
#include <QtTest>
#include <algorithm>
#include <cmath>

#include "attnscope/generate.h"
#include "attnscope/model.h"

using namespace attnscope;

namespace {

ModelConfig small_config(Family f, const std::string& modality) {
  ModelConfig c;
  c.family = f;
  c.modality = *modality_parse(modality);
  c.layers = 2;
  c.dim = 32;
  c.heads = 4;
  c.seed = 7;
  if (f == Family::kSparse) {
    c.sparse.block = 16;
    c.sparse.stride = 16;
    c.sparse.summary = 4;
  }
  return c;
}

std::unique_ptr<Model> make(ModelConfig c, uint64_t seed = 1) {
  if (!config_resolve(c).is_ok()) return nullptr;
  auto m = model_create(c, model_init_weights(c, InitOptions{seed, /*zero_logits=*/false}));
  if (!m) qWarning("%s", m.status().message().c_str());
  return m ? std::move(*m) : nullptr;
}

std::vector<uint8_t> random_tokens(int64_t n, uint64_t seed) {
  std::vector<uint8_t> x(static_cast<size_t>(n));
  uint64_t s = seed * 2654435761u + 1;
  for (auto& t : x) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    t = static_cast<uint8_t>(s >> 56);
  }
  return x;
}

// Largest |a - b| over the rows both have.
double max_abs_diff(const float* a, const float* b, int64_t count) {
  double m = 0;
  for (int64_t i = 0; i < count; ++i) m = std::max(m, std::abs(double(a[i]) - double(b[i])));
  return m;
}

}  // namespace

class TestModels : public QObject {
  Q_OBJECT

 private:
  // Decode logits at every position equal the full forward's rows. 1e-4 absolute: logits
  // are O(1-10) and the two paths sum the same float32 terms in different orders.
  void check_decode_equals_forward(const ModelConfig& cfg) {
    auto m = make(cfg);
    QVERIFY(m);
    const int64_t n = m->config().seq_len();
    auto x = random_tokens(n, 3);
    Tensor logits;
    int64_t first = -1;
    QVERIFY(m->forward(x.data(), n, &logits, &first).is_ok());
    QCOMPARE(first, 0);
    QCOMPARE(logits.dim(0), n);
    auto st = m->decode_begin();
    std::vector<float> row(kVocab);
    double worst = 0;
    for (int64_t p = 0; p < n; ++p) {
      QVERIFY(m->decode_step(*st, p ? x[p - 1] : -1, row.data()).is_ok());
      worst = std::max(worst, max_abs_diff(row.data(), logits.data() + p * kVocab, kVocab));
    }
    QVERIFY2(worst <= 1e-4, qPrintable(QString("max |decode - forward| = %1").arg(worst)));
  }

  // Appending tokens never changes earlier logits: forward on a prefix equals the first rows.
  void check_causal(const ModelConfig& cfg) {
    auto m = make(cfg);
    QVERIFY(m);
    const int64_t n = m->config().seq_len();
    auto x = random_tokens(n, 5);
    Tensor full, part;
    int64_t f0, f1;
    QVERIFY(m->forward(x.data(), n, &full, &f0).is_ok());
    for (int64_t len : {int64_t{1}, n / 3, n - 1}) {
      QVERIFY(m->forward(x.data(), len, &part, &f1).is_ok());
      QVERIFY(max_abs_diff(part.data(), full.data(), len * kVocab) <= 1e-4);
    }
    // Changing a later token leaves earlier rows alone.
    auto y = x;
    y[static_cast<size_t>(n / 2)] ^= 0x5a;
    QVERIFY(m->forward(y.data(), n, &part, &f1).is_ok());
    QVERIFY(max_abs_diff(part.data(), full.data(), (n / 2 + 1) * kVocab) <= 1e-4);
    QVERIFY(max_abs_diff(part.data(), full.data(), n * kVocab) > 1e-3);
  }

 private slots:
  // The sinusoidal position init: every position table's rows are model_sinusoid_feature of
  // their index, and the dot product of two columns depends on their distance only.
  void sinusoidal_positions_depend_on_distance() {
    ModelConfig c;
    c.family = Family::kSparse;
    c.modality = *modality_parse("audio:8000:0.1");
    c.sparse.stride = 32;
    c.dim = 64;
    c.heads = 4;
    c.layers = 1;
    QVERIFY(config_resolve(c).is_ok());
    InitOptions io;
    io.sinusoidal_positions = true;
    const WeightMap w = model_init_weights(c, io);
    const Tensor& col = w.at("embed.pos_col");
    QCOMPARE(col.shape()[0], int64_t{32});
    QCOMPARE(col.data()[7 * 64 + 10], model_sinusoid_feature(7, 64)[10]);
    QCOMPARE(w.at("embed.pos_row").data()[3 * 64 + 1], model_sinusoid_feature(3, 64)[1]);
    auto dot = [&](int64_t a, int64_t b) {
      double d = 0;
      for (int64_t k = 0; k < 64; ++k) d += double(col.data()[a * 64 + k]) * col.data()[b * 64 + k];
      return d;
    };
    QVERIFY(std::abs(dot(0, 0) - 0.25) < 1e-6);
    for (int64_t p = 0; p + 3 < 32; ++p) {
      QVERIFY(std::abs(dot(p, p + 1) - dot(0, 1)) < 1e-6);
      QVERIFY(std::abs(dot(p, p + 3) - dot(0, 3)) < 1e-6);
    }
    QVERIFY(dot(0, 1) > dot(0, 3));  // nearer columns are more alike
  }

  // The ordinal init (InitOptions::ordinal_tokens): neighbouring byte values start with nearly
  // the same token embedding and distant ones with orthogonal ones, and the untrained model
  // predicts a value near the byte it was given, where the paper's zero logit layer predicts
  // all 256 alike.
  void ordinal_init_predicts_near_the_input() {
    ModelConfig c;
    c.family = Family::kDense;
    c.modality = *modality_parse("audio:8000:0.02");  // 160 samples
    c.dim = 64;
    c.heads = 4;
    c.layers = 2;
    c.seed = 3;
    QVERIFY(config_resolve(c).is_ok());
    InitOptions io;
    io.seed = 3;
    io.ordinal_tokens = true;
    const WeightMap w = model_init_weights(c, io);
    const Tensor& token = w.at("embed.token");
    auto cosine = [&](int a, int b) {
      double dot = 0, na = 0, nb = 0;
      for (int64_t k = 0; k < c.dim; ++k) {
        const double u = token.data()[a * c.dim + k], v = token.data()[b * c.dim + k];
        dot += u * v;
        na += u * u;
        nb += v * v;
      }
      return dot / std::sqrt(na * nb);
    };
    QVERIFY(cosine(130, 131) > 0.95);
    QVERIFY(cosine(10, 200) < 1e-6);
    QCOMPARE(w.at("head.weight").data()[5 * 256 + 77], 0.3f * model_ordinal_feature(77, c.dim)[5]);

    // A slow random walk over the codes: every prediction's argmax lies within 8 codes (two
    // bump spacings) of the byte before it.
    std::vector<uint8_t> x(160);
    uint64_t s = 1;
    int v = 128;
    for (auto& b : x) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      v = std::clamp(v + static_cast<int>((s >> 33) % 9) - 4, 0, 255);
      b = static_cast<uint8_t>(v);
    }
    auto m = model_create(c, w);
    QVERIFY(m.has_value());
    Tensor logits;
    int64_t first = 0;
    QVERIFY((*m)->forward(x.data(), 160, &logits, &first).is_ok());
    int far = 0;
    for (int64_t t = 1; t < 160; ++t) {
      const float* row = logits.data() + t * 256;
      const auto best = static_cast<int>(std::max_element(row, row + 256) - row);
      far += std::abs(best - x[static_cast<size_t>(t - 1)]) > 8;
    }
    QCOMPARE(far, 0);
  }

  void dense_decode_equals_forward() {
    check_decode_equals_forward(small_config(Family::kDense, "image:6x5x3"));
  }
  void dense_causal() { check_causal(small_config(Family::kDense, "text:77")); }

  void sparse_decode_equals_forward_data() {
    QTest::addColumn<int>("pattern");
    QTest::addColumn<int>("combine");
    for (int p : {0, 1})
      for (int c : {0, 1, 2})
        QTest::addRow("%s/%s", p ? "fixed" : "strided",
                      c == 0   ? "interleaved"
                      : c == 1 ? "merged"
                               : "per-head")
            << p << c;
  }
  void sparse_decode_equals_forward() {
    QFETCH(int, pattern);
    QFETCH(int, combine);
    auto cfg = small_config(Family::kSparse, "text:100");
    cfg.sparse.pattern = static_cast<SparsePattern>(pattern);
    cfg.sparse.combine = static_cast<SparseCombine>(combine);
    check_decode_equals_forward(cfg);
    check_causal(cfg);
  }

  // Decoding position i reads |A(i)| keys per head, not i + 1: the cost follows the pattern.
  void sparse_decode_reads_only_pattern() {
    auto cfg = small_config(Family::kSparse, "text:512");
    cfg.layers = 1;
    cfg.sparse.combine = SparseCombine::kMerged;
    auto m = make(cfg);
    QVERIFY(m);
    const auto& rc = m->config();
    auto st = m->decode_begin();
    std::vector<float> row(kVocab);
    auto x = random_tokens(512, 9);
    int64_t expected = 0;
    for (int64_t p = 0; p < 512; ++p) {
      QVERIFY(m->decode_step(*st, p ? x[p - 1] : -1, row.data()).is_ok());
      for (int64_t j = 0; j <= p; ++j)
        expected += attn_sparse_allowed(rc.sparse, SparseSet::kUnion, p, j) ? rc.heads : 0;
    }
    QCOMPARE(m->stats().keys_read.load(), expected);
    const int64_t dense_reads = int64_t{512} * 513 / 2 * rc.heads;
    QVERIFY2(expected * 4 < dense_reads,
             "the strided pattern should read far fewer keys than dense");
  }

  void bits_per_dim_uniform_is_eight() {
    auto cfg = small_config(Family::kDense, "image:4x4x3");
    QVERIFY(config_resolve(cfg).is_ok());
    auto m = model_create(cfg, model_init_weights(cfg, InitOptions{1, /*zero_logits=*/true}));
    QVERIFY(m);
    auto x = random_tokens(48, 1);
    auto bpd = model_bits_per_dim(**m, x.data(), 48);
    QVERIFY(bpd);
    QVERIFY(std::abs(*bpd - 8.0) < 1e-6);
  }

  void bits_per_dim_matches_log_probs() {
    auto m = make(small_config(Family::kDense, "text:40"));
    auto x = random_tokens(40, 2);
    Tensor lp;
    QVERIFY(model_log_probs(*m, x.data(), 40, &lp).is_ok());
    double nats = 0;
    for (int p = 0; p < 40; ++p) {
      double mass = 0;
      for (int t = 0; t < kVocab; ++t) mass += std::exp(double(lp.data()[p * kVocab + t]));
      QVERIFY(std::abs(mass - 1.0) < 1e-4);
      nats -= lp.data()[p * kVocab + x[p]];
    }
    QVERIFY(std::abs(*model_bits_per_dim(*m, x.data(), 40) - nats / 40 / std::log(2.0)) < 1e-9);
  }

  void generate_same_seed_same_bytes() {
    auto m = make(small_config(Family::kDense, "image:4x4x3"));
    GenerateRequest req;
    req.prompt = {10, 20, 30, 40, 50, 60};
    req.sampling = {0.9f, 40, 0.95f, 1234};
    auto a = generate(*m, req), b = generate(*m, req);
    QVERIFY(a && b);
    QCOMPARE(*a, *b);
    QCOMPARE(std::vector<uint8_t>(a->begin(), a->begin() + 6), req.prompt);
    req.sampling.seed = 1235;
    auto c = generate(*m, req);
    QVERIFY(*c != *a);
  }

  void sampler_respects_top_k_top_p_and_greedy() {
    float logits[kVocab];
    for (int t = 0; t < kVocab; ++t) logits[t] = -static_cast<float>((t * 37) % kVocab) * 0.05f;
    // Token 0 has the largest logit; (t*37)%256 = 1 at t = 173, 2 at t = 90.
    Sampler greedy({0.0f, 0, 1.0f, 1});
    QCOMPARE(greedy.sample(logits), 0);
    Sampler top3({1.0f, 3, 1.0f, 5});
    for (int i = 0; i < 500; ++i) {
      int t = top3.sample(logits);
      QVERIFY(t == 0 || t == 173 || t == 90);
    }
    Sampler nucleus({1.0f, 0, 1e-6f, 5});  // the smallest nucleus is the top token alone
    for (int i = 0; i < 100; ++i) QCOMPARE(nucleus.sample(logits), 0);
    QVERIFY(!sampling_validate({-1.0f, 0, 1.0f, 0}).is_ok());
    QVERIFY(!sampling_validate({1.0f, 300, 1.0f, 0}).is_ok());
    QVERIFY(!sampling_validate({1.0f, 0, 0.0f, 0}).is_ok());
  }

  // Sampling at temperature 1 draws tokens with the model's probabilities.
  void sampler_frequencies_follow_softmax() {
    float logits[kVocab];
    for (int t = 0; t < kVocab; ++t) logits[t] = -30.0f;
    logits[7] = std::log(0.7f);
    logits[9] = std::log(0.3f);
    Sampler s({1.0f, 0, 1.0f, 77});
    int sevens = 0;
    for (int i = 0; i < 20000; ++i) sevens += s.sample(logits) == 7;
    QVERIFY(std::abs(sevens / 20000.0 - 0.7) < 0.02);  // 3 sigma is ~0.01
  }

  void config_json_round_trip() {
    for (Family f : {Family::kDense, Family::kSparse, Family::kReformer, Family::kPerceiverAR,
                     Family::kHourglass}) {
      auto c = small_config(f, "audio:8000:0.5");
      QVERIFY(config_resolve(c).is_ok());
      auto back = config_from_json(config_to_json(c));
      QVERIFY2(back, back.status().message().c_str());
      QCOMPARE(config_to_json(*back), config_to_json(c));
      QCOMPARE(back->seq_len(), int64_t{4000});
    }
  }

  void config_refusals_name_the_key() {
    auto refuse = [](const std::string& json, const char* needle) {
      auto c = config_from_json(json);
      QVERIFY(!c);
      QVERIFY2(c.status().message().find(needle) != std::string::npos,
               c.status().message().c_str());
    };
    refuse("[1,2]", "JSON object");
    refuse("{\"family\":\"dense\",\"modality\":\"image:8x8x3\",\"colour\":1}",
           "unknown config key 'colour'");
    refuse("{\"family\":\"wide\",\"modality\":\"image:8x8x3\"}", "unknown family 'wide'");
    refuse("{\"family\":\"dense\",\"modality\":\"image:8x8\"}", "bad modality");
    refuse("{\"family\":\"dense\",\"modality\":\"image:8x8x3\",\"dim\":30,\"heads\":4}",
           "multiple of heads");
    refuse("{\"family\":\"dense\",\"modality\":\"image:8x8x3\",\"dim\":1000000000}", "dim must be");
    refuse("{\"family\":\"dense\",\"modality\":\"image:8x8x3\",\"dim\":\"big\"}", "wrong type");
    refuse(
        "{\"family\":\"dense\",\"modality\":\"image:1024x1024x3\",\"layers\":512,\"dim\":8192,"
        "\"heads\":8}",
        "sequence length");
    refuse(
        "{\"family\":\"dense\",\"modality\":\"text:4096\",\"layers\":512,\"dim\":8192,\"heads\":8}",
        "parameters");
    refuse(
        "{\"family\":\"hourglass\",\"modality\":\"text:64\",\"hourglass\":{\"hierarchy\":\"2@1,4@3,"
        "2@2\"}}",
        "same both ways");
    refuse(
        "{\"family\":\"sparse\",\"modality\":\"text:64\",\"sparse\":{\"stride\":40,\"block\":32}}",
        "multiple of sparse.block");
  }

  void hierarchy_parse() {
    auto l = hourglass_parse("2@1,4@3,2@1");
    QVERIFY(l);
    QCOMPARE(int(l->size()), 3);
    QCOMPARE((*l)[1].layers, 4);
    QCOMPARE((*l)[1].factor, 3);
    QVERIFY(hourglass_parse("1@1,1@2,1@4,1@2,1@1"));
    QVERIFY(!hourglass_parse("1@1,1@3,1@4,1@3,1@1"));  // 4 is not a multiple of 3
    QVERIFY(!hourglass_parse("2@1,3"));
  }

  // Every byte of a forward lands in a category and is given back afterwards.
  void memory_is_accounted() {
    auto m = make(small_config(Family::kDense, "text:256"));
    auto& mt = MemTracker::instance();
    const auto before = mt.snapshot();
    const size_t weights = static_cast<size_t>(model_param_count(m->config())) * sizeof(float);
    QVERIFY(before.by_category[static_cast<int>(MemCategory::kWeights)].current >= weights);
    mt.reset_peaks();
    auto x = random_tokens(256, 4);
    Tensor logits;
    int64_t first;
    QVERIFY(m->forward(x.data(), 256, &logits, &first).is_ok());
    logits = Tensor();
    const auto after = mt.snapshot();
    const auto& act = after.by_category[static_cast<int>(MemCategory::kActivations)];
    QCOMPARE(act.current, before.by_category[static_cast<int>(MemCategory::kActivations)].current);
    // At least the residual stream and q, k, v, out of one layer: 5 * N * D floats.
    QVERIFY(act.peak >= size_t{5} * 256 * 32 * sizeof(float));
    auto st = m->decode_begin();
    const auto with_state = mt.snapshot();
    const size_t caches = with_state.by_category[static_cast<int>(MemCategory::kCaches)].current -
                          before.by_category[static_cast<int>(MemCategory::kCaches)].current;
    QCOMPARE(caches, size_t{2} * 2 * 256 * 32 * sizeof(float));  // layers x (K, V) x N x D
  }
};

QTEST_APPLESS_MAIN(TestModels)
#include "test_models.moc"
