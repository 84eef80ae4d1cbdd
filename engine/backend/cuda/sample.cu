// Token sampling on the device with Sampler::sample's rules (engine/generate/generate.cpp):
// a stable descending sort of the 256 logits (rank by count, ties to the lower index), then
// temperature, top-k, top-p and the draw against a given uniform u, in double and in rank
// order so that the result equals the CPU's whenever exp agrees to the last bit.
#include "backend/cuda/common.cuh"

namespace attnscope::cuda {

namespace {

// One block of 256 threads.
__global__ void sample_kernel(const float* logits, float temperature, int top_k, float top_p,
                              double u, const double* u_dev, int* token_out) {
  __shared__ float lg[kVocab];
  __shared__ int order[kVocab];
  const int i = threadIdx.x;
  lg[i] = logits[i];
  __syncthreads();
  int rank = 0;
  const float x = lg[i];
  for (int j = 0; j < kVocab; ++j) rank += (lg[j] > x || (lg[j] == x && j < i)) ? 1 : 0;
  order[rank] = i;
  __syncthreads();
  if (i != 0) return;
  if (temperature == 0.0f) {
    *token_out = order[0];
    return;
  }
  const double uu = u_dev ? *u_dev : u;
  double prob[kVocab];
  const double top = lg[order[0]];
  double total = 0.0;
  for (int r = 0; r < kVocab; ++r) {
    prob[r] = exp((lg[order[r]] - top) / temperature);
    total += prob[r];
  }
  int keep = top_k > 0 ? top_k : kVocab;
  if (top_p < 1.0f) {
    double mass = 0.0;
    for (int r = 0; r < keep; ++r) {
      mass += prob[r] / total;
      if (mass >= top_p) {
        keep = r + 1;
        break;
      }
    }
  }
  double kept = 0.0;
  for (int r = 0; r < keep; ++r) kept += prob[r];
  double acc = 0.0;
  const double target = uu * kept;
  for (int r = 0; r < keep; ++r) {
    acc += prob[r];
    if (target < acc) {
      *token_out = order[r];
      return;
    }
  }
  *token_out = order[keep - 1];
}

}  // namespace

Status sample_token(CudaCtx& ctx, const float* logits, float temperature, int top_k, float top_p,
                    double u, int* token_out, const double* u_dev) {
  if (!(temperature >= 0.0f) || temperature > 100.0f)
    return invalid_argument("temperature must be in [0, 100]");
  if (top_k < 0 || top_k > kVocab) return invalid_argument("top-k must be in 0..256 (0 = off)");
  if (!(top_p > 0.0f && top_p <= 1.0f)) return invalid_argument("top-p must be in (0, 1]");
  sample_kernel<<<1, kVocab, 0, ctx.stream>>>(logits, temperature, top_k, top_p, u, u_dev,
                                              token_out);
  ATTN_CUDA_CHECK_LAUNCH();
  return Status::ok();
}

}  // namespace attnscope::cuda
