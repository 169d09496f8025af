/* The creator of GatedSparseMLP plugins: at build time from the ONNX node's attributes, at run time from
 * the fields the plugin serialized into the engine (parsing, logging and identity: common/pluginV3.h). */
#ifndef GSMLP_TRT_GATED_SPARSE_MLP_PLUGIN_CREATOR_H
#define GSMLP_TRT_GATED_SPARSE_MLP_PLUGIN_CREATOR_H

#include "common/pluginV3.h"
#include "gatedSparseMLPFields.h"
#include "gatedSparseMLPPlugin.h"

#include <NvInferRuntime.h>

#include <array>

namespace gsmlp::trt::gated_sparse_mlp
{

struct CreatorTraits
{
    static constexpr char const* kNAME = kPLUGIN_NAME;
    using Params = GatedSparseMLPParams;
    using Plugin = GatedSparseMLPPlugin;
    static std::string parse(nvinfer1::PluginFieldCollection const* fields, Params& params)
    {
        return parseFields(fields, params);
    }
};

class GatedSparseMLPPluginCreator final : public PluginCreatorV3<CreatorTraits>
{
public:
    GatedSparseMLPPluginCreator() noexcept;
    ~GatedSparseMLPPluginCreator() override = default;

    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;

private:
    std::array<nvinfer1::PluginField, 3> mFields{};
    nvinfer1::PluginFieldCollection mFieldNames{};
};

} // namespace gsmlp::trt::gated_sparse_mlp

#endif // GSMLP_TRT_GATED_SPARSE_MLP_PLUGIN_CREATOR_H
