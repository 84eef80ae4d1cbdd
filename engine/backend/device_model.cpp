// model_create_cuda (backend.h): a Model whose forward is the family's one graph
// (models/family_graph.h) run by the CUDA executor (exec/device_graph.h) over weights uploaded
// once, and whose decode step, for the dense and sparse families, is the same graph run on one
// row with the attention ops appending to and reading device K/V caches. What the device does not
// run is said, not approximated: Perceiver AR, Hourglass and Reformer decode on the CPU model
// (model_create_placed places them there), and the attention views run on the CPU model over the
// same weights.
#ifdef ATTNSCOPE_HAVE_CUDA

#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "attnscope/backend.h"
#include "attnscope/cuda.h"
#include "exec/device_graph.h"
#include "models/common.h"
#include "models/family_graph.h"

namespace attnscope {
namespace {

using exec::DeviceGraph;
using exec::DVar;

class DeviceDecodeState : public DecodeState {
 public:
  exec::DeviceDecode caches;
  Status alloc;                 // whether the caches could be allocated
  std::vector<uint8_t> tokens;  // x[0 .. pos - 1]: embed reads the previous one
};

bool device_decodes(Family f) {
  return f == Family::kDense || f == Family::kSparse;
}

class DeviceModel : public Model {
 public:
  DeviceModel(ModelConfig cfg, std::unique_ptr<Model> cpu, std::shared_ptr<exec::DeviceRuntime> rt)
      : Model(std::move(cfg), cpu->weights()),  // shared storage, not a copy
        cpu_(std::move(cpu)),
        rt_(std::move(rt)) {}

  // Uploads every weight (vectors as (1, n), matrices as stored), as the tape's parameters.
  Status init() {
    DeviceGraph g(rt_);
    auto params = std::make_shared<exec::DParams>();
    for (const ParamSpec& s : model_param_specs(cfg_)) {
      const Tensor& t = w_.at(s.name);
      const int64_t rows = s.shape.size() == 1 ? 1 : s.shape[0];
      params->emplace(s.name, exec::upload(g, t.data(), rows, t.numel() / rows));
    }
    ATTN_RETURN_IF_ERROR(exec::device_sync(*rt_));
    ATTN_RETURN_IF_ERROR(g.status());
    params_ = std::move(params);
    return Status::ok();
  }

  Status forward(const uint8_t* x, int64_t n, Tensor* logits, int64_t* first_row,
                 const CancelFlag* cancel) const override {
    if (!x || n < 1 || n > cfg_.seq_len())
      return invalid_argument("sequence of " + std::to_string(n) + " tokens; the model takes 1.." +
                              std::to_string(cfg_.seq_len()));
    std::lock_guard<std::mutex> lock(mu_);
    DeviceGraph g(rt_);
    tape::Ctx<DeviceGraph> c = ctx(cancel);
    DVar emb = exec::embed(g, *params_, cfg_, x, 0, n);
    int64_t first = 0;
    DVar hidden = tape::family_hidden(g, c, emb, &first);
    DVar out = exec::head_logits(g, *params_, hidden);  // (n - first, 256)
    if (cancel && cancel->load()) return cancelled("forward cancelled");
    Tensor t = Tensor::zeros({out->rows, kVocab}, MemCategory::kActivations);
    ATTN_RETURN_IF_ERROR(exec::download(g, out, t.data()));
    *logits = std::move(t);
    *first_row = first;
    return Status::ok();
  }

  std::unique_ptr<DecodeState> decode_begin() const override {
    auto st = std::make_unique<DeviceDecodeState>();
    if (!device_decodes(cfg_.family)) return st;
    DeviceGraph g(rt_);
    const int64_t cap = cfg_.seq_len(), H = cfg_.heads, d = cfg_.head_dim();
    st->caches.cap = cap;
    for (int l = 0; l < cfg_.layers; ++l) {
      st->caches.k.push_back(exec::zeros(g, H * cap, d));
      st->caches.v.push_back(exec::zeros(g, H * cap, d));
    }
    st->alloc = g.status();
    return st;
  }

  Status decode_step(DecodeState& base, int prev_token, float* logits) const override {
    if (!device_decodes(cfg_.family))
      return unsupported(std::string("the device decodes dense and sparse models; ") +
                         family_name(cfg_.family) +
                         " decoding runs on the CPU model (model_create) over the same weights");
    auto& st = static_cast<DeviceDecodeState&>(base);
    const int64_t i = st.pos;
    ATTN_RETURN_IF_ERROR(check_decode_step(cfg_, i, prev_token));
    ATTN_RETURN_IF_ERROR(st.alloc);
    std::lock_guard<std::mutex> lock(mu_);
    if (i > 0) st.tokens.push_back(static_cast<uint8_t>(prev_token));
    DeviceGraph g(rt_);
    g.decode = &st.caches;
    st.caches.pos = i;
    tape::Ctx<DeviceGraph> c = ctx(nullptr);
    DVar emb = exec::embed(g, *params_, cfg_, st.tokens.data(), i, 1);
    int64_t first = 0;
    DVar out = exec::head_logits(g, *params_, tape::family_hidden(g, c, emb, &first));
    ATTN_RETURN_IF_ERROR(exec::download(g, out, logits));
    ++st.pos;
    return Status::ok();
  }

  // The views read q, k, v and outputs on the host: the CPU model's graph, same weights.
  Status attention_layer(const uint8_t* x, int64_t n, int layer,
                         const AttnLayerFn& fn) const override {
    return cpu_->attention_layer(x, n, layer, fn);
  }

 private:
  tape::Ctx<DeviceGraph> ctx(const CancelFlag* cancel) const {
    tape::Ctx<DeviceGraph> c;
    c.cfg = cfg_;
    c.p = params_;
    c.opt.cross_dropout = 0;
    c.opt.cancel = cancel;
    return c;
  }

  std::unique_ptr<Model> cpu_;  // the weights' one host copy; the views and the checks
  std::shared_ptr<exec::DeviceRuntime> rt_;
  std::shared_ptr<const exec::DParams> params_;
  mutable std::mutex mu_;
};

}  // namespace

Expected<std::unique_ptr<Model>> model_create_cuda(const ModelConfig& in, const WeightMap& w,
                                                   CudaPrecision p) {
  ModelConfig cfg = in;
  ATTN_RETURN_IF_ERROR(config_resolve(cfg));
  ATTN_RETURN_IF_ERROR(config_validate(cfg));
  ATTN_RETURN_IF_ERROR(model_check_weights(cfg, w));
  const int d = cfg.head_dim();
  if (d != 32 && d != 64 && d != 128)
    return unsupported(
        "the CUDA attention kernels take head widths 32, 64 and 128; this model's "
        "is " +
        std::to_string(d));
  auto rt = exec::device_runtime_create(p);
  if (!rt) return rt.status();
  auto cpu = model_create(cfg, w);
  if (!cpu) return cpu.status();
  auto m = std::make_unique<DeviceModel>(cfg, std::move(*cpu), std::move(*rt));
  ATTN_RETURN_IF_ERROR(m->init());
  return std::unique_ptr<Model>(std::move(m));
}

}  // namespace attnscope

#else  // no CUDA backend: the build says so (backend/cuda/absent.cpp has the kernels' answers)

#include "attnscope/backend.h"

namespace attnscope {

Expected<std::unique_ptr<Model>> model_create_cuda(const ModelConfig&, const WeightMap&,
                                                   CudaPrecision) {
  return cuda_available();  // the reason this build has no device
}

}  // namespace attnscope

#endif  // ATTNSCOPE_HAVE_CUDA
