// The grouped GEMMs of fc1 and fc2: grid.y walks the blocks, grid.x the 64-row tiles of a block's token
// list (tiles past counts[j] exit at once). fp16 runs on tensor cores (WMMA 16x16x16, fp32 accumulate);
// fp32 runs as FFMA register tiles, because TF32 tensor cores would miss the op spec's 1e-4 tolerance.
#include <mma.h>

#include "kernels.cuh"

namespace gsmlp::cuda {
namespace {

constexpr int kTileM = 64, kTileN = 64, kTileK = 16;

struct BlockView {  // GroupedGemmArgs resolved for block j
  int64_t m, n, k, n_offset_in_hidden;
  const int32_t* list;
};

__device__ BlockView view_of(const GroupedGemmArgs& g, int64_t j) {
  const int64_t width = min(g.block, g.hidden - j * g.block);
  return {g.counts[j], g.k_is_block ? g.n_total : width, g.k_is_block ? width : g.k_total, j * g.block,
          g.lists + j * g.tokens};
}

template <typename T>
__device__ __forceinline__ const T* a_row(const GroupedGemmArgs& g, const BlockView& v, int64_t j, int64_t r) {
  const int64_t row = g.gather_a ? v.list[r] : r;
  return static_cast<const T*>(g.a) + j * g.a_block_offset + row * g.lda;
}

// Zero outside the problem, so padded rows/columns never read memory (and never turn Inf * 0 into NaN).
template <typename T>
__device__ __forceinline__ T load_a(const GroupedGemmArgs& g, const BlockView& v, int64_t j, int64_t r, int64_t k) {
  return (r < v.m && k < v.k) ? a_row<T>(g, v, j, r)[k] : T(0.0f);
}

template <typename T>
__device__ __forceinline__ T load_b(const GroupedGemmArgs& g, const BlockView& v, int64_t j, int64_t k, int64_t n) {
  return (k < v.k && n < v.n) ? static_cast<const T*>(g.b)[j * g.b_block_offset + n * g.ldb + k] : T(0.0f);
}

// fc1 (bias, ReLU keeping NaN, store T) or fc2 (fp32 atomicAdd into the gathered output row).
template <typename T, bool kFc1>
__device__ __forceinline__ void epilogue(const GroupedGemmArgs& g, const BlockView& v, int64_t j, int64_t r,
                                         int64_t n, float value) {
  if (r >= v.m || n >= v.n) return;
  if (kFc1) {
    value += to_float(static_cast<const T*>(g.bias)[v.n_offset_in_hidden + n]);
    value = (value > 0.0f || value != value) ? value : 0.0f;
    static_cast<T*>(g.out)[j * g.out_block_offset + r * g.ldo + n] = T(value);
  } else {
    atomicAdd(static_cast<float*>(g.out) + static_cast<int64_t>(v.list[r]) * g.ldo + n, value);
  }
}

// fp32: 256 threads, each a 4 x 4 register tile of the 64 x 64 CTA tile.
template <bool kFc1>
__global__ void __launch_bounds__(256) gemm_fp32(GroupedGemmArgs g) {
  const int64_t j = blockIdx.y;
  const BlockView v = view_of(g, j);
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kTileM;
  if (m0 >= v.m) return;
  __shared__ float sa[kTileK][kTileM + 4];
  __shared__ float sb[kTileK][kTileN + 4];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  for (int64_t n0 = 0; n0 < v.n; n0 += kTileN) {
    float acc[4][4] = {};
    for (int64_t k0 = 0; k0 < v.k; k0 += kTileK) {
      for (int e = tid; e < kTileM * kTileK; e += 256) {
        const int r = e / kTileK, k = e % kTileK;
        sa[k][r] = load_a<float>(g, v, j, m0 + r, k0 + k);
        sb[k][r] = load_b<float>(g, v, j, k0 + k, n0 + r);  // kTileN == kTileM
      }
      __syncthreads();
#pragma unroll
      for (int k = 0; k < kTileK; ++k) {
        float a[4], b[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) a[i] = sa[k][ty * 4 + i], b[i] = sb[k][tx * 4 + i];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int c = 0; c < 4; ++c) acc[i][c] = fmaf(a[i], b[c], acc[i][c]);
      }
      __syncthreads();
    }
    for (int i = 0; i < 4; ++i)
      for (int c = 0; c < 4; ++c) epilogue<float, kFc1>(g, v, j, m0 + ty * 4 + i, n0 + tx * 4 + c, acc[i][c]);
  }
}

// fp16: 4 warps, each 32 x 32 of the 64 x 64 tile as 2 x 2 WMMA fragments.
template <bool kFc1>
__global__ void __launch_bounds__(128) gemm_fp16(GroupedGemmArgs g) {
  using namespace nvcuda;
  const int64_t j = blockIdx.y;
  const BlockView v = view_of(g, j);
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kTileM;
  if (m0 >= v.m) return;
  constexpr int kLdAB = kTileK + 8, kLdC = kTileN + 4;  // WMMA: multiples of 8 halves / 4 floats
  __shared__ __align__(32) __half sa[kTileM][kLdAB];
  __shared__ __align__(32) __half sb[kTileN][kLdAB];  // sb[n][k]: B in column-major order
  __shared__ __align__(32) float sc[kTileM][kLdC];
  const int tid = threadIdx.x, warp = tid / 32;
  const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;
  for (int64_t n0 = 0; n0 < v.n; n0 += kTileN) {
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
    for (int i = 0; i < 2; ++i)
      for (int c = 0; c < 2; ++c) wmma::fill_fragment(acc[i][c], 0.0f);
    for (int64_t k0 = 0; k0 < v.k; k0 += kTileK) {
      for (int e = tid; e < kTileM * kTileK; e += 128) {
        const int r = e / kTileK, k = e % kTileK;
        sa[r][k] = load_a<__half>(g, v, j, m0 + r, k0 + k);
        sb[r][k] = load_b<__half>(g, v, j, k0 + k, n0 + r);
      }
      __syncthreads();
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> fb[2];
      for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], &sa[wm + 16 * i][0], kLdAB);
      for (int c = 0; c < 2; ++c) wmma::load_matrix_sync(fb[c], &sb[wn + 16 * c][0], kLdAB);
      for (int i = 0; i < 2; ++i)
        for (int c = 0; c < 2; ++c) wmma::mma_sync(acc[i][c], fa[i], fb[c], acc[i][c]);
      __syncthreads();
    }
    for (int i = 0; i < 2; ++i)
      for (int c = 0; c < 2; ++c)
        wmma::store_matrix_sync(&sc[wm + 16 * i][wn + 16 * c], acc[i][c], kLdC, wmma::mem_row_major);
    __syncthreads();
    for (int e = tid; e < kTileM * kTileN; e += 128) {
      const int r = e / kTileN, n = e % kTileN;
      epilogue<__half, kFc1>(g, v, j, m0 + r, n0 + n, sc[r][n]);
    }
    __syncthreads();
  }
}

template <bool kFc1>
cudaError_t launch(const GroupedGemmArgs& args, int64_t nb, bool fp16, cudaStream_t stream) {
  const dim3 grid(grid_for(args.tokens, kTileM), static_cast<unsigned>(nb));
  if (fp16) {
    gemm_fp16<kFc1><<<grid, 128, 0, stream>>>(args);
  } else {
    gemm_fp32<kFc1><<<grid, 256, 0, stream>>>(args);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_fc1(const GroupedGemmArgs& args, int64_t nb, bool fp16, cudaStream_t stream) {
  return launch<true>(args, nb, fp16, stream);
}

cudaError_t launch_fc2(const GroupedGemmArgs& args, int64_t nb, bool fp16, cudaStream_t stream) {
  return launch<false>(args, nb, fp16, stream);
}

}  // namespace gsmlp::cuda
