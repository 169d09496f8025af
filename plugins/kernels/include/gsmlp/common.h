/* What every op of the gsmlp kernel library shares: the ABI version, data types, status codes and their
 * messages, the CPU code path and CUDA availability, and the hook that runs CPU work on a host runtime's
 * threads. Each op's entry points are in their own header (gated_sparse_mlp.h, ...), which includes this one.
 */
#ifndef GSMLP_COMMON_H
#define GSMLP_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 2: gsmlp_tensors gained `block_mask` (appended); gsmlp_cpu_run_packed and gsmlp_parallel were added.
 * 3: the MultiScaleDeformableAttention entry points (multi_scale_deformable_attention.h) were added. */
#define GSMLP_ABI_VERSION 3

typedef enum gsmlp_dtype { GSMLP_FP32 = 0, GSMLP_FP16 = 1 } gsmlp_dtype;

typedef enum gsmlp_status {
  GSMLP_OK = 0,
  GSMLP_INVALID_ARGUMENT = 1,
  GSMLP_WORKSPACE_TOO_SMALL = 2,
  GSMLP_NOT_SUPPORTED = 3,
  GSMLP_CUDA_ERROR = 4,
  GSMLP_NOT_BUILT = 5
} gsmlp_status;

int gsmlp_abi_version(void);
const char* gsmlp_status_string(int status);
/* The message of the last non-OK status returned on the calling thread ("" if none). */
const char* gsmlp_last_error(void);
/* The CPU code path chosen at run time: "avx512f", "avx2-fma" or "portable" (GSMLP_CPU_ISA=avx2 or =portable
 * forces a lesser one, for tests and comparisons). */
const char* gsmlp_cpu_isa(void);

/* 1 where the CUDA kernels were compiled into this library (a GPU may still be absent at run time). */
int gsmlp_cuda_built(void);
/* 1 where the CUDA kernels are built and a CUDA device is visible. */
int gsmlp_cuda_available(void);

/* A host runtime's threads for the CPU kernels (e.g. ONNX Runtime's intra-op pool): run(context, workers, fn,
 * arg) must call fn(arg, w) once for every w in [0, workers), on as many threads as it has (serially is
 * correct too), and return when all calls have returned. The kernels' workers take their jobs from one shared
 * counter, so a slow or missing thread never stalls the rest. Where a kernel takes a `const gsmlp_parallel*`,
 * NULL means OpenMP (which joins torch's runtime in a torch process). */
typedef void (*gsmlp_worker_fn)(void* arg, int worker);
typedef struct gsmlp_parallel {
  void (*run)(void* context, int workers, gsmlp_worker_fn fn, void* arg);
  void* context;
} gsmlp_parallel;

#ifdef __cplusplus
}
#endif

#endif /* GSMLP_COMMON_H */
