/* MultiScaleDeformableAttention as a TensorRT IPluginV3: Deformable DETR's multi-scale bilinear sampling,
 * exactly the core of transformers' module (docs/op_spec.md). The capabilities (core, build, runtime) are one
 * object (common/pluginV3.h). */
#ifndef GSMLP_TRT_MULTI_SCALE_DEFORMABLE_ATTENTION_PLUGIN_H
#define GSMLP_TRT_MULTI_SCALE_DEFORMABLE_ATTENTION_PLUGIN_H

#include "common/pluginV3.h"
#include "multiScaleDeformableAttentionFields.h"

#include <NvInferRuntime.h>

#include <string>

namespace gsmlp::trt::msda
{

class MultiScaleDeformableAttentionPlugin final : public PluginV3<MultiScaleDeformableAttentionPlugin>
{
public:
    static constexpr char const* kNAME = kPLUGIN_NAME;

    explicit MultiScaleDeformableAttentionPlugin(MsdaParams const& params = {});
    MultiScaleDeformableAttentionPlugin(MultiScaleDeformableAttentionPlugin const& other) = default;
    MultiScaleDeformableAttentionPlugin& operator=(MultiScaleDeformableAttentionPlugin const&) = delete;
    ~MultiScaleDeformableAttentionPlugin() override = default;

    // IPluginV3, IPluginV3OneCore: PluginV3 (common/pluginV3.h)

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t getNbOutputs() const noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;
    char const* getTimingCacheID() noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    std::string mTimingCacheId;
    nvinfer1::PluginFieldCollection mSerialized{0, nullptr}; //!< no attributes to serialize
};

} // namespace gsmlp::trt::msda

#endif // GSMLP_TRT_MULTI_SCALE_DEFORMABLE_ATTENTION_PLUGIN_H
