// Generation with a keep mask: kept positions copy the prompt, a prefix mask equals the prefix
// prompt, sampled positions are drawn from the logits given the final tokens before them, and
// masks or prompts of the wrong size are refused.
#include <QtTest>
#include <algorithm>

#include "attnscope/generate.h"
#include "attnscope/model.h"

using namespace attnscope;

namespace {

std::unique_ptr<Model> make_image_model() {
  ModelConfig c;
  c.family = Family::kDense;
  c.modality = *modality_parse("image:4x4x3");
  c.layers = 2;
  c.dim = 32;
  c.heads = 4;
  c.seed = 7;
  if (!config_resolve(c).is_ok()) return nullptr;
  auto m = model_create(c, model_init_weights(c, InitOptions{3, /*zero_logits=*/false}));
  return m ? std::move(*m) : nullptr;
}

std::vector<uint8_t> pattern(int64_t n) {
  std::vector<uint8_t> x(static_cast<size_t>(n));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<uint8_t>(i * 53 + 11);
  return x;
}

// Painted pixels 1, 2 and 9 (every channel) of a 4x4x3 image: a region with kept pixels after it.
// A mask shorter than the image keeps the painted positions below n.
std::vector<uint8_t> painted_mask(int64_t n) {
  std::vector<uint8_t> keep(static_cast<size_t>(n), 1);
  for (int px : {1, 2, 9})
    for (int ch = 0; ch < 3; ++ch)
      if (const int64_t p = px * 3 + ch; p < n) keep[static_cast<size_t>(p)] = 0;
  return keep;
}

}  // namespace

class TestGenerate : public QObject {
  Q_OBJECT

 private slots:
  void kept_positions_equal_the_prompt() {
    auto m = make_image_model();
    QVERIFY(m);
    const int64_t n = m->config().seq_len();
    GenerateRequest req;
    req.prompt = pattern(n);
    req.keep = painted_mask(n);
    req.sampling = {1.0f, 0, 1.0f, 99};
    auto out = generate(*m, req);
    QVERIFY(out);
    QCOMPARE(static_cast<int64_t>(out->size()), n);
    int changed = 0;
    for (int64_t p = 0; p < n; ++p) {
      if (req.keep[static_cast<size_t>(p)])
        QCOMPARE((*out)[static_cast<size_t>(p)], req.prompt[static_cast<size_t>(p)]);
      else
        changed += (*out)[static_cast<size_t>(p)] != req.prompt[static_cast<size_t>(p)];
    }
    QVERIFY(changed > 0);
  }

  void prefix_mask_equals_prefix_prompt() {
    auto m = make_image_model();
    QVERIFY(m);
    const int64_t n = m->config().seq_len();
    const auto image = pattern(n);
    for (int64_t kept : {int64_t{0}, int64_t{7}, int64_t{24}, n}) {
      GenerateRequest prefix;
      prefix.prompt.assign(image.begin(), image.begin() + kept);
      prefix.sampling = {0.9f, 40, 0.95f, 1234};
      GenerateRequest masked = prefix;
      masked.prompt = image;
      masked.length = n;
      masked.keep.assign(static_cast<size_t>(n), 0);
      std::fill(masked.keep.begin(), masked.keep.begin() + kept, 1);
      auto a = generate(*m, prefix), b = generate(*m, masked);
      QVERIFY(a && b);
      QCOMPARE(*b, *a);
    }
  }

  // Greedy: every sampled position is the argmax of the full forward's logits over the final
  // tokens, so the sampled region conditions on everything before it, kept or sampled.
  void sampled_positions_follow_their_logits() {
    auto m = make_image_model();
    QVERIFY(m);
    const int64_t n = m->config().seq_len();
    GenerateRequest req;
    req.prompt = pattern(n);
    req.keep = painted_mask(n);
    req.sampling = {0.0f, 0, 1.0f, 5};
    auto out = generate(*m, req);
    QVERIFY(out);
    Tensor logits;
    int64_t first = -1;
    QVERIFY(m->forward(out->data(), n, &logits, &first).is_ok());
    QCOMPARE(first, int64_t{0});
    for (int64_t p = 0; p < n; ++p) {
      if (req.keep[static_cast<size_t>(p)]) continue;
      const float* row = logits.data() + p * kVocab;
      const int best = static_cast<int>(std::max_element(row, row + kVocab) - row);
      QCOMPARE(static_cast<int>((*out)[static_cast<size_t>(p)]), best);
    }
  }

  void sizes_are_checked() {
    auto m = make_image_model();
    QVERIFY(m);
    const int64_t n = m->config().seq_len();
    GenerateRequest req;
    req.prompt = pattern(n);
    req.keep = painted_mask(n - 1);
    auto short_mask = generate(*m, req);
    QVERIFY(!short_mask);
    QVERIFY(QString::fromStdString(short_mask.status().message()).contains("keep mask"));
    req.keep = painted_mask(n);
    req.prompt.pop_back();
    auto short_prompt = generate(*m, req);
    QVERIFY(!short_prompt);
    QVERIFY(QString::fromStdString(short_prompt.status().message()).contains("one token per"));
    req.prompt = pattern(n);
    req.length = 24;
    QVERIFY(!generate(*m, req));
    req.keep = painted_mask(24);
    req.prompt = pattern(24);
    auto partial = generate(*m, req);
    QVERIFY(partial);
    QCOMPARE(static_cast<int64_t>(partial->size()), int64_t{24});
  }
};

QTEST_APPLESS_MAIN(TestGenerate)
#include "test_generate.moc"
