/* The GatedSparseMLP node's attributes as ONNX Runtime hands them to a kernel being created, read and checked
 * against docs/op_spec.md (both kernels, CPU and CUDA, do this when they are created). */
#ifndef GSMLP_ORT_GATED_SPARSE_MLP_ATTRIBUTES_H
#define GSMLP_ORT_GATED_SPARSE_MLP_ATTRIBUTES_H

#include "common/ortUtils.h"
#include "gatedSparseMLPOrtChecks.h"
#include "onnxruntime_c_api.h"

namespace gsmlp::ort::gated_sparse_mlp
{

//! block_size, threshold, block_mask_output; plugin_version/plugin_namespace must be "1"/"" where present.
OrtStatus* readAttributes(OrtApi const* api, OrtKernelInfo const* info, Node const& node, Attributes& out);

//! readAttributes, then checkAttributes against the node's output count.
OrtStatus* readCheckedAttributes(OrtApi const* api, OrtKernelInfo const* info, Node const& node, Attributes& out);

} // namespace gsmlp::ort::gated_sparse_mlp

#endif // GSMLP_ORT_GATED_SPARSE_MLP_ATTRIBUTES_H
