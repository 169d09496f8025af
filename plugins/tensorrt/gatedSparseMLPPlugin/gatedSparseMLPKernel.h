/* The plugin's bridge to the kernel library (gsmlp_kernels, C ABI in gsmlp/gated_sparse_mlp.h): the plugin
 * computes nothing itself, it describes TensorRT's tensors to gsmlp_cuda_forward. */
#ifndef GSMLP_TRT_GATED_SPARSE_MLP_KERNEL_H
#define GSMLP_TRT_GATED_SPARSE_MLP_KERNEL_H

#include "gatedSparseMLPFields.h"

#include <NvInferRuntime.h>

#include <cstddef>
#include <string>

namespace gsmlp::trt::gated_sparse_mlp
{

//! Workspace for the largest problem of the profile (the `max` dims), which by the kernel library's contract
//! also covers every smaller one. 0 if the inputs are not 8 consistent tensors.
size_t workspaceForProfile(
    nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs, GatedSparseMLPParams const& params) noexcept;

//! Runs the op on `stream`; `blockMask` (output 1, may be null) receives the gate decisions. Returns "" on
//! success, else a message for the TensorRT log.
std::string runGatedSparseMLP(nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs, void* output,
    void* blockMask, void* workspace, GatedSparseMLPParams const& params, cudaStream_t stream);

} // namespace gsmlp::trt::gated_sparse_mlp

#endif // GSMLP_TRT_GATED_SPARSE_MLP_KERNEL_H
