#include "gatedSparseMLPPluginCreator.h"

#include "gatedSparseMLPFields.h"
#include "gatedSparseMLPPlugin.h"
#include "common/pluginLogger.h"

#include <exception>

namespace gsmlp::trt::gated_sparse_mlp
{

GatedSparseMLPPluginCreator::GatedSparseMLPPluginCreator() noexcept
{
    // The ONNX parser passes exactly the node attributes named here, converted to these types.
    mFields[0] = nvinfer1::PluginField(kFIELD_BLOCK_SIZE, nullptr, nvinfer1::PluginFieldType::kINT32, 1);
    mFields[1] = nvinfer1::PluginField(kFIELD_THRESHOLD, nullptr, nvinfer1::PluginFieldType::kFLOAT32, 1);
    mFields[2] = nvinfer1::PluginField(kFIELD_BLOCK_MASK_OUTPUT, nullptr, nvinfer1::PluginFieldType::kINT32, 1);
    mFieldNames.nbFields = static_cast<int32_t>(mFields.size());
    mFieldNames.fields = mFields.data();
}

nvinfer1::IPluginV3* GatedSparseMLPPluginCreator::createPlugin(
    char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept
{
    try
    {
        GatedSparseMLPParams params{};
        std::string const error = parseFields(fc, params);
        if (!error.empty())
        {
            char const* const when = phase == nvinfer1::TensorRTPhase::kBUILD ? "from the ONNX node"
                                                                               : "from the engine (deserializing)";
            logError(kPLUGIN_NAME, std::string("cannot create layer '") + (name == nullptr ? "" : name) + "' " + when + ": "
                + error);
            return nullptr;
        }
        return new GatedSparseMLPPlugin(params);
    }
    catch (std::exception const& e)
    {
        logError(kPLUGIN_NAME, std::string("createPlugin: ") + e.what());
    }
    return nullptr;
}

nvinfer1::PluginFieldCollection const* GatedSparseMLPPluginCreator::getFieldNames() noexcept
{
    return &mFieldNames;
}

char const* GatedSparseMLPPluginCreator::getPluginName() const noexcept
{
    return kPLUGIN_NAME;
}

char const* GatedSparseMLPPluginCreator::getPluginVersion() const noexcept
{
    return kPLUGIN_VERSION;
}

char const* GatedSparseMLPPluginCreator::getPluginNamespace() const noexcept
{
    return kPLUGIN_NAMESPACE;
}

} // namespace gsmlp::trt::gated_sparse_mlp
