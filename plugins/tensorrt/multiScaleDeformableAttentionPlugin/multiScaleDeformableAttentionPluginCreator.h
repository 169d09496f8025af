/* The creator of MultiScaleDeformableAttention plugins: at build time from the ONNX node (whose only
 * attributes are plugin_version and plugin_namespace), at run time from the engine (which holds no fields). */
#ifndef GSMLP_TRT_MULTI_SCALE_DEFORMABLE_ATTENTION_PLUGIN_CREATOR_H
#define GSMLP_TRT_MULTI_SCALE_DEFORMABLE_ATTENTION_PLUGIN_CREATOR_H

#include <NvInferRuntime.h>

namespace gsmlp::trt::msda
{

class MultiScaleDeformableAttentionPluginCreator final : public nvinfer1::IPluginCreatorV3One
{
public:
    MultiScaleDeformableAttentionPluginCreator() noexcept = default;
    ~MultiScaleDeformableAttentionPluginCreator() override = default;

    //! nullptr, with the reason in the TensorRT log, when a field is unknown or plugin_version/namespace differ.
    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

private:
    nvinfer1::PluginFieldCollection mFieldNames{0, nullptr}; //!< no attributes
};

} // namespace gsmlp::trt::msda

#endif // GSMLP_TRT_MULTI_SCALE_DEFORMABLE_ATTENTION_PLUGIN_CREATOR_H
