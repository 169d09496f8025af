#include "gatedSparseMLPKernel.h"

#include "gatedSparseMLPShapes.h"
#include "gsmlp/gated_sparse_mlp.h"

namespace gsmlp::trt::gated_sparse_mlp
{

size_t workspaceForProfile(
    nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs, GatedSparseMLPParams const& params) noexcept
{
    nvinfer1::Dims maxDims[kNB_INPUTS];
    auto const profileMax = [](nvinfer1::DynamicPluginTensorDesc const& d) { return d.max; };
    if (!gatherInputDims(inputs, nbInputs, params.blockSize, profileMax, maxDims).empty())
    {
        return 0;
    }
    gsmlp_problem const problem = makeProblem(maxDims, inputs[kX].desc.type, params);
    return gsmlp_cuda_workspace_size(&problem);
}

std::string runGatedSparseMLP(nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs, void* output,
    void* blockMask, void* workspace, GatedSparseMLPParams const& params, cudaStream_t stream)
{
    nvinfer1::Dims dims[kNB_INPUTS];
    auto const runtimeDims = [](nvinfer1::PluginTensorDesc const& d) { return d.dims; };
    std::string const error = gatherInputDims(inputDesc, kNB_INPUTS, params.blockSize, runtimeDims, dims);
    if (!error.empty())
    {
        return error;
    }
    if (!isSupportedType(inputDesc[kX].type))
    {
        return "enqueue got a data type other than fp32/fp16 for X";
    }
    gsmlp_problem const problem = makeProblem(dims, inputDesc[kX].type, params);
    if (problem.tokens == 0)
    {
        return ""; // An empty X has an empty Y: nothing to launch.
    }
    gsmlp_tensors tensors{};
    tensors.x = inputs[kX];
    tensors.x_row_stride = problem.d_model; // LINEAR format: rows are contiguous.
    tensors.w1 = inputs[kW1];
    tensors.b1 = inputs[kB1];
    tensors.w2 = inputs[kW2];
    tensors.b2 = inputs[kB2];
    tensors.gate_down_w = inputs[kGATE_DOWN];
    tensors.gate_up_w = inputs[kGATE_UP];
    tensors.gate_up_b = inputs[kGATE_BIAS];
    tensors.y = output;
    tensors.active_blocks = nullptr;
    tensors.block_mask = static_cast<uint8_t*>(blockMask); // kBOOL: one byte per decision, 0 or 1
    // TensorRT allocated getWorkspaceSize() for the profile's max shapes; this problem is no larger, so the
    // size the library asks for it fits in what was allocated.
    size_t const workspaceBytes = gsmlp_cuda_workspace_size(&problem);
    int const status = gsmlp_cuda_forward(&problem, &tensors, workspace, workspaceBytes, stream);
    if (status != GSMLP_OK)
    {
        return std::string("gsmlp_cuda_forward failed: ") + gsmlp_status_string(status) + " (tokens "
            + std::to_string(problem.tokens) + ", d_model " + std::to_string(problem.d_model) + ", hidden "
            + std::to_string(problem.hidden) + ", block_size " + std::to_string(problem.block_size) + ", "
            + (problem.dtype == GSMLP_FP16 ? "fp16" : "fp32") + ")";
    }
    return "";
}

} // namespace gsmlp::trt::gated_sparse_mlp
