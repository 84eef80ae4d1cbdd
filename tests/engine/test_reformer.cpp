// Tests of the Reformer family: predict-mode decode against a direct full-sequence reference of
// the same scheme, the reversible and plain residuals written out, chunked FFN, and which of
// the two attentions is causal (decode is; the chunked training-time forward is not).
#include <QtTest>
#include <algorithm>
#include <cmath>
#include <vector>

#include "attnscope/model.h"
#include "models/common.h"
#include "ops/ops.h"

using namespace attnscope;

namespace {

// text:N, 2 layers, D = 32, H = 4 (d = 8), chunk 4, 2 rounds, 6 buckets: with N = 40 a bucket
// holds more than 2m = 8 positions, so the decode window really truncates.
ModelConfig small_config(int64_t n = 40) {
  ModelConfig c;
  c.family = Family::kReformer;
  c.modality.kind = ModalityKind::kText;
  c.modality.length = static_cast<int>(n);
  c.layers = 2;
  c.dim = 32;
  c.heads = 4;
  c.seed = 11;
  c.lsh.n_hashes = 2;
  c.lsh.chunk = 4;
  c.lsh.n_buckets = 6;
  c.lsh.ff_chunks = 3;
  return c;
}

// Weights from the model's own init with logits on and the attention projections scaled up,
// so that scores are O(1) and a wrong key or weight shows in the logits.
WeightMap test_weights(const ModelConfig& c) {
  WeightMap w = model_init_weights(c, InitOptions{5, /*zero_logits=*/false});
  for (auto& [name, t] : w)
    if (name.find("attn.wqk") != std::string::npos || name.find("attn.wv") != std::string::npos)
      for (int64_t e = 0; e < t.numel(); ++e) t.data()[e] *= 25.0f;
  return w;
}

std::unique_ptr<Model> make(ModelConfig c) {
  if (!config_resolve(c).is_ok()) return nullptr;
  auto m = model_create(c, test_weights(c));
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

// max |a - b| / max |b|.
double rel_diff(const float* a, const float* b, int64_t count) {
  double num = 0.0, den = 0.0;
  for (int64_t e = 0; e < count; ++e) {
    num = std::max(num, std::abs(double(a[e]) - double(b[e])));
    den = std::max(den, std::abs(double(b[e])));
  }
  return num / std::max(den, 1e-300);
}

// logits (n, 256) from n decode steps.
std::vector<float> decode_all(const Model& m, const std::vector<uint8_t>& x, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n) * kVocab);
  auto st = m.decode_begin();
  for (int64_t p = 0; p < n; ++p)
    if (!m.decode_step(*st, p ? x[p - 1] : -1, out.data() + p * kVocab).is_ok()) return {};
  return out;
}

std::vector<float> forward_all(const Model& m, const std::vector<uint8_t>& x, int64_t n) {
  Tensor logits;
  int64_t first = -1;
  if (!m.forward(x.data(), n, &logits, &first).is_ok() || first != 0) return {};
  return std::vector<float>(logits.data(), logits.data() + n * kVocab);
}

struct Block {
  const float *ln1_g, *ln1_b, *wqk, *wv, *wo;
  BlockParams ff;
};

Block block(const WeightMap& w, int l) {
  const std::string p = "blocks." + std::to_string(l) + ".";
  Block b{weight_ptr(w, p + "ln1.weight"), weight_ptr(w, p + "ln1.bias"),
          weight_ptr(w, p + "attn.wqk"),   weight_ptr(w, p + "attn.wv"),
          weight_ptr(w, p + "attn.wo"),    {}};
  b.ff.ln2_g = weight_ptr(w, p + "ln2.weight");
  b.ff.ln2_b = weight_ptr(w, p + "ln2.bias");
  b.ff.w1 = weight_ptr(w, p + "ff.w1");
  b.ff.b1 = weight_ptr(w, p + "ff.b1");
  b.ff.w2 = weight_ptr(w, p + "ff.w2");
  b.ff.b2 = weight_ptr(w, p + "ff.b2");
  return b;
}

// The model written out with an attention given per layer: attn(l, h (n, D), o (n, D)).
// Reversible: Y1 = X1 + Attn(LN1 X2) Wo, Y2 = X2 + FFN(LN2 Y1), logits of (Y1 + Y2) / 2;
// plain: x += Attn(LN1 x) Wo, x += FFN(LN2 x). FFN over all rows at once.
template <typename AttnFn>
std::vector<float> written_out(const Model& m, const std::vector<uint8_t>& x, int64_t n,
                               bool reversible, AttnFn attn) {
  const ModelConfig& c = m.config();
  const int D = c.dim;
  const CommonParams cp = common_params(m.weights(), c);
  std::vector<float> x1(n * D), x2(n * D), h(n * D), o(n * D), f(n * D);
  embed_inputs(cp, c, x.data(), 0, n, x1.data());
  x2 = x1;
  for (int l = 0; l < c.layers; ++l) {
    const Block b = block(m.weights(), l);
    std::vector<float>& a_in = reversible ? x2 : x1;
    op_layernorm(a_in.data(), b.ln1_g, b.ln1_b, h.data(), n, D);
    attn(l, b, h, o);
    op_matmul(o.data(), b.wo, x1.data(), n, D, D, /*accumulate=*/true);
    op_layernorm(x1.data(), b.ff.ln2_g, b.ff.ln2_b, h.data(), n, D);
    ffn_forward(b.ff, h.data(), f.data(), n, D, c.ff_dim);
    op_add((reversible ? x2 : x1).data(), f.data(), n * D);
  }
  if (reversible)
    for (int64_t e = 0; e < n * D; ++e) x1[e] = 0.5f * (x1[e] + x2[e]);
  std::vector<float> logits(n * kVocab);
  head_forward(cp, c, x1.data(), n, logits.data());
  return logits;
}

}  // namespace

class TestReformer : public QObject {
  Q_OBJECT

 private slots:
  void param_specs() {
    ModelConfig c = small_config();
    QVERIFY(config_resolve(c).is_ok());
    int per_block = 0;
    for (const ParamSpec& s : model_param_specs(c)) {
      if (s.name.rfind("blocks.1.", 0) != 0) continue;
      ++per_block;
      if (s.name == "blocks.1.attn.wqk") QCOMPARE(s.shape, (std::vector<int64_t>{32, 32}));
      if (s.name == "blocks.1.ff.w2") {
        QCOMPARE(s.shape, (std::vector<int64_t>{c.ff_dim, 32}));
        QVERIFY(s.init == ParamInit::kNormalScaled);
      }
    }
    QCOMPARE(per_block, 11);
    QVERIFY(make(c) != nullptr);
  }

  // Decode against a direct reference of the predict scheme over the whole sequence: per
  // layer the LN'd inputs and buckets of all positions, then for each i and round the most
  // recent 2m positions j <= i in i's bucket (self at -1e5), rounds combined by lse, in f64.
  // Both paths hash the same float q rows, so buckets agree; 1e-4 relative covers float32
  // sums in different orders through two layers (logits are O(1-10)).
  void decode_matches_predict_reference() {
    for (bool reversible : {true, false}) {
      ModelConfig c = small_config();
      c.lsh.reversible = reversible;
      auto m = make(c);
      QVERIFY(m);
      const ModelConfig& rc = m->config();
      const int64_t n = rc.seq_len();
      const int H = rc.heads, d = rc.head_dim(), D = rc.dim, R = rc.lsh.n_hashes;
      const int64_t window = 2 * rc.lsh.chunk;
      const auto x = random_tokens(n, 3);
      const std::vector<float> dec = decode_all(*m, x, n);
      QCOMPARE(static_cast<int64_t>(dec.size()), n * kVocab);

      const auto attn = [&](int l, const Block& b, const std::vector<float>& h,
                            std::vector<float>& o) {
        const std::vector<float> rot = attn_lsh_rotations(rc.seed, l, R, d, rc.lsh.n_buckets);
        // q (n, D) row by row; kf, vf (n, D) in f64 with unit key rows per head.
        std::vector<float> q(n * D);
        std::vector<double> kf(n * D, 0.0), vf(n * D, 0.0);
        for (int64_t j = 0; j < n; ++j) {
          op_matmul(h.data() + j * D, b.wqk, q.data() + j * D, 1, D, D);
          for (int e = 0; e < D; ++e)
            for (int c2 = 0; c2 < D; ++c2) {
              kf[j * D + c2] += double(h[j * D + e]) * b.wqk[e * D + c2];
              vf[j * D + c2] += double(h[j * D + e]) * b.wv[e * D + c2];
            }
          for (int hh = 0; hh < H; ++hh) {
            double ss = 0.0;
            for (int c2 = 0; c2 < d; ++c2) ss += kf[j * D + hh * d + c2] * kf[j * D + hh * d + c2];
            const double inv = 1.0 / std::sqrt(std::max(ss, 1e-6));
            for (int c2 = 0; c2 < d; ++c2) kf[j * D + hh * d + c2] *= inv;
          }
        }
        // bucket (H, R, n).
        std::vector<int> bucket(H * R * n);
        for (int hh = 0; hh < H; ++hh)
          for (int r = 0; r < R; ++r)
            for (int64_t j = 0; j < n; ++j)
              bucket[(hh * R + r) * n + j] =
                  attn_lsh_hash(q.data() + j * D + hh * d, rot.data(), r, d, rc.lsh.n_buckets);
        for (int64_t i = 0; i < n; ++i)
          for (int hh = 0; hh < H; ++hh) {
            std::vector<double> orr(R * d, 0.0), lse(R);
            for (int r = 0; r < R; ++r) {
              const int* bk = bucket.data() + (hh * R + r) * n;
              std::vector<int64_t> keys;
              for (int64_t j = i; j >= 0 && static_cast<int64_t>(keys.size()) < window; --j)
                if (bk[j] == bk[i]) keys.push_back(j);
              std::vector<double> s;
              for (int64_t j : keys) {
                double dot = 0.0;
                for (int c2 = 0; c2 < d; ++c2)
                  dot += q[i * D + hh * d + c2] * kf[j * D + hh * d + c2];
                s.push_back(j == i ? -1e5 : dot / std::sqrt(double(d)));
              }
              const double mx = *std::max_element(s.begin(), s.end());
              double z = 0.0;
              for (double v : s) z += std::exp(v - mx);
              for (size_t t = 0; t < keys.size(); ++t)
                for (int c2 = 0; c2 < d; ++c2)
                  orr[r * d + c2] += std::exp(s[t] - mx) / z * vf[keys[t] * D + hh * d + c2];
              lse[r] = mx + std::log(z);
            }
            const double mx = *std::max_element(lse.begin(), lse.end());
            double z = 0.0;
            for (double v : lse) z += std::exp(v - mx);
            for (int c2 = 0; c2 < d; ++c2) {
              double acc = 0.0;
              for (int r = 0; r < R; ++r) acc += std::exp(lse[r] - mx) / z * orr[r * d + c2];
              o[i * D + hh * d + c2] = static_cast<float>(acc);
            }
          }
      };
      const std::vector<float> ref = written_out(*m, x, n, reversible, attn);
      const double err = rel_diff(dec.data(), ref.data(), n * kVocab);
      QVERIFY2(
          err <= 1e-4,
          qPrintable(QString("reversible=%1 |decode - reference| = %2").arg(reversible).arg(err)));
    }
  }

  // The full forward equals the residual written out with the chunked LSH attention, for the
  // reversible and the plain form; the two forms differ. 1e-5 relative: the same float32
  // operations except the FFN's row chunking (sgemm blocking may differ with the row count).
  void forward_equals_written_out_residual() {
    std::vector<float> logits_by_form[2];
    for (bool reversible : {true, false}) {
      ModelConfig c = small_config();
      c.lsh.reversible = reversible;
      auto m = make(c);
      QVERIFY(m);
      const ModelConfig& rc = m->config();
      const int64_t n = 33;
      const int H = rc.heads, d = rc.head_dim(), D = rc.dim;
      const LshSpec spec{rc.lsh.n_hashes, rc.lsh.chunk, rc.lsh.n_buckets};
      const auto x = random_tokens(n, 8);
      const std::vector<float> fwd = forward_all(*m, x, n);
      QCOMPARE(static_cast<int64_t>(fwd.size()), n * kVocab);
      bool ok = true;
      const auto attn = [&](int l, const Block& b, const std::vector<float>& h,
                            std::vector<float>& o) {
        // t (n, D); qk, v, oh (H, n, d).
        std::vector<float> t(n * D), qk(n * D), v(n * D), oh(n * D);
        op_matmul(h.data(), b.wqk, t.data(), n, D, D);
        op_split_heads(t.data(), qk.data(), n, H, d);
        op_matmul(h.data(), b.wv, t.data(), n, D, D);
        op_split_heads(t.data(), v.data(), n, H, d);
        const std::vector<float> rot =
            attn_lsh_rotations(rc.seed, l, spec.n_hashes, d, spec.n_buckets);
        ok =
            ok &&
            attn_lsh_forward_cpu(qk.data(), v.data(), oh.data(), H, n, d, spec, rot.data()).is_ok();
        op_merge_heads(oh.data(), o.data(), n, H, d);
      };
      const std::vector<float> ref = written_out(*m, x, n, reversible, attn);
      QVERIFY(ok);
      const double err = rel_diff(fwd.data(), ref.data(), n * kVocab);
      QVERIFY2(err <= 1e-5,
               qPrintable(
                   QString("reversible=%1 |forward - written out| = %2").arg(reversible).arg(err)));
      logits_by_form[reversible ? 1 : 0] = fwd;
    }
    QVERIFY(rel_diff(logits_by_form[0].data(), logits_by_form[1].data(),
                     static_cast<int64_t>(logits_by_form[0].size())) > 1e-2);
  }

  // Chunking the FFN over positions changes no value: rows are independent. Same 1e-5 reason.
  void chunked_ffn_equals_unchunked() {
    const int64_t n = 37;
    const auto x = random_tokens(n, 4);
    ModelConfig c = small_config();
    c.lsh.ff_chunks = 1;
    auto whole = make(c);
    QVERIFY(whole);
    const std::vector<float> ref = forward_all(*whole, x, n);
    const std::vector<float> ref_dec = decode_all(*whole, x, n);
    for (int chunks : {2, 3, 8, 64}) {
      c.lsh.ff_chunks = chunks;
      auto m = make(c);
      QVERIFY(m);
      const std::vector<float> got = forward_all(*m, x, n);
      QCOMPARE(got.size(), ref.size());
      QVERIFY2(rel_diff(got.data(), ref.data(), n * kVocab) <= 1e-5,
               qPrintable(QString("ff_chunks=%1").arg(chunks)));
      const std::vector<float> dec = decode_all(*m, x, n);
      QVERIFY(dec == ref_dec);  // one row per step: chunking is a no-op, bit for bit
    }
  }

  // Appending tokens can change earlier logits of the chunked training-time forward (tokens
  // that sort before a position move its chunk boundaries), so it is not causal; the decode
  // scheme is: the rows for the first n positions do not depend on what follows them.
  void chunked_forward_is_not_causal_decode_is() {
    auto m = make(small_config());
    QVERIFY(m);
    const int64_t n = m->config().seq_len(), prefix = 24;
    auto x = random_tokens(n, 6);
    const std::vector<float> full = forward_all(*m, x, n);
    const std::vector<float> part = forward_all(*m, x, prefix);
    QVERIFY2(rel_diff(part.data(), full.data(), prefix * kVocab) > 1e-3,
             "appending tokens was expected to move earlier forward logits");

    const std::vector<float> dec = decode_all(*m, x, n);
    auto y = x;
    for (int64_t p = prefix; p < n; ++p) y[p] = static_cast<uint8_t>(255 - x[p]);
    const std::vector<float> dec_y = decode_all(*m, y, n);
    const std::vector<float> dec_part = decode_all(*m, x, prefix);
    QVERIFY(std::equal(dec_part.begin(), dec_part.end(), dec.begin()));
    QVERIFY(std::equal(dec_part.begin(), dec_part.end(), dec_y.begin()));
    // Row prefix predicts x[prefix] from x[< prefix], which both sequences share; the next
    // row already sees the changed token.
    QVERIFY(!std::equal(dec.begin() + (prefix + 1) * kVocab, dec.end(),
                        dec_y.begin() + (prefix + 1) * kVocab));
    // The two attentions are different schemes: decode is not the forward.
    QVERIFY(rel_diff(dec.data(), full.data(), n * kVocab) > 1e-3);
  }

  // The predict-mode caches are every layer's keys and values (H, N, d each) and bucket ids
  // (H, n_hashes, N), all counted under caches.
  void decode_caches_are_counted() {
    auto m = make(small_config());
    QVERIFY(m);
    const ModelConfig& c = m->config();
    const size_t before =
        MemTracker::instance().snapshot().by_category[size_t(MemCategory::kCaches)].current;
    auto st = m->decode_begin();
    const size_t after =
        MemTracker::instance().snapshot().by_category[size_t(MemCategory::kCaches)].current;
    const size_t per_layer = 2 * size_t(c.seq_len()) * c.dim * sizeof(float) +
                             size_t(c.heads) * c.lsh.n_hashes * c.seq_len() * sizeof(int);
    QCOMPARE(after - before, per_layer * c.layers);
    st.reset();
    QCOMPARE(MemTracker::instance().snapshot().by_category[size_t(MemCategory::kCaches)].current,
             before);
  }

  void decode_past_length_is_refused() {
    auto m = make(small_config(8));
    QVERIFY(m);
    auto st = m->decode_begin();
    std::vector<float> row(kVocab);
    for (int p = 0; p < 8; ++p) QVERIFY(m->decode_step(*st, 1, row.data()).is_ok());
    QVERIFY(!m->decode_step(*st, 1, row.data()).is_ok());
  }
};

QTEST_APPLESS_MAIN(TestReformer)
#include "test_reformer.moc"
