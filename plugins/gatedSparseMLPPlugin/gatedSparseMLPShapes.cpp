#include "gatedSparseMLPShapes.h"

namespace gsmlp::trt
{
namespace
{

using nvinfer1::DataType;
using nvinfer1::Dims;

bool known(int64_t value)
{
    return value >= 0;
}

// Equal where both are known.
bool agree(int64_t a, int64_t b)
{
    return !known(a) || !known(b) || a == b;
}

std::string rankError(int32_t index, Dims const& dims, int32_t expected)
{
    return std::string("input ") + inputName(index) + " must have " + std::to_string(expected) + " dimension"
        + (expected == 1 ? "" : "s") + ", got " + dimsToString(dims);
}

std::string mismatch(char const* what, int32_t indexA, int32_t dimA, int64_t a, int32_t indexB, int32_t dimB, int64_t b)
{
    return std::string(what) + ": " + inputName(indexA) + ".shape[" + std::to_string(dimA) + "] = " + std::to_string(a)
        + " but " + inputName(indexB) + ".shape[" + std::to_string(dimB) + "] = " + std::to_string(b);
}

} // namespace

char const* inputName(int32_t index) noexcept
{
    static char const* const kNAMES[kNB_INPUTS] = {"X", "W1", "B1", "W2", "B2", "GateDown", "GateUp", "GateBias"};
    return index >= 0 && index < kNB_INPUTS ? kNAMES[index] : "(no such input)";
}

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
    Dims const& x = dims[kX];
    if (x.nbDims < 1)
    {
        return std::string("input X must have at least 1 dimension (tokens are all leading dimensions), got ")
            + dimsToString(x);
    }
    int32_t const expectedRank[kNB_INPUTS] = {-1, 2, 1, 2, 1, 2, 2, 1};
    for (int32_t i = kW1; i < kNB_INPUTS; ++i)
    {
        if (dims[i].nbDims != expectedRank[i])
        {
            return rankError(i, dims[i], expectedRank[i]);
        }
    }
    int32_t const xLast = x.nbDims - 1;
    int64_t const d = x.d[xLast];
    int64_t const h = dims[kW1].d[0];
    int64_t const r = dims[kGATE_DOWN].d[0];
    struct Rule
    {
        char const* what;
        int32_t indexA;
        int32_t dimA;
        int32_t indexB;
        int32_t dimB;
    };
    // d_model D, hidden H and rank R must agree wherever they appear.
    Rule const rules[] = {
        {"d_model", kX, xLast, kW1, 1},
        {"d_model", kX, xLast, kW2, 0},
        {"d_model", kX, xLast, kB2, 0},
        {"d_model", kX, xLast, kGATE_DOWN, 1},
        {"hidden", kW1, 0, kB1, 0},
        {"hidden", kW1, 0, kW2, 1},
        {"gate rank", kGATE_DOWN, 0, kGATE_UP, 1},
        {"number of blocks", kGATE_UP, 0, kGATE_BIAS, 0},
    };
    for (Rule const& rule : rules)
    {
        int64_t const a = dims[rule.indexA].d[rule.dimA];
        int64_t const b = dims[rule.indexB].d[rule.dimB];
        if (!agree(a, b))
        {
            return mismatch(rule.what, rule.indexA, rule.dimA, a, rule.indexB, rule.dimB, b);
        }
    }
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
    int64_t const nb = dims[kGATE_UP].d[0];
    if (known(h) && known(nb))
    {
        int64_t const expected = (h + blockSize - 1) / blockSize;
        if (nb != expected)
        {
            return "GateUp.shape[0] = " + std::to_string(nb) + " blocks, but hidden " + std::to_string(h)
                + " with block_size " + std::to_string(blockSize) + " makes ceil(" + std::to_string(h) + "/"
                + std::to_string(blockSize) + ") = " + std::to_string(expected);
        }
    }
    return "";
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
    int64_t tokens = 1;
    for (int32_t i = 0; i + 1 < x.nbDims; ++i)
    {
        tokens *= x.d[i];
    }
    return tokens;
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
    std::string text = "[";
    for (int32_t i = 0; i < dims.nbDims; ++i)
    {
        text += (i == 0 ? "" : ",") + std::to_string(dims.d[i]);
    }
    return text + "]";
}

} // namespace gsmlp::trt
