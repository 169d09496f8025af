/* MultiScaleDeformableAttention kernels: the C ABI shared by the Python binding (ctypes), the ONNX Runtime op
 * library and the TensorRT plugin.
 *
 * Semantics are docs/op_spec.md: exactly the core of transformers' MultiScaleDeformableAttention (bilinear
 * grid_sample, zero padding, align_corners=False). For n < N, q < Lq, m < M and channel c < D:
 *   out[n, q, m*D + c] = sum_l sum_p  w[n,q,m,l,p] * bilinear_l(value[n, start_l : start_l + H_l*W_l, m, c],
 *                                                               x = loc[n,q,m,l,p,0] * W_l - 0.5,
 *                                                               y = loc[n,q,m,l,p,1] * H_l - 0.5)
 * where level l is the H_l x W_l grid read row-major (index h * W_l + w) and a corner outside it contributes 0.
 * Positions, corner weights and accumulation are fp32 also for fp16 data; the output is rounded once.
 * NaN and Inf propagate as in transformers' path on the CPU: a sample at a non-finite position is NaN, and
 * every in-grid corner is multiplied by its value even where its weight is 0.
 */
#ifndef GSMLP_MULTI_SCALE_DEFORMABLE_ATTENTION_H
#define GSMLP_MULTI_SCALE_DEFORMABLE_ATTENTION_H

#include "gsmlp/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gsmlp_msda_problem {
  int64_t batch;      /* N; 0 is valid and does nothing */
  int64_t value_len;  /* S = sum_l H_l * W_l */
  int64_t heads;      /* M >= 1 */
  int64_t head_dim;   /* D >= 1 */
  int64_t levels;     /* L >= 1 */
  int64_t queries;    /* Lq; 0 is valid and does nothing */
  int64_t points;     /* P >= 1 */
  gsmlp_dtype dtype;  /* of value, sampling_locations, attention_weights and output */
} gsmlp_msda_problem;

/* Every tensor dense, row-major, in the shapes below; pointers may be NULL where a tensor is empty. */
typedef struct gsmlp_msda_tensors {
  const void* value;                 /* [N, S, M, D] */
  const int32_t* spatial_shapes;     /* [L, 2]: H_l, W_l */
  const int32_t* level_start_index;  /* [L]: start_l = sum_{k<l} H_k * W_k */
  const void* sampling_locations;    /* [N, Lq, M, L, P, 2]: x, y in [0, 1] of the level (may lie outside) */
  const void* attention_weights;     /* [N, Lq, M, L, P] */
  void* output;                      /* [N, Lq, M * D] */
} gsmlp_msda_tensors;

/* CPU: every pointer a host pointer. The level tables are checked (H_l, W_l >= 1, start_l the running sum,
 * S the total; a mismatch names the level and both numbers). Threads run over (n, q) rows: num_threads <= 0
 * means all cores; `parallel` (gsmlp/common.h) runs them on a host runtime's threads, NULL on OpenMP. No
 * workspace: each worker keeps one (query, head)'s corners on its own stack. */
int gsmlp_msda_cpu_forward(const gsmlp_msda_problem* problem, const gsmlp_msda_tensors* tensors, int num_threads,
                           const gsmlp_parallel* parallel);

/* CUDA, `stream` a cudaStream_t, no workspace, nothing allocated or synchronised. Every pointer a device pointer,
 * the level tables too (TensorRT's inputs): their values cannot be checked on the host, so a sample whose row
 * would fall outside value (inconsistent tables) reads nothing and contributes 0. At most 16 levels.
 * Returns GSMLP_NOT_BUILT where CUDA was not compiled in. */
int gsmlp_msda_cuda_forward(const gsmlp_msda_problem* problem, const gsmlp_msda_tensors* tensors, void* stream);

/* The same with spatial_shapes and level_start_index in host memory (ONNX Runtime's CPU-side inputs, a torch
 * caller's CPU tensors): checked as by the CPU entry, then passed to the kernel by value. */
int gsmlp_msda_cuda_forward_host_levels(const gsmlp_msda_problem* problem, const gsmlp_msda_tensors* tensors,
                                        void* stream);

#ifdef __cplusplus
}
#endif

#endif /* GSMLP_MULTI_SCALE_DEFORMABLE_ATTENTION_H */
