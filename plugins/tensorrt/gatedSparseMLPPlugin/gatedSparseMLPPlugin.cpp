#include "gatedSparseMLPPlugin.h"

#include "gatedSparseMLPKernel.h"
#include "gatedSparseMLPShapes.h"
#include "common/pluginLogger.h"

#include <exception>
#include <new>

namespace gsmlp::trt::gated_sparse_mlp
{
namespace
{

using nvinfer1::DataType;
using nvinfer1::Dims;

// Y, and BlockMask where block_mask_output is 1.
int32_t outputCount(GatedSparseMLPParams const& params)
{
    return params.blockMaskOutput != 0 ? kMAX_OUTPUTS : 1;
}

std::string checkCounts(int32_t nbInputs, int32_t nbOutputs, GatedSparseMLPParams const& params)
{
    if (nbInputs != kNB_INPUTS || nbOutputs != outputCount(params))
    {
        return "expects 8 inputs (X, W1, B1, W2, B2, GateDown, GateUp, GateBias) and "
            + std::string(params.blockMaskOutput != 0 ? "2 outputs (Y, BlockMask)" : "1 output")
            + ", got " + std::to_string(nbInputs) + " inputs and " + std::to_string(nbOutputs) + " outputs";
    }
    return "";
}

// All inputs and Y share X's type, fp32 or fp16; BlockMask is kBOOL.
template <typename Desc, typename GetType>
std::string checkTypes(Desc const* in, Desc const* out, int32_t nbOutputs, GetType type)
{
    if (!isSupportedType(type(in[kX])))
    {
        return "X must be fp32 or fp16";
    }
    for (int32_t i = 1; i < kNB_INPUTS; ++i)
    {
        if (type(in[i]) != type(in[kX]))
        {
            return std::string("input ") + inputName(i) + " has another data type than X (all inputs share one)";
        }
    }
    if (type(out[0]) != type(in[kX]))
    {
        return "output Y must have X's data type";
    }
    if (nbOutputs > kBLOCK_MASK && type(out[kBLOCK_MASK]) != DataType::kBOOL)
    {
        return "output BlockMask must be kBOOL";
    }
    return "";
}

} // namespace

GatedSparseMLPPlugin::GatedSparseMLPPlugin(GatedSparseMLPParams const& params)
    : mParams(params)
    , mSerialized(params)
    , mTimingCacheId(timingCacheId(params))
    , mMetadata(metadataString(params))
{
}

int32_t GatedSparseMLPPlugin::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    try
    {
        std::string error = checkCounts(nbInputs, nbOutputs, mParams);
        if (error.empty())
        {
            error = checkTypes(
                in, out, nbOutputs, [](nvinfer1::DynamicPluginTensorDesc const& d) { return d.desc.type; });
        }
        // The network's dims (-1 where dynamic) and the profile's max dims must both be consistent.
        for (int32_t pass = 0; error.empty() && pass < 2; ++pass)
        {
            Dims dims[kNB_INPUTS];
            auto const passDims = [pass](nvinfer1::DynamicPluginTensorDesc const& d)
            { return pass == 0 ? d.desc.dims : d.max; };
            error = gatherInputDims(in, nbInputs, mParams.blockSize, passDims, dims);
        }
        if (!error.empty())
        {
            logError(kPLUGIN_NAME, "configurePlugin: " + error);
            return -1;
        }
        return 0;
    }
    catch (std::exception const& e)
    {
        logError(kPLUGIN_NAME, std::string("configurePlugin: ") + e.what());
    }
    return -1;
}

int32_t GatedSparseMLPPlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    if (!checkCounts(nbInputs, nbOutputs, mParams).empty() || outputTypes == nullptr || inputTypes == nullptr)
    {
        logError(kPLUGIN_NAME, "getOutputDataTypes: " + checkCounts(nbInputs, nbOutputs, mParams));
        return -1;
    }
    if (!isSupportedType(inputTypes[kX]))
    {
        logError(kPLUGIN_NAME, "getOutputDataTypes: X must be fp32 or fp16 (export an fp32 or fp16 ONNX)");
        return -1;
    }
    outputTypes[0] = inputTypes[kX];
    if (nbOutputs > kBLOCK_MASK)
    {
        outputTypes[kBLOCK_MASK] = DataType::kBOOL;
    }
    return 0;
}

int32_t GatedSparseMLPPlugin::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
    nvinfer1::DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/, nvinfer1::DimsExprs* outputs,
    int32_t nbOutputs, nvinfer1::IExprBuilder& /*exprBuilder*/) noexcept
{
    std::string const error = checkCounts(nbInputs, nbOutputs, mParams);
    if (!error.empty() || inputs == nullptr || outputs == nullptr || inputs[kX].nbDims < 1)
    {
        logError(kPLUGIN_NAME, "getOutputShapes: " + (error.empty() ? std::string("X must have at least 1 dimension") : error));
        return -1;
    }
    outputs[0] = inputs[kX]; // Y has X's shape, expression for expression.
    if (nbOutputs > kBLOCK_MASK)
    {
        // BlockMask: X's leading dimensions, then one decision per block (GateUp's rows).
        outputs[kBLOCK_MASK] = inputs[kX];
        outputs[kBLOCK_MASK].d[inputs[kX].nbDims - 1] = inputs[kGATE_UP].d[0];
    }
    return 0;
}

bool GatedSparseMLPPlugin::supportsFormatCombination(
    int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (inOut == nullptr || !checkCounts(nbInputs, nbOutputs, mParams).empty() || pos < 0
        || pos >= nbInputs + nbOutputs)
    {
        return false;
    }
    nvinfer1::PluginTensorDesc descs[kNB_INPUTS + kMAX_OUTPUTS];
    for (int32_t i = 0; i <= pos; ++i)
    {
        descs[i] = inOut[i].desc; // Only [0, pos] are valid at this point.
    }
    return supportsCombination(pos, descs, nbInputs, nbOutputs);
}

int32_t GatedSparseMLPPlugin::getNbOutputs() const noexcept
{
    return outputCount(mParams);
}

size_t GatedSparseMLPPlugin::getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    return workspaceForProfile(inputs, nbInputs, mParams);
}

char const* GatedSparseMLPPlugin::getTimingCacheID() noexcept
{
    return mTimingCacheId.c_str();
}

char const* GatedSparseMLPPlugin::getMetadataString() noexcept
{
    return mMetadata.c_str();
}

int32_t GatedSparseMLPPlugin::onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    try
    {
        std::string error = checkCounts(nbInputs, nbOutputs, mParams);
        if (error.empty())
        {
            Dims dims[kNB_INPUTS];
            auto const shapeDims = [](nvinfer1::PluginTensorDesc const& d) { return d.dims; };
            error = gatherInputDims(in, nbInputs, mParams.blockSize, shapeDims, dims);
        }
        if (error.empty())
        {
            error = checkTypes(in, out, nbOutputs, [](nvinfer1::PluginTensorDesc const& d) { return d.type; });
        }
        if (!error.empty())
        {
            logError(kPLUGIN_NAME, "onShapeChange: " + error);
            return -1;
        }
        return 0;
    }
    catch (std::exception const& e)
    {
        logError(kPLUGIN_NAME, std::string("onShapeChange: ") + e.what());
    }
    return -1;
}

int32_t GatedSparseMLPPlugin::enqueue(nvinfer1::PluginTensorDesc const* inputDesc,
    nvinfer1::PluginTensorDesc const* /*outputDesc*/, void const* const* inputs, void* const* outputs,
    void* workspace, cudaStream_t stream) noexcept
{
    try
    {
        if (inputDesc == nullptr || inputs == nullptr || outputs == nullptr)
        {
            logError(kPLUGIN_NAME, "enqueue: called without input/output descriptors or pointers");
            return -1;
        }
        void* blockMask = mParams.blockMaskOutput != 0 ? outputs[kBLOCK_MASK] : nullptr;
        std::string const error
            = runGatedSparseMLP(inputDesc, inputs, outputs[0], blockMask, workspace, mParams, stream);
        if (!error.empty())
        {
            logError(kPLUGIN_NAME, "enqueue: " + error);
            return -1;
        }
        return 0;
    }
    catch (std::exception const& e)
    {
        logError(kPLUGIN_NAME, std::string("enqueue: ") + e.what());
    }
    return -1;
}

nvinfer1::PluginFieldCollection const* GatedSparseMLPPlugin::getFieldsToSerialize() noexcept
{
    return mSerialized.collection();
}

} // namespace gsmlp::trt::gated_sparse_mlp
