#include "multiScaleDeformableAttentionPluginCreator.h"

#include "common/pluginLogger.h"
#include "multiScaleDeformableAttentionFields.h"
#include "multiScaleDeformableAttentionPlugin.h"

#include <exception>

namespace gsmlp::trt::msda
{

nvinfer1::IPluginV3* MultiScaleDeformableAttentionPluginCreator::createPlugin(
    char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept
{
    try
    {
        MsdaParams params{};
        std::string const error = parseFields(fc, params);
        if (!error.empty())
        {
            char const* const when = phase == nvinfer1::TensorRTPhase::kBUILD ? "from the ONNX node"
                                                                               : "from the engine (deserializing)";
            logError(kPLUGIN_NAME,
                std::string("cannot create layer '") + (name == nullptr ? "" : name) + "' " + when + ": " + error);
            return nullptr;
        }
        return new MultiScaleDeformableAttentionPlugin();
    }
    catch (std::exception const& e)
    {
        logError(kPLUGIN_NAME, std::string("createPlugin: ") + e.what());
    }
    return nullptr;
}

nvinfer1::PluginFieldCollection const* MultiScaleDeformableAttentionPluginCreator::getFieldNames() noexcept
{
    return &mFieldNames;
}

char const* MultiScaleDeformableAttentionPluginCreator::getPluginName() const noexcept
{
    return kPLUGIN_NAME;
}

char const* MultiScaleDeformableAttentionPluginCreator::getPluginVersion() const noexcept
{
    return kPLUGIN_VERSION;
}

char const* MultiScaleDeformableAttentionPluginCreator::getPluginNamespace() const noexcept
{
    return kPLUGIN_NAMESPACE;
}

} // namespace gsmlp::trt::msda
