#include "gatedSparseMLPShapes.h"

namespace gsmlp::trt::gated_sparse_mlp
{
namespace
{

using nvinfer1::DataType;
using nvinfer1::Dims;

shapes::Shape shapeOf(Dims const& dims)
{
    return {dims.nbDims, dims.d};
}

} // namespace

std::string checkInputDims(Dims const* dims, int32_t nbInputs, int32_t blockSize)
{
    if (nbInputs != kNB_INPUTS)
    {
        return "expects 8 inputs (X, W1, B1, W2, B2, GateDown, GateUp, GateBias), got " + std::to_string(nbInputs);
    }
    if (blockSize < 1)
    {
        return "block_size must be >= 1, got " + std::to_string(blockSize);
    }
    shapes::Shape inputs[kNB_INPUTS];
    for (int32_t i = 0; i < kNB_INPUTS; ++i)
    {
        inputs[i] = shapeOf(dims[i]);
    }
    return shapes::check(inputs, blockSize);
}

bool isSupportedType(DataType type) noexcept
{
    return type == DataType::kFLOAT || type == DataType::kHALF;
}

bool supportsCombination(
    int32_t pos, nvinfer1::PluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs)
{
    if (inOut == nullptr || nbInputs != kNB_INPUTS || nbOutputs < 1 || nbOutputs > kMAX_OUTPUTS || pos < 0
        || pos >= nbInputs + nbOutputs)
    {
        return false;
    }
    nvinfer1::PluginTensorDesc const& desc = inOut[pos];
    if (desc.format != nvinfer1::TensorFormat::kLINEAR)
    {
        return false;
    }
    if (pos == kNB_INPUTS + kBLOCK_MASK)
    {
        return desc.type == DataType::kBOOL;
    }
    // X decides the type; every other tensor follows it.
    return pos == 0 ? isSupportedType(desc.type) : desc.type == inOut[0].type;
}

int64_t tokenCount(Dims const& x) noexcept
{
    return shapes::tokenCount(shapeOf(x));
}

gsmlp_problem makeProblem(Dims const* dims, DataType type, GatedSparseMLPParams const& params)
{
    gsmlp_problem problem{};
    problem.tokens = tokenCount(dims[kX]);
    problem.d_model = dims[kX].d[dims[kX].nbDims - 1];
    problem.hidden = dims[kW1].d[0];
    problem.block_size = params.blockSize;
    problem.rank = dims[kGATE_DOWN].d[0];
    problem.threshold = params.threshold;
    problem.dtype = type == DataType::kHALF ? GSMLP_FP16 : GSMLP_FP32;
    return problem;
}

std::string dimsToString(Dims const& dims)
{
    return shapes::toString(shapeOf(dims));
}

} // namespace gsmlp::trt::gated_sparse_mlp
