/* The two C entry points TensorRT resolves in a plugin library (see pluginLibrary.cpp). */
#ifndef GSMLP_TRT_PLUGIN_LIBRARY_H
#define GSMLP_TRT_PLUGIN_LIBRARY_H

#include <NvInferRuntime.h>

#include <cstdint>

extern "C" TENSORRTAPI nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);
extern "C" TENSORRTAPI void setLoggerFinder(nvinfer1::ILoggerFinder* finder);

#endif // GSMLP_TRT_PLUGIN_LIBRARY_H
