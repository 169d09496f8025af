// CUDA entry points of the C ABI: workspace layout, argument checks, the launch sequence, error checks.
#include <cstdio>

#include "../checks.h"
#include "common/status.h"
#include "kernels.cuh"

namespace gsmlp::cuda {
namespace {

constexpr int kElementwiseThreads = 256;

size_t align256(size_t bytes) { return (bytes + 255) / 256 * 256; }

// Worst case (every block active for every token) sized from the problem, so the TensorRT plugin can
// declare it before it sees the masks. Lists and hidden buffers use a fixed stride of `tokens` per
// block: no prefix sum is needed between the bucketing and the GEMMs.
struct Layout {
  size_t mask, counts, lists, hidden, yacc, total;
};

Layout layout_for(const gsmlp_problem& p) {
  const size_t t = static_cast<size_t>(p.tokens), nb = static_cast<size_t>(num_blocks(&p));
  const size_t element = p.dtype == GSMLP_FP16 ? 2 : 4;
  Layout l{};
  size_t cursor = 0;
  auto take = [&](size_t bytes) {
    const size_t offset = cursor;
    cursor += align256(bytes);
    return offset;
  };
  l.mask = take(t * nb);
  l.counts = take(nb * sizeof(int32_t));
  l.lists = take(t * nb * sizeof(int32_t));
  l.hidden = take(t * nb * static_cast<size_t>(p.block_size) * element);
  l.yacc = take(p.dtype == GSMLP_FP16 ? t * static_cast<size_t>(p.d_model) * sizeof(float) : 0);
  l.total = cursor + 256;  // slack to align the caller's base pointer
  return l;
}

template <typename T>
__global__ void init_accumulator(const T* b2, float* yacc, int64_t tokens, int64_t d) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < tokens * d) yacc[i] = to_float(b2[i % d]);
}

__global__ void to_half(const float* src, __half* dst, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) dst[i] = __float2half_rn(src[i]);
}

int cuda_fail(const char* step, cudaError_t error) {
  return fail_fmt(GSMLP_CUDA_ERROR, "%s: %s (%s)", step, cudaGetErrorString(error), cudaGetErrorName(error));
}

GroupedGemmArgs fc1_args(const gsmlp_problem& p, const gsmlp_tensors& t, const Layout& l, char* ws) {
  GroupedGemmArgs g{};
  g.a = t.x;
  g.lda = t.x_row_stride;
  g.gather_a = true;
  g.b = t.w1;
  g.ldb = p.d_model;
  g.b_block_offset = p.block_size * p.d_model;
  g.bias = t.b1;
  g.k_total = p.d_model;
  g.n_total = p.hidden;
  g.out = ws + l.hidden;
  g.ldo = p.block_size;
  g.out_block_offset = p.tokens * p.block_size;
  return g;
}

GroupedGemmArgs fc2_args(const gsmlp_problem& p, const gsmlp_tensors& t, const Layout& l, char* ws, float* yacc) {
  GroupedGemmArgs g{};
  g.a = ws + l.hidden;
  g.lda = p.block_size;
  g.a_block_offset = p.tokens * p.block_size;
  g.b = t.w2;
  g.ldb = p.hidden;
  g.b_block_offset = p.block_size;
  g.k_total = p.hidden;
  g.n_total = p.d_model;
  g.k_is_block = true;
  g.out = yacc;
  g.ldo = p.d_model;
  return g;
}

int run(const gsmlp_problem& p, const gsmlp_tensors& t, char* ws, const Layout& l, cudaStream_t stream) {
  const bool fp16 = p.dtype == GSMLP_FP16;
  const int64_t nb = num_blocks(&p);
  auto* mask = reinterpret_cast<uint8_t*>(ws + l.mask);
  auto* counts = reinterpret_cast<int32_t*>(ws + l.counts);
  auto* lists = reinterpret_cast<int32_t*>(ws + l.lists);
  float* yacc = fp16 ? reinterpret_cast<float*>(ws + l.yacc) : static_cast<float*>(t.y);

  const GateArgs gate{t.x, t.x_row_stride, t.gate_down_w, t.gate_up_w, t.gate_up_b, p.tokens, p.d_model, nb,
                      p.rank, p.threshold, mask, t.active_blocks};
  if (cudaError_t e = launch_gate(gate, fp16, stream); e != cudaSuccess) return cuda_fail("gate kernel", e);
  if (t.block_mask) {  // the op's optional BlockMask output: the gate's own decisions, byte for byte
    const size_t bytes = static_cast<size_t>(p.tokens) * static_cast<size_t>(nb);
    if (cudaError_t e = cudaMemcpyAsync(t.block_mask, mask, bytes, cudaMemcpyDeviceToDevice, stream); e != cudaSuccess)
      return cuda_fail("block mask copy", e);
  }
  if (cudaError_t e = launch_bucket(mask, p.tokens, nb, counts, lists, stream); e != cudaSuccess)
    return cuda_fail("bucket kernel", e);
  const int64_t outputs = p.tokens * p.d_model;
  const unsigned grid = grid_for(outputs, kElementwiseThreads);
  if (fp16) {
    init_accumulator<<<grid, kElementwiseThreads, 0, stream>>>(static_cast<const __half*>(t.b2), yacc, p.tokens,
                                                                p.d_model);
  } else {
    init_accumulator<<<grid, kElementwiseThreads, 0, stream>>>(static_cast<const float*>(t.b2), yacc, p.tokens,
                                                                p.d_model);
  }
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return cuda_fail("init kernel", e);

  GroupedGemmArgs fc1 = fc1_args(p, t, l, ws), fc2 = fc2_args(p, t, l, ws, yacc);
  for (GroupedGemmArgs* g : {&fc1, &fc2}) {
    g->block = p.block_size;
    g->hidden = p.hidden;
    g->counts = counts;
    g->lists = lists;
    g->tokens = p.tokens;
  }
  if (cudaError_t e = launch_fc1(fc1, nb, fp16, stream); e != cudaSuccess) return cuda_fail("fc1 grouped GEMM", e);
  if (cudaError_t e = launch_fc2(fc2, nb, fp16, stream); e != cudaSuccess) return cuda_fail("fc2 grouped GEMM", e);
  if (fp16) {
    to_half<<<grid, kElementwiseThreads, 0, stream>>>(yacc, static_cast<__half*>(t.y), outputs);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return cuda_fail("fp16 output kernel", e);
  }
  return GSMLP_OK;
}

}  // namespace
}  // namespace gsmlp::cuda

extern "C" {

size_t gsmlp_cuda_workspace_size(const gsmlp_problem* problem) {
  if (!problem || problem->tokens < 0 || problem->d_model < 1 || problem->hidden < 1 || problem->block_size < 1)
    return 0;
  return gsmlp::cuda::layout_for(*problem).total;
}

int gsmlp_cuda_forward(const gsmlp_problem* problem, const gsmlp_tensors* tensors, void* workspace,
                       size_t workspace_bytes, void* stream) {
  using namespace gsmlp;
  clear_error();
  if (const int status = check_arguments(problem, tensors); status != GSMLP_OK) return status;
  if (num_blocks(problem) > 65535)
    return fail_fmt(GSMLP_NOT_SUPPORTED, "%lld blocks; the CUDA kernels support at most 65535 (grid.y)",
                    static_cast<long long>(num_blocks(problem)));
  if (problem->tokens == 0) return GSMLP_OK;
  if (problem->tokens > 0x7fffffff)
    return fail_fmt(GSMLP_NOT_SUPPORTED, "%lld tokens; the CUDA kernels support at most 2^31-1",
                    static_cast<long long>(problem->tokens));
  const cuda::Layout layout = cuda::layout_for(*problem);
  if (!workspace || workspace_bytes < layout.total)
    return fail_fmt(GSMLP_WORKSPACE_TOO_SMALL, "workspace has %zu bytes; this problem needs %zu", workspace_bytes,
                    layout.total);
  const auto base = (reinterpret_cast<uintptr_t>(workspace) + 255) & ~static_cast<uintptr_t>(255);
  return cuda::run(*problem, *tensors, reinterpret_cast<char*>(base), layout, static_cast<cudaStream_t>(stream));
}

}  // extern "C"
