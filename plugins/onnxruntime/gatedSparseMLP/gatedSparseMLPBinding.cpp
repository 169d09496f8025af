#include "gatedSparseMLPBinding.h"


namespace gsmlp::ort::gated_sparse_mlp
{
namespace
{

OrtStatus* readInputs(OrtApi const* api, OrtKernelContext* context, Node const& node, Binding& out)
{
    size_t count = 0;
    GSMLP_ORT_RETURN_IF_ERROR(api->KernelContext_GetInputCount(context, &count));
    if (count != kNB_INPUTS)
    {
        return nodeError(api, node,
            "expects 8 inputs (X, W1, B1, W2, B2, GateDown, GateUp, GateBias), got " + std::to_string(count));
    }
    for (int32_t i = 0; i < kNB_INPUTS; ++i)
    {
        OrtValue const* value = nullptr;
        GSMLP_ORT_RETURN_IF_ERROR(api->KernelContext_GetInput(context, i, &value));
        if (value == nullptr)
        {
            return nodeError(api, node, std::string("input ") + inputName(i) + " is missing (every input is required)");
        }
        GSMLP_ORT_RETURN_IF_ERROR(describeValue(api, value, out.inputs[i]));
        GSMLP_ORT_RETURN_IF_ERROR(api->GetTensorData(value, &out.data[i]));
    }
    return nullptr;
}

OrtStatus* allocateOutputs(OrtApi const* api, OrtKernelContext* context, Binding& out)
{
    std::vector<int64_t> const& xShape = out.inputs[kX].dims;
    OrtValue* y = nullptr;
    GSMLP_ORT_RETURN_IF_ERROR(api->KernelContext_GetOutput(context, 0, xShape.data(), xShape.size(), &y));
    GSMLP_ORT_RETURN_IF_ERROR(api->GetTensorMutableData(y, &out.y));
    size_t outputs = 0;
    GSMLP_ORT_RETURN_IF_ERROR(api->KernelContext_GetOutputCount(context, &outputs));
    if (outputs < 2)
    {
        return nullptr;
    }
    std::vector<int64_t> const maskShape = blockMaskShape(out.inputs);
    OrtValue* mask = nullptr;
    GSMLP_ORT_RETURN_IF_ERROR(api->KernelContext_GetOutput(context, 1, maskShape.data(), maskShape.size(), &mask));
    if (mask != nullptr) // an optional output the graph leaves unnamed has no value
    {
        void* data = nullptr;
        GSMLP_ORT_RETURN_IF_ERROR(api->GetTensorMutableData(mask, &data));
        out.blockMask = static_cast<uint8_t*>(data);
    }
    return nullptr;
}

} // namespace

gsmlp_tensors Binding::tensors() const
{
    gsmlp_tensors t{};
    t.x = data[kX];
    t.x_row_stride = problem.d_model;
    t.w1 = data[kW1];
    t.b1 = data[kB1];
    t.w2 = data[kW2];
    t.b2 = data[kB2];
    t.gate_down_w = data[kGATE_DOWN];
    t.gate_up_w = data[kGATE_UP];
    t.gate_up_b = data[kGATE_BIAS];
    t.y = y;
    t.active_blocks = nullptr;
    t.block_mask = blockMask;
    return t;
}

OrtStatus* bind(OrtApi const* api, OrtKernelContext* context, Node const& node, Attributes const& attributes, Binding& out)
{
    GSMLP_ORT_RETURN_IF_ERROR(readInputs(api, context, node, out));
    std::string const error = checkInputs(out.inputs, attributes.blockSize);
    if (!error.empty())
    {
        return nodeError(api, node, error);
    }
    out.problem = makeProblem(out.inputs, attributes);
    return allocateOutputs(api, context, out);
}

} // namespace gsmlp::ort::gated_sparse_mlp
