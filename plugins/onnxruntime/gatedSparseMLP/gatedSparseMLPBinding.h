/* One run's tensors: ONNX Runtime's inputs read and checked, the outputs allocated, and the kernel library's
 * gsmlp_problem / gsmlp_tensors that describe them. Shared by the CPU and CUDA kernels (the pointers are
 * wherever the execution provider keeps its tensors). */
#ifndef GSMLP_ORT_GATED_SPARSE_MLP_BINDING_H
#define GSMLP_ORT_GATED_SPARSE_MLP_BINDING_H

#include "common/ortUtils.h"
#include "gatedSparseMLPOrtChecks.h"
#include "onnxruntime_c_api.h"

#include <array>

namespace gsmlp::ort::gated_sparse_mlp
{

struct Binding
{
    InputDescs inputs;
    std::array<void const*, kNB_INPUTS> data{};
    void* y{nullptr};
    uint8_t* blockMask{nullptr}; // the optional output 1; nullptr where the node does not have it
    gsmlp_problem problem{};

    //! The kernel library's view: x rows are contiguous (ONNX Runtime tensors are dense).
    gsmlp_tensors tensors() const;
};

//! Reads and checks the inputs, allocates Y (X's shape and type) and, where the node has it, BlockMask
//! (X's leading shape x blocks, bool). Errors name the node, the input and the problem.
OrtStatus* bind(OrtApi const* api, OrtKernelContext* context, Node const& node, Attributes const& attributes, Binding& out);

} // namespace gsmlp::ort::gated_sparse_mlp

#endif // GSMLP_ORT_GATED_SPARSE_MLP_BINDING_H
