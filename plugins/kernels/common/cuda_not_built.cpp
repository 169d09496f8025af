// The CUDA entry points of a library built without the CUDA toolkit: they report GSMLP_NOT_BUILT.
#include "common/status.h"
#include "gsmlp/gated_sparse_mlp.h"
#include "gsmlp/multi_scale_deformable_attention.h"

extern "C" {

int gsmlp_cuda_built(void) { return 0; }

int gsmlp_cuda_available(void) { return 0; }

size_t gsmlp_cuda_workspace_size(const gsmlp_problem*) { return 0; }

int gsmlp_cuda_forward(const gsmlp_problem*, const gsmlp_tensors*, void*, size_t, void*) {
  return gsmlp::fail(GSMLP_NOT_BUILT, "this gsmlp_kernels library was built without the CUDA toolkit");
}

int gsmlp_msda_cuda_forward(const gsmlp_msda_problem*, const gsmlp_msda_tensors*, void*) {
  return gsmlp::fail(GSMLP_NOT_BUILT, "this gsmlp_kernels library was built without the CUDA toolkit");
}

int gsmlp_msda_cuda_forward_host_levels(const gsmlp_msda_problem*, const gsmlp_msda_tensors*, void*) {
  return gsmlp::fail(GSMLP_NOT_BUILT, "this gsmlp_kernels library was built without the CUDA toolkit");
}

}  // extern "C"
