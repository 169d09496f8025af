/* The plugin's bridge to the kernel library (gsmlp_kernels, C ABI in gsmlp/multi_scale_deformable_attention.h):
 * the plugin computes nothing itself, it describes TensorRT's tensors to gsmlp_msda_cuda_forward. */
#ifndef GSMLP_TRT_MULTI_SCALE_DEFORMABLE_ATTENTION_KERNEL_H
#define GSMLP_TRT_MULTI_SCALE_DEFORMABLE_ATTENTION_KERNEL_H

#include <NvInferRuntime.h>

#include <string>

namespace gsmlp::trt::msda
{

//! Runs the op on `stream`, every pointer (the int32 level tables too) on the device. No workspace. Returns ""
//! on success, else a message for the TensorRT log.
std::string runMultiScaleDeformableAttention(
    nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs, void* output, cudaStream_t stream);

} // namespace gsmlp::trt::msda

#endif // GSMLP_TRT_MULTI_SCALE_DEFORMABLE_ATTENTION_KERNEL_H
