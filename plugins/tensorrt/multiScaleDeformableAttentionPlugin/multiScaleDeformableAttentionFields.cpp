#include "multiScaleDeformableAttentionFields.h"

namespace gsmlp::trt::msda
{
namespace
{

constexpr FieldHandler<MsdaParams> kFIELD_HANDLERS[]{
    // The ONNX parser passes the node's plugin_version/plugin_namespace attributes along as fields.
    {"plugin_version", false, nullptr, readPluginVersion<MsdaParams>},
    {"plugin_namespace", false, nullptr, readPluginNamespace<MsdaParams>},
};

} // namespace

std::string parseFields(nvinfer1::PluginFieldCollection const* fields, MsdaParams& params)
{
    nvinfer1::PluginFieldCollection const none{0, nullptr};
    return parseFieldTable(fields != nullptr ? fields : &none, kFIELD_HANDLERS,
        "MultiScaleDeformableAttention takes no attributes: only plugin_version, plugin_namespace", params);
}

std::string timingCacheId()
{
    return std::string(kPLUGIN_NAME) + "_v" + kPLUGIN_VERSION;
}

} // namespace gsmlp::trt::msda
