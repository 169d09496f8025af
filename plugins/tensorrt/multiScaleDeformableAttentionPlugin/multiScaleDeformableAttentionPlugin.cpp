#include "multiScaleDeformableAttentionPlugin.h"

#include "common/pluginLogger.h"
#include "multiScaleDeformableAttentionKernel.h"
#include "multiScaleDeformableAttentionShapes.h"

#include <exception>

namespace gsmlp::trt::msda
{
namespace
{

using nvinfer1::DataType;
using nvinfer1::Dims;

std::string checkCounts(int32_t nbInputs, int32_t nbOutputs)
{
    if (nbInputs != kNB_INPUTS || nbOutputs != 1)
    {
        return "expects 5 inputs (value, spatial_shapes, level_start_index, sampling_locations, attention_weights) "
               "and 1 output, got "
            + std::to_string(nbInputs) + " inputs and " + std::to_string(nbOutputs) + " outputs";
    }
    return "";
}

bool isFloat(DataType type)
{
    return type == DataType::kFLOAT || type == DataType::kHALF;
}

// value, sampling_locations, attention_weights and the output of one type, fp32 or fp16; the tables kINT32.
template <typename Desc, typename GetType>
std::string checkTypes(Desc const* in, Desc const* out, GetType type)
{
    if (!isFloat(type(in[kVALUE])))
    {
        return "value must be fp32 or fp16";
    }
    for (int32_t i : {kSAMPLING_LOCATIONS, kATTENTION_WEIGHTS})
    {
        if (type(in[i]) != type(in[kVALUE]))
        {
            return std::string("input ") + inputName(i) + " has another data type than value (one float type)";
        }
    }
    for (int32_t i : {kSPATIAL_SHAPES, kLEVEL_START_INDEX})
    {
        if (type(in[i]) != DataType::kINT32)
        {
            return std::string("input ") + inputName(i) + " must be kINT32 (the exporter casts the int64 tables)";
        }
    }
    return type(out[0]) == type(in[kVALUE]) ? "" : "the output must have value's data type";
}

template <typename Desc, typename DimsOf>
std::string checkDims(Desc const* in, DimsOf dimsOf)
{
    Dims dims[kNB_INPUTS];
    for (int32_t i = 0; i < kNB_INPUTS; ++i)
    {
        dims[i] = dimsOf(in[i]);
    }
    return checkInputDims(dims, kNB_INPUTS);
}

} // namespace

MultiScaleDeformableAttentionPlugin::MultiScaleDeformableAttentionPlugin(MsdaParams const& /*params*/)
    : mTimingCacheId(timingCacheId())
{
}

int32_t MultiScaleDeformableAttentionPlugin::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in,
    int32_t nbInputs, nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    try
    {
        std::string error = in == nullptr || out == nullptr ? "no tensor descriptors" : checkCounts(nbInputs, nbOutputs);
        if (error.empty())
        {
            error = checkTypes(in, out, [](nvinfer1::DynamicPluginTensorDesc const& d) { return d.desc.type; });
        }
        // The network's dims (-1 where dynamic) and the profile's max dims must both be consistent.
        if (error.empty())
        {
            error = checkDims(in, [](nvinfer1::DynamicPluginTensorDesc const& d) { return d.desc.dims; });
        }
        if (error.empty())
        {
            error = checkDims(in, [](nvinfer1::DynamicPluginTensorDesc const& d) { return d.max; });
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

int32_t MultiScaleDeformableAttentionPlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    std::string const error = checkCounts(nbInputs, nbOutputs);
    if (!error.empty() || outputTypes == nullptr || inputTypes == nullptr)
    {
        logError(kPLUGIN_NAME, "getOutputDataTypes: " + (error.empty() ? std::string("no type arrays") : error));
        return -1;
    }
    if (!isFloat(inputTypes[kVALUE]))
    {
        logError(kPLUGIN_NAME, "getOutputDataTypes: value must be fp32 or fp16 (export an fp32 or fp16 ONNX)");
        return -1;
    }
    outputTypes[0] = inputTypes[kVALUE];
    return 0;
}

int32_t MultiScaleDeformableAttentionPlugin::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
    nvinfer1::DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/, nvinfer1::DimsExprs* outputs,
    int32_t nbOutputs, nvinfer1::IExprBuilder& exprBuilder) noexcept
{
    std::string error = checkCounts(nbInputs, nbOutputs);
    if (error.empty() && (inputs == nullptr || outputs == nullptr))
    {
        error = "no dimension expressions";
    }
    if (error.empty() && (inputs[kVALUE].nbDims != 4 || inputs[kSAMPLING_LOCATIONS].nbDims != 6))
    {
        error = "value must have 4 dimensions and sampling_locations 6";
    }
    if (!error.empty())
    {
        logError(kPLUGIN_NAME, "getOutputShapes: " + error);
        return -1;
    }
    // [N, Lq, M * D]: batch and queries stay dynamic wherever the network has them so.
    outputs[0].nbDims = 3;
    outputs[0].d[0] = inputs[kVALUE].d[0];
    outputs[0].d[1] = inputs[kSAMPLING_LOCATIONS].d[1];
    outputs[0].d[2]
        = exprBuilder.operation(nvinfer1::DimensionOperation::kPROD, *inputs[kVALUE].d[2], *inputs[kVALUE].d[3]);
    return 0;
}

bool MultiScaleDeformableAttentionPlugin::supportsFormatCombination(
    int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (inOut == nullptr || !checkCounts(nbInputs, nbOutputs).empty() || pos < 0 || pos >= nbInputs + nbOutputs)
    {
        return false;
    }
    nvinfer1::PluginTensorDesc descs[kNB_INPUTS + 1];
    for (int32_t i = 0; i <= pos; ++i)
    {
        descs[i] = inOut[i].desc; // only [0, pos] are valid at this point
    }
    return supportsCombination(pos, descs, nbInputs, nbOutputs);
}

int32_t MultiScaleDeformableAttentionPlugin::getNbOutputs() const noexcept
{
    return 1;
}

size_t MultiScaleDeformableAttentionPlugin::getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* /*inputs*/,
    int32_t /*nbInputs*/, nvinfer1::DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    return 0; // the CUDA kernel needs no scratch
}

char const* MultiScaleDeformableAttentionPlugin::getTimingCacheID() noexcept
{
    return mTimingCacheId.c_str();
}

int32_t MultiScaleDeformableAttentionPlugin::onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    try
    {
        std::string error = in == nullptr || out == nullptr ? "no tensor descriptors" : checkCounts(nbInputs, nbOutputs);
        if (error.empty())
        {
            error = checkDims(in, [](nvinfer1::PluginTensorDesc const& d) { return d.dims; });
        }
        if (error.empty())
        {
            error = checkTypes(in, out, [](nvinfer1::PluginTensorDesc const& d) { return d.type; });
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

int32_t MultiScaleDeformableAttentionPlugin::enqueue(nvinfer1::PluginTensorDesc const* inputDesc,
    nvinfer1::PluginTensorDesc const* /*outputDesc*/, void const* const* inputs, void* const* outputs,
    void* /*workspace*/, cudaStream_t stream) noexcept
{
    try
    {
        if (inputDesc == nullptr || inputs == nullptr || outputs == nullptr)
        {
            logError(kPLUGIN_NAME, "enqueue: called without input/output descriptors or pointers");
            return -1;
        }
        std::string const error = runMultiScaleDeformableAttention(inputDesc, inputs, outputs[0], stream);
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

nvinfer1::PluginFieldCollection const* MultiScaleDeformableAttentionPlugin::getFieldsToSerialize() noexcept
{
    return &mSerialized;
}

} // namespace gsmlp::trt::msda
