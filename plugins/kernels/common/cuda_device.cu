// Whether the library's CUDA kernels can run here (the other CUDA entry points are each op's).
#include <cuda_runtime.h>

#include "gsmlp/common.h"

extern "C" {

int gsmlp_cuda_built(void) { return 1; }

int gsmlp_cuda_available(void) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error for later calls
    return 0;
  }
  return count > 0;
}

}  // extern "C"
