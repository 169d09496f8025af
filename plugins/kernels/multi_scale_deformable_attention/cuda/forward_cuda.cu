// CUDA MultiScaleDeformableAttention: one thread per output element (n, q, m, c), consecutive threads the
// consecutive channels of one (query, head), so each corner's D channels are one coalesced read and the
// sample's position and weights, the same for all of them, come from L1. Positions, corner weights and the
// sum are fp32 for fp16 data too; the output is rounded once. The reference's order per sample (NaN/Inf
// propagate as on the CPU): sample = sum of corner weight x value, then out += attention weight x sample.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "../checks.h"
#include "common/status.h"

namespace gsmlp::msda::cuda {
namespace {

constexpr int kMaxLevels = 16;
constexpr int kThreads = 256;

// The level tables: device pointers (read by each block into shared memory), or host values by value.
struct Levels {
  const int32_t* shapes;  // nullptr: use `hw` and `start`
  const int32_t* starts;
  int32_t hw[2 * kMaxLevels];
  int32_t start[kMaxLevels];
};

struct Sizes {
  int64_t n, s, m, d, l, q, p;
};

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ void store(float* out, float v) { *out = v; }
__device__ __forceinline__ void store(__half* out, float v) { *out = __float2half_rn(v); }

template <typename T>
__global__ void sample_kernel(const T* __restrict__ value, const T* __restrict__ locations,
                              const T* __restrict__ weights, T* __restrict__ output, Sizes z, Levels levels) {
  __shared__ int32_t hw[2 * kMaxLevels], start[kMaxLevels];
  for (int i = threadIdx.x; i < z.l; i += blockDim.x) {
    hw[2 * i] = levels.shapes ? levels.shapes[2 * i] : levels.hw[2 * i];
    hw[2 * i + 1] = levels.shapes ? levels.shapes[2 * i + 1] : levels.hw[2 * i + 1];
    start[i] = levels.starts ? levels.starts[i] : levels.start[i];
  }
  __syncthreads();
  const int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= z.n * z.q * z.m * z.d) return;
  const int64_t c = index % z.d, head_row = index / z.d;  // head_row = (n * Lq + q) * M + m
  const int64_t m = head_row % z.m, n = head_row / z.m / z.q;
  const int64_t sample0 = head_row * z.l * z.p;
  float acc = 0.0f;
  for (int64_t l = 0; l < z.l; ++l) {
    const int64_t height = hw[2 * l], width = hw[2 * l + 1], first = start[l];
    for (int64_t k = 0; k < z.p; ++k) {
      const int64_t sample = sample0 + l * z.p + k;
      const float x = to_float(locations[2 * sample]) * static_cast<float>(width) - 0.5f;
      const float y = to_float(locations[2 * sample + 1]) * static_cast<float>(height) - 0.5f;
      float s = 0.0f;
      if (!isfinite(x) || !isfinite(y)) {
        s = nanf("");
      } else {
        const float x0 = floorf(x), y0 = floorf(y);
        if (x0 >= -1.0f && y0 >= -1.0f && x0 <= static_cast<float>(width - 1) && y0 <= static_cast<float>(height - 1)) {
          const float fx = x - x0, fy = y - y0;
          const int64_t cx = static_cast<int64_t>(x0), cy = static_cast<int64_t>(y0);
          for (int dy = 0; dy < 2; ++dy) {
            for (int dx = 0; dx < 2; ++dx) {
              const int64_t yy = cy + dy, xx = cx + dx;
              if (yy < 0 || yy >= height || xx < 0 || xx >= width) continue;
              const int64_t row = first + yy * width + xx;
              if (row < 0 || row >= z.s) continue;  // inconsistent device tables: never read outside value
              const float w = (dy ? fy : 1.0f - fy) * (dx ? fx : 1.0f - fx);
              s += w * to_float(value[((n * z.s + row) * z.m + m) * z.d + c]);
            }
          }
        }
      }
      acc += to_float(weights[sample]) * s;
    }
  }
  store(output + index, acc);
}

int launch(const gsmlp_msda_problem& p, const gsmlp_msda_tensors& t, const Levels& levels, cudaStream_t stream) {
  if (p.levels > kMaxLevels)
    return fail_fmt(GSMLP_NOT_SUPPORTED, "%lld levels; the CUDA kernel supports at most %d",
                    static_cast<long long>(p.levels), kMaxLevels);
  const int64_t outputs = rows(p) * p.heads * p.head_dim;
  if (outputs == 0) return GSMLP_OK;
  const int64_t blocks = (outputs + kThreads - 1) / kThreads;
  if (blocks > 0x7fffffff)
    return fail_fmt(GSMLP_NOT_SUPPORTED, "%lld output elements; the CUDA kernel supports at most %lld",
                    static_cast<long long>(outputs), 0x7fffffffLL * kThreads);
  const Sizes z{p.batch, p.value_len, p.heads, p.head_dim, p.levels, p.queries, p.points};
  const dim3 grid(static_cast<unsigned>(blocks));
  if (p.dtype == GSMLP_FP16) {
    sample_kernel<<<grid, kThreads, 0, stream>>>(
        static_cast<const __half*>(t.value), static_cast<const __half*>(t.sampling_locations),
        static_cast<const __half*>(t.attention_weights), static_cast<__half*>(t.output), z, levels);
  } else {
    sample_kernel<<<grid, kThreads, 0, stream>>>(
        static_cast<const float*>(t.value), static_cast<const float*>(t.sampling_locations),
        static_cast<const float*>(t.attention_weights), static_cast<float*>(t.output), z, levels);
  }
  if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess)
    return fail_fmt(GSMLP_CUDA_ERROR, "MultiScaleDeformableAttention kernel: %s (%s)", cudaGetErrorString(e),
                    cudaGetErrorName(e));
  return GSMLP_OK;
}

}  // namespace
}  // namespace gsmlp::msda::cuda

extern "C" {

int gsmlp_msda_cuda_forward(const gsmlp_msda_problem* problem, const gsmlp_msda_tensors* tensors, void* stream) {
  using namespace gsmlp;
  clear_error();
  if (const int status = msda::check_arguments(problem, tensors); status != GSMLP_OK) return status;
  msda::cuda::Levels levels{};
  levels.shapes = tensors->spatial_shapes;
  levels.starts = tensors->level_start_index;
  return msda::cuda::launch(*problem, *tensors, levels, static_cast<cudaStream_t>(stream));
}

int gsmlp_msda_cuda_forward_host_levels(const gsmlp_msda_problem* problem, const gsmlp_msda_tensors* tensors,
                                        void* stream) {
  using namespace gsmlp;
  clear_error();
  if (const int status = msda::check_arguments(problem, tensors); status != GSMLP_OK) return status;
  if (const int status = msda::check_levels(*problem, tensors->spatial_shapes, tensors->level_start_index);
      status != GSMLP_OK)
    return status;
  msda::cuda::Levels levels{};
  for (int64_t l = 0; l < problem->levels && l < msda::cuda::kMaxLevels; ++l) {
    levels.hw[2 * l] = tensors->spatial_shapes[2 * l];
    levels.hw[2 * l + 1] = tensors->spatial_shapes[2 * l + 1];
    levels.start[l] = tensors->level_start_index[l];
  }
  return msda::cuda::launch(*problem, *tensors, levels, static_cast<cudaStream_t>(stream));
}

}  // extern "C"
