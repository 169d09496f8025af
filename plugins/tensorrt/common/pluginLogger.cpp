#include "pluginLogger.h"

#include <cstdio>
#include <mutex>

namespace gsmlp::trt
{
namespace
{
std::mutex gFinderMutex;
nvinfer1::ILoggerFinder* gFinder{nullptr};
} // namespace

void setPluginLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept
{
    std::lock_guard<std::mutex> lock(gFinderMutex);
    gFinder = finder;
}

void pluginLog(char const* plugin, nvinfer1::ILogger::Severity severity, std::string const& message) noexcept
{
    try
    {
        std::string const text = std::string(plugin) + " plugin: " + message;
        nvinfer1::ILogger* logger{nullptr};
        {
            std::lock_guard<std::mutex> lock(gFinderMutex);
            // findLogger() must run on the thread of the TensorRT call that is logging: this one.
            logger = gFinder != nullptr ? gFinder->findLogger() : nullptr;
        }
        if (logger != nullptr)
        {
            logger->log(severity, text.c_str());
        }
        else if (severity <= nvinfer1::ILogger::Severity::kWARNING)
        {
            std::fprintf(stderr, "%s\n", text.c_str());
        }
    }
    catch (...)
    {
        // Logging must never throw across the C ABI; an allocation failure here loses one message.
    }
}

} // namespace gsmlp::trt
