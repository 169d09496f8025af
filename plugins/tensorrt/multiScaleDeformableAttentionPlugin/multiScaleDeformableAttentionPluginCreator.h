/* The creator of MultiScaleDeformableAttention plugins: at build time from the ONNX node (whose only
 * attributes are plugin_version and plugin_namespace), at run time from the engine (which holds no fields).
 * Parsing, logging and identity: common/pluginV3.h. */
#ifndef GSMLP_TRT_MULTI_SCALE_DEFORMABLE_ATTENTION_PLUGIN_CREATOR_H
#define GSMLP_TRT_MULTI_SCALE_DEFORMABLE_ATTENTION_PLUGIN_CREATOR_H

#include "common/pluginV3.h"
#include "multiScaleDeformableAttentionFields.h"
#include "multiScaleDeformableAttentionPlugin.h"

#include <NvInferRuntime.h>

namespace gsmlp::trt::msda
{

struct CreatorTraits
{
    static constexpr char const* kNAME = kPLUGIN_NAME;
    using Params = MsdaParams;
    using Plugin = MultiScaleDeformableAttentionPlugin;
    static std::string parse(nvinfer1::PluginFieldCollection const* fields, Params& params)
    {
        return parseFields(fields, params);
    }
};

class MultiScaleDeformableAttentionPluginCreator final : public PluginCreatorV3<CreatorTraits>
{
public:
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override
    {
        return &mFieldNames;
    }

private:
    nvinfer1::PluginFieldCollection mFieldNames{0, nullptr}; //!< no attributes
};

} // namespace gsmlp::trt::msda

#endif // GSMLP_TRT_MULTI_SCALE_DEFORMABLE_ATTENTION_PLUGIN_CREATOR_H
