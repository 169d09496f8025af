// The micro-gate (one CTA per token) and the bucketing of tokens by active block (one CTA per block).
#include "kernels.cuh"

namespace gsmlp::cuda {
namespace {

constexpr int kGateThreads = 128;
constexpr int kBucketThreads = 256;

template <typename T>
__global__ void gate_kernel(GateArgs g) {
  extern __shared__ float z[];  // [rank]
  __shared__ int active_count;
  const int64_t t = blockIdx.x;
  const T* x = static_cast<const T*>(g.x) + t * g.x_stride;
  if (threadIdx.x == 0) active_count = 0;
  if (g.gate_down) {
    const T* down = static_cast<const T*>(g.gate_down);
    for (int64_t r = threadIdx.x; r < g.rank; r += blockDim.x) {
      float acc = 0.0f;
      for (int64_t k = 0; k < g.d; ++k) acc += to_float(x[k]) * to_float(down[r * g.d + k]);
      z[r] = acc;
    }
  }
  __syncthreads();
  int local = 0;
  for (int64_t j = threadIdx.x; j < g.nb; j += blockDim.x) {
    bool active = true;
    if (g.gate_down) {
      const T* up = static_cast<const T*>(g.gate_up);
      float logit = to_float(static_cast<const T*>(g.gate_bias)[j]);
      for (int64_t r = 0; r < g.rank; ++r) logit += z[r] * to_float(up[j * g.rank + r]);
      active = !(logit <= g.threshold);  // NaN keeps the block active
    }
    g.mask[t * g.nb + j] = active;
    local += active;
  }
  atomicAdd(&active_count, local);  // integer: exact in any order
  __syncthreads();
  if (threadIdx.x == 0 && g.active_blocks) g.active_blocks[t] = active_count;
}

// Lists block j's tokens in token order: a CTA-wide exclusive scan over each 256-token slice.
__global__ void bucket_kernel(const uint8_t* mask, int64_t tokens, int64_t nb, int32_t* counts, int32_t* lists) {
  __shared__ int warp_totals[kBucketThreads / 32];
  __shared__ int base;
  const int64_t j = blockIdx.x;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (threadIdx.x == 0) base = 0;
  __syncthreads();
  for (int64_t start = 0; start < tokens; start += kBucketThreads) {
    const int64_t t = start + threadIdx.x;
    const bool active = t < tokens && mask[t * nb + j];
    const unsigned ballot = __ballot_sync(0xffffffffu, active);
    if (lane == 0) warp_totals[warp] = __popc(ballot);
    __syncthreads();
    int offset = base;
    for (int w = 0; w < warp; ++w) offset += warp_totals[w];
    offset += __popc(ballot & ((1u << lane) - 1u));
    if (active) lists[j * tokens + offset] = static_cast<int32_t>(t);
    __syncthreads();
    if (threadIdx.x == 0)
      for (int w = 0; w < kBucketThreads / 32; ++w) base += warp_totals[w];
    __syncthreads();
  }
  if (threadIdx.x == 0) counts[j] = base;
}

}  // namespace

cudaError_t launch_gate(const GateArgs& args, bool fp16, cudaStream_t stream) {
  const size_t shared = sizeof(float) * static_cast<size_t>(args.gate_down ? args.rank : 1);
  const dim3 grid(static_cast<unsigned>(args.tokens));
  if (fp16) {
    gate_kernel<__half><<<grid, kGateThreads, shared, stream>>>(args);
  } else {
    gate_kernel<float><<<grid, kGateThreads, shared, stream>>>(args);
  }
  return cudaGetLastError();
}

cudaError_t launch_bucket(const uint8_t* mask, int64_t tokens, int64_t nb, int32_t* counts, int32_t* lists,
                          cudaStream_t stream) {
  bucket_kernel<<<static_cast<unsigned>(nb), kBucketThreads, 0, stream>>>(mask, tokens, nb, counts, lists);
  return cudaGetLastError();
}

}  // namespace gsmlp::cuda
