/* MultiScaleDeformableAttention on ONNX Runtime's CPU and CUDA execution providers, computed by the kernel
 * library. The level tables (spatial_shapes, level_start_index) are CPU-side inputs on both providers: the
 * library checks them on the host (S = sum H_l * W_l, each start the running sum) and an error names the node
 * and both numbers; the CUDA kernel then takes them by value. The CPU kernel runs on ONNX Runtime's intra-op
 * threads (common/ortCpuThreads.h). */
#ifndef GSMLP_ORT_MULTI_SCALE_DEFORMABLE_ATTENTION_KERNEL_H
#define GSMLP_ORT_MULTI_SCALE_DEFORMABLE_ATTENTION_KERNEL_H

#include "common/ortCpuThreads.h"
#include "common/ortUtils.h"
#include "onnxruntime_c_api.h"

namespace gsmlp::ort::msda
{

class MultiScaleDeformableAttentionCpuKernel
{
public:
    static OrtStatus* create(OrtApi const* api, OrtKernelInfo const* info, void** kernel) noexcept;
    OrtStatus* compute(OrtKernelContext* context) noexcept;

private:
    MultiScaleDeformableAttentionCpuKernel(OrtApi const* api, Node node, CpuThreading threading);

    OrtApi const* mApi;
    Node mNode;
    CpuThreading mThreading;
};

//! Registered only where the kernel library was compiled with CUDA (gsmlp_cuda_built). Not run so far: it
//! needs a GPU and onnxruntime-gpu together (see README.md).
class MultiScaleDeformableAttentionCudaKernel
{
public:
    static OrtStatus* create(OrtApi const* api, OrtKernelInfo const* info, void** kernel) noexcept;
    OrtStatus* compute(OrtKernelContext* context) noexcept;

private:
    MultiScaleDeformableAttentionCudaKernel(OrtApi const* api, Node node);

    OrtApi const* mApi;
    Node mNode;
};

} // namespace gsmlp::ort::msda

#endif // GSMLP_ORT_MULTI_SCALE_DEFORMABLE_ATTENTION_KERNEL_H
