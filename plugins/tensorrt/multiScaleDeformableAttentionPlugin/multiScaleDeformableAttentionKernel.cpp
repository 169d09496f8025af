#include "multiScaleDeformableAttentionKernel.h"

#include "multiScaleDeformableAttentionShapes.h"

namespace gsmlp::trt::msda
{

std::string runMultiScaleDeformableAttention(
    nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs, void* output, cudaStream_t stream)
{
    nvinfer1::Dims dims[kNB_INPUTS];
    for (int32_t i = 0; i < kNB_INPUTS; ++i)
    {
        dims[i] = inputDesc[i].dims;
    }
    std::string const error = checkInputDims(dims, kNB_INPUTS);
    if (!error.empty())
    {
        return error;
    }
    nvinfer1::DataType const type = inputDesc[kVALUE].type;
    if (type != nvinfer1::DataType::kFLOAT && type != nvinfer1::DataType::kHALF)
    {
        return "enqueue got a data type other than fp32/fp16 for value";
    }
    gsmlp_msda_problem const problem = makeProblem(dims, type);
    if (problem.batch * problem.queries == 0)
    {
        return ""; // an empty output: nothing to launch
    }
    // LINEAR formats: every tensor dense and row-major, as the C ABI wants it.
    gsmlp_msda_tensors const tensors{inputs[kVALUE], static_cast<int32_t const*>(inputs[kSPATIAL_SHAPES]),
        static_cast<int32_t const*>(inputs[kLEVEL_START_INDEX]), inputs[kSAMPLING_LOCATIONS],
        inputs[kATTENTION_WEIGHTS], output};
    int const status = gsmlp_msda_cuda_forward(&problem, &tensors, stream);
    if (status != GSMLP_OK)
    {
        return std::string("gsmlp_msda_cuda_forward failed: ") + gsmlp_status_string(status) + ": "
            + gsmlp_last_error() + " (N " + std::to_string(problem.batch) + ", S " + std::to_string(problem.value_len)
            + ", M " + std::to_string(problem.heads) + ", D " + std::to_string(problem.head_dim) + ", L "
            + std::to_string(problem.levels) + ", Lq " + std::to_string(problem.queries) + ", P "
            + std::to_string(problem.points) + ", " + (problem.dtype == GSMLP_FP16 ? "fp16" : "fp32") + ")";
    }
    return "";
}

} // namespace gsmlp::trt::msda
