/* Logging for every plugin of the library: through the logger of the TensorRT builder or runtime that loaded
 * the library (handed over by setLoggerFinder), never silently dropped. */
#ifndef GSMLP_TRT_PLUGIN_LOGGER_H
#define GSMLP_TRT_PLUGIN_LOGGER_H

#include <NvInferRuntime.h>

#include <string>

namespace gsmlp::trt
{

//! Remembers the finder that TensorRT passes when it loads the library; a later call replaces it.
void setPluginLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept;

//! Logs `message`, prefixed with the name of the plugin that logs, at `severity`. Without a finder (the library
//! loaded by hand, or the unit tests) errors and warnings go to stderr so that they are never lost.
void pluginLog(char const* plugin, nvinfer1::ILogger::Severity severity, std::string const& message) noexcept;

inline void logError(char const* plugin, std::string const& message) noexcept
{
    pluginLog(plugin, nvinfer1::ILogger::Severity::kERROR, message);
}

inline void logWarning(char const* plugin, std::string const& message) noexcept
{
    pluginLog(plugin, nvinfer1::ILogger::Severity::kWARNING, message);
}

inline void logVerbose(char const* plugin, std::string const& message) noexcept
{
    pluginLog(plugin, nvinfer1::ILogger::Severity::kVERBOSE, message);
}

} // namespace gsmlp::trt

#endif // GSMLP_TRT_PLUGIN_LOGGER_H
