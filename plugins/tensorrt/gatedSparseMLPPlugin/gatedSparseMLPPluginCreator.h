/* The creator of GatedSparseMLP plugins: at build time from the ONNX node's attributes, at run time from
 * the fields the plugin serialized into the engine. */
#ifndef GSMLP_TRT_GATED_SPARSE_MLP_PLUGIN_CREATOR_H
#define GSMLP_TRT_GATED_SPARSE_MLP_PLUGIN_CREATOR_H

#include <NvInferRuntime.h>

#include <array>

namespace gsmlp::trt::gated_sparse_mlp
{

class GatedSparseMLPPluginCreator final : public nvinfer1::IPluginCreatorV3One
{
public:
    GatedSparseMLPPluginCreator() noexcept;
    ~GatedSparseMLPPluginCreator() override = default;

    //! nullptr, with the reason in the TensorRT log, when a field is missing, mistyped or out of range.
    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

private:
    std::array<nvinfer1::PluginField, 3> mFields{};
    nvinfer1::PluginFieldCollection mFieldNames{};
};

} // namespace gsmlp::trt::gated_sparse_mlp

#endif // GSMLP_TRT_GATED_SPARSE_MLP_PLUGIN_CREATOR_H
