/* The entry points of libgsmlp_trt_plugin.so that TensorRT looks up when it loads a plugin library
 * (trtexec --dynamicPlugins, IPluginRegistry::loadLibrary, tensorrt.get_plugin_registry().load_library).
 * No static registration: the registry decides when the creators are registered. */
#include "pluginLibrary.h"

#include "common/pluginLogger.h"
#include "gatedSparseMLPPlugin/gatedSparseMLPPluginCreator.h"
#include "multiScaleDeformableAttentionPlugin/multiScaleDeformableAttentionPluginCreator.h"

extern "C" GSMLP_TRT_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    static gsmlp::trt::gated_sparse_mlp::GatedSparseMLPPluginCreator sGatedSparseMLP;
    static gsmlp::trt::msda::MultiScaleDeformableAttentionPluginCreator sMultiScaleDeformableAttention;
    static nvinfer1::IPluginCreatorInterface* const kCREATORS[] = {&sGatedSparseMLP, &sMultiScaleDeformableAttention};
    nbCreators = static_cast<int32_t>(sizeof(kCREATORS) / sizeof(kCREATORS[0]));
    return kCREATORS;
}

extern "C" GSMLP_TRT_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
{
    gsmlp::trt::setPluginLoggerFinder(finder);
}
