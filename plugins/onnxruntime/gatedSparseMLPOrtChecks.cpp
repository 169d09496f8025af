#include "gatedSparseMLPOrtChecks.h"

#include <cmath>

namespace gsmlp::ort
{
namespace
{

bool known(int64_t value)
{
    return value >= 0;
}

// Equal where both are known.
bool agree(int64_t a, int64_t b)
{
    return !known(a) || !known(b) || a == b;
}

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

std::string checkRanks(InputDescs const& inputs)
{
    if (inputs[kX].dims.empty())
    {
        return "input X must have at least 1 dimension (tokens are all leading dimensions), got a scalar";
    }
    size_t const expectedRank[kNB_INPUTS] = {0, 2, 1, 2, 1, 2, 2, 1};
    for (int32_t i = kW1; i < kNB_INPUTS; ++i)
    {
        if (inputs[i].dims.size() != expectedRank[i])
        {
            return std::string("input ") + inputName(i) + " must have " + std::to_string(expectedRank[i])
                + " dimension" + (expectedRank[i] == 1 ? "" : "s") + ", got shape " + shapeToString(inputs[i].dims);
        }
    }
    return "";
}

struct Rule
{
    char const* what;
    int32_t indexA;
    int32_t dimA; // -1: the last dimension
    int32_t indexB;
    int32_t dimB;
};

int64_t dimOf(InputDescs const& inputs, int32_t index, int32_t dim)
{
    std::vector<int64_t> const& dims = inputs[index].dims;
    return dim < 0 ? dims.back() : dims[dim];
}

std::string checkWidths(InputDescs const& inputs)
{
    // d_model D, hidden H, rank R and the block count must agree wherever they appear.
    Rule const rules[] = {
        {"d_model", kX, -1, kW1, 1},
        {"d_model", kX, -1, kW2, 0},
        {"d_model", kX, -1, kB2, 0},
        {"d_model", kX, -1, kGATE_DOWN, 1},
        {"hidden", kW1, 0, kB1, 0},
        {"hidden", kW1, 0, kW2, 1},
        {"gate rank", kGATE_DOWN, 0, kGATE_UP, 1},
        {"number of blocks", kGATE_UP, 0, kGATE_BIAS, 0},
    };
    for (Rule const& rule : rules)
    {
        int64_t const a = dimOf(inputs, rule.indexA, rule.dimA);
        int64_t const b = dimOf(inputs, rule.indexB, rule.dimB);
        if (!agree(a, b))
        {
            int32_t const dimA = rule.dimA < 0 ? static_cast<int32_t>(inputs[rule.indexA].dims.size()) - 1 : rule.dimA;
            return std::string(rule.what) + ": " + inputName(rule.indexA) + ".shape[" + std::to_string(dimA)
                + "] = " + std::to_string(a) + " but " + inputName(rule.indexB) + ".shape[" + std::to_string(rule.dimB)
                + "] = " + std::to_string(b);
        }
    }
    return "";
}

std::string checkSizes(InputDescs const& inputs, int64_t blockSize)
{
    int64_t const d = inputs[kX].dims.back();
    int64_t const h = inputs[kW1].dims[0];
    int64_t const r = inputs[kGATE_DOWN].dims[0];
    int64_t const nb = inputs[kGATE_UP].dims[0];
    if (known(d) && d < 1)
    {
        return "d_model (X's last dimension) must be >= 1, got " + std::to_string(d);
    }
    if (known(h) && h < 1)
    {
        return "hidden (W1.shape[0]) must be >= 1, got " + std::to_string(h);
    }
    if (known(r) && r < 1)
    {
        return "gate rank (GateDown.shape[0]) must be >= 1, got " + std::to_string(r);
    }
    if (known(h) && known(nb) && nb != (h + blockSize - 1) / blockSize)
    {
        int64_t const expected = (h + blockSize - 1) / blockSize;
        return "GateUp.shape[0] = " + std::to_string(nb) + " blocks, but hidden " + std::to_string(h)
            + " with block_size " + std::to_string(blockSize) + " makes ceil(" + std::to_string(h) + "/"
            + std::to_string(blockSize) + ") = " + std::to_string(expected);
    }
    return "";
}

} // namespace

char const* inputName(int32_t index) noexcept
{
    static char const* const kNAMES[kNB_INPUTS] = {"X", "W1", "B1", "W2", "B2", "GateDown", "GateUp", "GateBias"};
    return index >= 0 && index < kNB_INPUTS ? kNAMES[index] : "(no such input)";
}

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
    std::string error = checkTypes(inputs);
    if (error.empty())
    {
        error = checkRanks(inputs);
    }
    if (error.empty())
    {
        error = checkWidths(inputs);
    }
    if (error.empty())
    {
        error = checkSizes(inputs, blockSize);
    }
    return error;
}

int64_t tokenCount(std::vector<int64_t> const& x) noexcept
{
    int64_t tokens = 1;
    for (size_t i = 0; i + 1 < x.size(); ++i)
    {
        tokens *= x[i];
    }
    return tokens;
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

std::string shapeToString(std::vector<int64_t> const& dims)
{
    std::string text = "[";
    for (size_t i = 0; i < dims.size(); ++i)
    {
        text += (i == 0 ? "" : ",") + std::to_string(dims[i]);
    }
    return text + "]";
}

std::string typeName(ONNXTensorElementDataType type)
{
    switch (type)
    {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return "float32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return "float16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return "double";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16: return "bfloat16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8: return "int8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return "uint8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return "int32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return "int64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return "bool";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED: return "undefined (not a tensor?)";
    default: return "ONNX element type " + std::to_string(static_cast<int>(type));
    }
}

} // namespace gsmlp::ort
