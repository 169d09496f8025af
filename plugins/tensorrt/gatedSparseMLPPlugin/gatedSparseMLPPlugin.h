/* GatedSparseMLP as a TensorRT IPluginV3: Y = W2 (m * relu(W1 x + B1)) + B2 with the micro-gate mask m
 * (docs/op_spec.md). The capabilities (core, build, runtime) are one object (common/pluginV3.h). */
#ifndef GSMLP_TRT_GATED_SPARSE_MLP_PLUGIN_H
#define GSMLP_TRT_GATED_SPARSE_MLP_PLUGIN_H

#include "common/pluginV3.h"
#include "gatedSparseMLPFields.h"

#include <NvInferRuntime.h>

#include <string>

namespace gsmlp::trt::gated_sparse_mlp
{

class GatedSparseMLPPlugin final : public PluginV3<GatedSparseMLPPlugin>
{
public:
    static constexpr char const* kNAME = kPLUGIN_NAME;

    explicit GatedSparseMLPPlugin(GatedSparseMLPParams const& params);
    GatedSparseMLPPlugin(GatedSparseMLPPlugin const& other) = default;
    GatedSparseMLPPlugin& operator=(GatedSparseMLPPlugin const&) = delete;
    ~GatedSparseMLPPlugin() override = default;

    GatedSparseMLPParams const& params() const noexcept
    {
        return mParams;
    }

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
    char const* getMetadataString() noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    GatedSparseMLPParams mParams;
    SerializedFields mSerialized;
    std::string mTimingCacheId;
    std::string mMetadata;
};

} // namespace gsmlp::trt::gated_sparse_mlp

#endif // GSMLP_TRT_GATED_SPARSE_MLP_PLUGIN_H
