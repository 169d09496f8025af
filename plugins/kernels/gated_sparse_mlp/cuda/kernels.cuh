// Device-side pieces of the CUDA GatedSparseMLP and the launchers forward_cuda.cu chains together.
//
// Flow on one stream, all scratch in the caller's workspace (layout in forward_cuda.cu):
//   1. gate:     mask[t][j] = !(logit <= threshold), active_blocks[t]         (gate.cu)
//   2. bucket:   for every block j, the tokens that need it, in token order     (gate.cu)
//   3. init:     yacc[t] = b2
//   4. fc1:      per block j, H_j = relu(X[list_j] W1_j^T + b1_j)  as a grouped GEMM   (grouped_gemm.cu)
//   5. fc2:      per block j, yacc[list_j] += H_j W2_j^T           as a grouped GEMM, fp32 atomics
//   6. convert:  y = yacc (fp16 output only; fp32 accumulates in y directly)
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace gsmlp::cuda {

struct GateArgs {
  const void* x;
  int64_t x_stride;
  const void* gate_down;  // nullptr: every block active
  const void* gate_up;
  const void* gate_bias;
  int64_t tokens, d, nb, rank;
  float threshold;
  uint8_t* mask;           // [tokens, nb]
  int32_t* active_blocks;  // optional [tokens]
};

// One grouped GEMM over the blocks: for block j (grid.y), rows r < counts[j]:
//   out_j[r][n] (op)= sum_k A_j[r][k] * Bmat_j(k, n),   Bmat_j(k, n) = b[j * b_block_offset + n * ldb + k]
// fc1: A rows gathered through lists, out = hidden buffer with bias + ReLU.
// fc2: A = hidden buffer rows, out rows gathered through lists, fp32 atomicAdd into the accumulator.
struct GroupedGemmArgs {
  const void* a;
  int64_t lda;
  int64_t a_block_offset;     // elements between consecutive blocks' A (0 for X)
  bool gather_a;              // A row r is lists_j[r] (fc1) or r (fc2)
  const void* b;
  int64_t ldb;
  int64_t b_block_offset;
  const void* bias;           // fc1: b1 (indexed j * block + n); fc2: nullptr
  int64_t k_total;            // fc1: d_model; fc2: hidden (K of block j is the block's width)
  int64_t n_total;            // fc1: hidden (N of block j is its width); fc2: d_model
  bool k_is_block;            // fc2: K = width of block j
  int64_t block, hidden;
  const int32_t* counts;      // [nb]
  const int32_t* lists;       // [nb, tokens]
  int64_t tokens;
  void* out;                  // fc1: hidden buffer (type T) [nb, tokens, block]; fc2: float [tokens, ldo]
  int64_t ldo;
  int64_t out_block_offset;
};

cudaError_t launch_gate(const GateArgs& args, bool fp16, cudaStream_t stream);
cudaError_t launch_bucket(const uint8_t* mask, int64_t tokens, int64_t nb, int32_t* counts, int32_t* lists,
                          cudaStream_t stream);
cudaError_t launch_init_accumulator(const void* b2, bool fp16, float* yacc, int64_t tokens, int64_t d,
                                    cudaStream_t stream);
cudaError_t launch_fc1(const GroupedGemmArgs& args, int64_t nb, bool fp16, cudaStream_t stream);
cudaError_t launch_fc2(const GroupedGemmArgs& args, int64_t nb, bool fp16, cudaStream_t stream);
cudaError_t launch_to_half(const float* src, __half* dst, int64_t n, cudaStream_t stream);

template <typename T>
__device__ __forceinline__ float to_float(T v);
template <>
__device__ __forceinline__ float to_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ float to_float<__half>(__half v) { return __half2float(v); }

inline unsigned grid_for(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

}  // namespace gsmlp::cuda
