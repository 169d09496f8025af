/* GatedSparseMLP on ONNX Runtime's CUDA execution provider, computed by the kernel library's CUDA kernels on
 * ONNX Runtime's own compute stream, with ONNX Runtime's allocator for the workspace. Registered only where
 * the kernel library was compiled with CUDA (gsmlp_cuda_built). Not run so far: see README.md. */
#ifndef GSMLP_ORT_GATED_SPARSE_MLP_CUDA_KERNEL_H
#define GSMLP_ORT_GATED_SPARSE_MLP_CUDA_KERNEL_H

#include "common/ortUtils.h"
#include "gatedSparseMLPOrtChecks.h"
#include "onnxruntime_c_api.h"

namespace gsmlp::ort::gated_sparse_mlp
{

class GatedSparseMLPCudaKernel
{
public:
    static OrtStatus* create(OrtApi const* api, OrtKernelInfo const* info, void** kernel) noexcept;
    OrtStatus* compute(OrtKernelContext* context) noexcept;
    ~GatedSparseMLPCudaKernel();

private:
    GatedSparseMLPCudaKernel(OrtApi const* api, Node node, Attributes attributes, OrtAllocator* allocator);

    OrtApi const* mApi;
    Node mNode;
    Attributes mAttributes;
    OrtAllocator* mAllocator; // the CUDA provider's device allocator: its memory info names the device
};

} // namespace gsmlp::ort::gated_sparse_mlp

#endif // GSMLP_ORT_GATED_SPARSE_MLP_CUDA_KERNEL_H
