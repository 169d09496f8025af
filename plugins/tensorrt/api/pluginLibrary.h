/* The two C entry points TensorRT resolves in a plugin library (see pluginLibrary.cpp). */
#ifndef GSMLP_TRT_PLUGIN_LIBRARY_H
#define GSMLP_TRT_PLUGIN_LIBRARY_H

#include <NvInferRuntime.h>

#include <cstdint>

// TENSORRTAPI marks exports only while TensorRT builds itself, so the library exports its own.
#define GSMLP_TRT_EXPORT __attribute__((visibility("default")))

extern "C" GSMLP_TRT_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);
extern "C" GSMLP_TRT_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder);

#endif // GSMLP_TRT_PLUGIN_LIBRARY_H
