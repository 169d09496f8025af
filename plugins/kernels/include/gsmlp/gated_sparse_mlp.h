/* GatedSparseMLP kernels: the C ABI shared by the Python binding (ctypes) and the TensorRT plugin.
 *
 * Semantics are docs/op_spec.md. Per token x (a row of X, length d_model):
 *   logits = gate_up_w * (gate_down_w * x) + gate_up_b           one logit per block
 *   block j active  <=>  !(logits[j] <= threshold)               (NaN logit -> active)
 *   h = relu(w1 * x + b1), neurons of inactive blocks contribute exactly 0
 *   y = w2 * h + b2
 * Weights use the torch.nn.Linear layout: w1 [hidden, d_model], w2 [d_model, hidden],
 * gate_down_w [rank, d_model], gate_up_w [num_blocks, rank]; num_blocks = ceil(hidden / block_size).
 * With no gate (gate_down_w == NULL) every block is active: the dense FFN.
 */
#ifndef GSMLP_GATED_SPARSE_MLP_H
#define GSMLP_GATED_SPARSE_MLP_H

#include "gsmlp/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gsmlp_problem {
  int64_t tokens;      /* rows of X; 0 is valid and does nothing */
  int64_t d_model;
  int64_t hidden;
  int64_t block_size;  /* >= 1 */
  int64_t rank;        /* gate rank; ignored without a gate */
  float threshold;
  gsmlp_dtype dtype;   /* of x, weights and y; accumulation is always fp32 */
} gsmlp_problem;

typedef struct gsmlp_tensors {
  const void* x;           /* [tokens, x_row_stride] elements, first d_model used */
  int64_t x_row_stride;    /* in elements; >= d_model */
  const void* w1;
  const void* b1;
  const void* w2;
  const void* b2;
  const void* gate_down_w; /* NULL: no gate, all blocks active */
  const void* gate_up_w;
  const void* gate_up_b;
  void* y;                 /* [tokens, d_model], contiguous */
  int32_t* active_blocks;  /* optional [tokens]: active blocks per token, for sparsity accounting */
  uint8_t* block_mask;     /* ABI 2, optional [tokens, num_blocks] row-major: 1 where the block was active,
                              else 0 (the op's optional output BlockMask); all 1 without a gate */
} gsmlp_tensors;

/* CPU: scratch is caller-provided so that callers control allocation. num_threads <= 0: all cores.
 * The CPU workspace size does not depend on tokens; it includes a gate's share when problem->rank > 0. */
size_t gsmlp_cpu_workspace_size(const gsmlp_problem* problem, int num_threads);
int gsmlp_cpu_forward(const gsmlp_problem* problem, const gsmlp_tensors* tensors, void* workspace,
                      size_t workspace_bytes, int num_threads);

/* CUDA: all pointers are device pointers; `stream` is a cudaStream_t. The TensorRT plugin declares
 * gsmlp_cuda_workspace_size() as its workspace. Returns GSMLP_NOT_BUILT where CUDA was not compiled in. */
size_t gsmlp_cuda_workspace_size(const gsmlp_problem* problem);
int gsmlp_cuda_forward(const gsmlp_problem* problem, const gsmlp_tensors* tensors, void* workspace,
                       size_t workspace_bytes, void* stream);

/* CPU weight pre-packing. gsmlp_cpu_forward packs (transposes into panels) the weights into the workspace
 * on every call. A caller whose weights are constant may instead call gsmlp_cpu_pack_weights once and then
 * gsmlp_cpu_forward_prepacked for every batch, with the same workspace, problem (tokens may differ),
 * num_threads and weight values. The workspace records the problem it was packed for and a mismatch is
 * refused with GSMLP_INVALID_ARGUMENT; the weight values themselves are not re-checked. */
int gsmlp_cpu_pack_weights(const gsmlp_problem* problem, const gsmlp_tensors* tensors, void* workspace,
                           size_t workspace_bytes, int num_threads);
int gsmlp_cpu_forward_prepacked(const gsmlp_problem* problem, const gsmlp_tensors* tensors, void* workspace,
                                size_t workspace_bytes, int num_threads);

/* ABI 2: weights packed once, scratch per call, threads from the caller's pool.
 *
 * gsmlp_cpu_pack_weights packs into the first gsmlp_cpu_packed_size() bytes of a workspace; those bytes alone
 * can then serve any number of concurrent gsmlp_cpu_run_packed calls, each with its own scratch of
 * gsmlp_cpu_scratch_size(problem, workers) bytes (so a runtime that calls one kernel from several threads
 * at once, as ONNX Runtime may, needs no lock around the packed weights).
 *
 * `parallel` (optional, gsmlp/common.h) runs the kernel's work on the caller's threads instead of OpenMP's;
 * each worker uses its own slice of the scratch and takes token chunks from a shared counter.
 * NULL: OpenMP, as gsmlp_cpu_forward_prepacked. */
size_t gsmlp_cpu_packed_size(const gsmlp_problem* problem);
size_t gsmlp_cpu_scratch_size(const gsmlp_problem* problem, int workers);
int gsmlp_cpu_run_packed(const gsmlp_problem* problem, const gsmlp_tensors* tensors, const void* packed,
                         size_t packed_bytes, void* scratch, size_t scratch_bytes, int workers,
                         const gsmlp_parallel* parallel);

#ifdef __cplusplus
}
#endif

#endif /* GSMLP_GATED_SPARSE_MLP_H */
