#include "gatedSparseMLPOrtChecks.h"

#include <cmath>
#include <cstdint>

namespace gsmlp::ort::gated_sparse_mlp
{
namespace
{

bool isSupportedType(ONNXTensorElementDataType type)
{
    return type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
}

std::string checkTypes(InputDescs const& inputs)
{
    if (!isSupportedType(inputs[kX].type))
    {
        return "input X has data type " + typeName(inputs[kX].type)
            + "; GatedSparseMLP computes float32 or float16 (export an fp32 or fp16 ONNX)";
    }
    for (int32_t i = kW1; i < kNB_INPUTS; ++i)
    {
        if (inputs[i].type != inputs[kX].type)
        {
            return std::string("input ") + inputName(i) + " has data type " + typeName(inputs[i].type) + " but X has "
                + typeName(inputs[kX].type) + " (all inputs share one type)";
        }
    }
    return "";
}

shapes::Shape shapeOf(std::vector<int64_t> const& dims)
{
    return {static_cast<int32_t>(dims.size()), dims.data()};
}

} // namespace

std::string checkAttributes(Attributes const& attributes, int64_t nodeOutputs)
{
    if (attributes.blockSize < 1 || attributes.blockSize > INT32_MAX)
    {
        return "attribute block_size must be an INT in [1, 2^31-1], got " + std::to_string(attributes.blockSize);
    }
    if (std::isnan(attributes.threshold))
    {
        return "attribute threshold is NaN; it must be a number (+-Inf allowed)";
    }
    if (attributes.blockMaskOutput != -1 && attributes.blockMaskOutput != 0 && attributes.blockMaskOutput != 1)
    {
        return "attribute block_mask_output must be 0 or 1, got " + std::to_string(attributes.blockMaskOutput);
    }
    if (nodeOutputs < 1 || nodeOutputs > kMAX_OUTPUTS)
    {
        return "the node has " + std::to_string(nodeOutputs) + " outputs; GatedSparseMLP has Y and the optional BlockMask";
    }
    if (attributes.blockMaskOutput != -1 && attributes.blockMaskOutput != nodeOutputs - 1)
    {
        return "attribute block_mask_output = " + std::to_string(attributes.blockMaskOutput) + " but the node has "
            + std::to_string(nodeOutputs) + " output" + (nodeOutputs == 1 ? "" : "s")
            + " (BlockMask is output 1 exactly when block_mask_output is 1)";
    }
    return "";
}

std::string checkInputs(InputDescs const& inputs, int64_t blockSize)
{
    std::string const error = checkTypes(inputs);
    if (!error.empty())
    {
        return error;
    }
    shapes::Shape shapes[kNB_INPUTS];
    for (int32_t i = 0; i < kNB_INPUTS; ++i)
    {
        shapes[i] = shapeOf(inputs[i].dims);
    }
    return shapes::check(shapes, blockSize);
}

int64_t tokenCount(std::vector<int64_t> const& x) noexcept
{
    return shapes::tokenCount(shapeOf(x));
}

std::vector<int64_t> blockMaskShape(InputDescs const& inputs)
{
    std::vector<int64_t> shape(inputs[kX].dims.begin(), inputs[kX].dims.end() - 1);
    shape.push_back(inputs[kGATE_UP].dims[0]);
    return shape;
}

gsmlp_problem makeProblem(InputDescs const& inputs, Attributes const& attributes)
{
    gsmlp_problem problem{};
    problem.tokens = tokenCount(inputs[kX].dims);
    problem.d_model = inputs[kX].dims.back();
    problem.hidden = inputs[kW1].dims[0];
    problem.block_size = attributes.blockSize;
    problem.rank = inputs[kGATE_DOWN].dims[0];
    problem.threshold = attributes.threshold;
    problem.dtype = inputs[kX].type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 ? GSMLP_FP16 : GSMLP_FP32;
    return problem;
}

} // namespace gsmlp::ort::gated_sparse_mlp
