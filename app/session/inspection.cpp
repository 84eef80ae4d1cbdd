// The engine calls behind the view tabs, run on the Session's worker thread: each request
// becomes one immutable InspectResult.
#include "inspection.h"

namespace session {

using namespace attnscope;

const std::vector<int64_t> kMemoryMeasured = {256, 1024, 4096};
const std::vector<int64_t> kMemoryAnalytic = {256,   1024,  4096,   12288,  16384,
                                              24000, 65536, 262144, 1048576};

namespace {

// The current model's widths under each family's defaults, resolved.
std::vector<ModelConfig> family_bases(const ModelConfig& cur) {
  std::vector<ModelConfig> out;
  for (Family f : {Family::kDense, Family::kSparse, Family::kReformer, Family::kPerceiverAR,
                   Family::kHourglass}) {
    ModelConfig c;
    c.family = f;
    c.modality = cur.modality;
    c.layers = cur.layers;
    c.dim = cur.dim;
    c.heads = cur.heads;
    c.ff_dim = cur.ff_dim;
    c.seed = cur.seed;
    if (f == cur.family) {
      c.sparse = cur.sparse;
      c.lsh = cur.lsh;
      c.hourglass = cur.hourglass;
    }
    if (config_resolve(c)) out.push_back(c);
  }
  return out;
}

}  // namespace

std::shared_ptr<const InspectResult> inspect_compute(const Model& model,
                                                     std::shared_ptr<const ModelSummary> summary,
                                                     std::shared_ptr<const RunStore> run,
                                                     const InspectRequest& req,
                                                     const std::atomic<bool>* cancel) {
  auto r = std::make_shared<InspectResult>();
  r->request = req;
  r->model = summary;
  r->run = run;
  const ModelConfig& cfg = model.config();
  r->n = run ? run->known(run->filled()) : 0;
  const uint8_t* x = run ? run->tokens() : nullptr;
  Status st = Status::ok();
  switch (req.kind) {
    case InspectKind::kAttention:
      if (r->n < 1) {
        st = invalid_argument("no tokens yet: open a prompt or generate first");
        break;
      }
      st = inspect_attention_row(model, x, r->n, req.layer, req.query, &r->row);
      break;
    case InspectKind::kPattern: {
      const bool lsh = cfg.family == Family::kReformer;
      const int64_t n = lsh ? r->n : cfg.seq_len();
      if (n < 1) {
        st = invalid_argument("no tokens yet: the Reformer pattern depends on the input");
        break;
      }
      r->n = n;
      r->patterns.resize(static_cast<size_t>(cfg.heads));
      for (int h = 0; h < cfg.heads && st; ++h) {
        PatternImage* p = &r->patterns[static_cast<size_t>(h)];
        st = lsh ? inspect_pattern_lsh(model, x, n, req.layer, h, req.grid, p)
                 : inspect_pattern(cfg, req.layer, h, n, req.grid, p);
      }
      break;
    }
    case InspectKind::kLsh:
      if (r->n < 1) {
        st = invalid_argument("no tokens yet: open a prompt or generate first");
        break;
      }
      st = inspect_lsh(model, x, r->n, req.layer, &r->lsh);
      break;
    case InspectKind::kMemory:
      for (const ModelConfig& base : family_bases(cfg)) {
        FamilyCurve curve;
        curve.family = family_name(base.family);
        curve.points = inspect_memory_curve(base, kMemoryAnalytic, false, cancel);
        const std::vector<MemoryPoint> measured =
            inspect_memory_curve(base, kMemoryMeasured, true, cancel);
        for (const MemoryPoint& m : measured)
          for (MemoryPoint& p : curve.points)
            if (p.length == m.length && m.measured) p = m;
        r->curves.push_back(std::move(curve));
      }
      break;
    case InspectKind::kStep: {
      if (r->n < 1) {
        st = invalid_argument("no tokens yet: open a prompt or generate first");
        break;
      }
      if (req.query < 0 || req.query >= r->n) {
        st = invalid_argument("position " + std::to_string(req.query) + " is not known yet (0.." +
                              std::to_string(r->n - 1) + ")");
        break;
      }
      r->n = req.query + 1;
      const int layers = inspect_layer_count(cfg);
      r->rows.resize(static_cast<size_t>(layers));
      r->row_errors.resize(static_cast<size_t>(layers));
      for (int l = 0; l < layers; ++l) {
        if (cancel && cancel->load()) break;
        const Status s =
            inspect_attention_row(model, x, r->n, l, req.query, &r->rows[static_cast<size_t>(l)]);
        if (!s) r->row_errors[static_cast<size_t>(l)] = s.message();
      }
      break;
    }
    case InspectKind::kCount:
      break;
  }
  if (!st) r->error = st.message();
  return r;
}

}  // namespace session
