/* What the plugins' C++ tests share: the check counter, a logger finder that captures what a plugin logs (as
 * TensorRT's logger would receive it), and builders of TensorRT's dims and tensor descriptors. Each test
 * program prints "N passed, N failed" and exits non-zero on any failure. */
#ifndef GSMLP_TRT_PLUGIN_TEST_UTILS_H
#define GSMLP_TRT_PLUGIN_TEST_UTILS_H

#include <NvInferRuntime.h>

#include <cstdio>
#include <string>
#include <vector>

namespace gsmlp::trt::test
{

using namespace nvinfer1;

inline int gPassed = 0;
inline int gFailed = 0;

#define CHECK(cond)                                                                                                    \
    do                                                                                                                 \
    {                                                                                                                  \
        if (cond)                                                                                                      \
        {                                                                                                              \
            ++gPassed;                                                                                                 \
        }                                                                                                              \
        else                                                                                                           \
        {                                                                                                              \
            ++gFailed;                                                                                                 \
            std::printf("FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond);                                              \
        }                                                                                                              \
    } while (0)

// Captures what the plugin logs, as TensorRT's logger would receive it.
class CapturingLogger : public ILogger
{
public:
    void log(Severity severity, AsciiChar const* msg) noexcept override
    {
        if (severity <= Severity::kWARNING)
        {
            last = msg;
            ++count;
        }
    }
    std::string last;
    int count{0};
};

class TestLoggerFinder : public ILoggerFinder
{
public:
    ILogger* findLogger() override
    {
        return &logger;
    }
    CapturingLogger logger;
};

inline TestLoggerFinder gFinder;

inline bool lastErrorMentions(char const* text)
{
    return gFinder.logger.last.find(text) != std::string::npos;
}

inline Dims dims(std::vector<int64_t> const& values)
{
    Dims d{};
    d.nbDims = static_cast<int32_t>(values.size());
    for (size_t i = 0; i < values.size(); ++i)
    {
        d.d[i] = values[i];
    }
    return d;
}

// The 8 input shapes of a layer: X [..., D], hidden H, rank R, block B.
inline PluginTensorDesc tensor(DataType type, TensorFormat format = TensorFormat::kLINEAR)
{
    PluginTensorDesc d{};
    d.type = type;
    d.format = format;
    return d;
}

// IExprBuilder is implemented by TensorRT; a plugin that only copies expressions never calls it.
class UnusedExprBuilder : public IExprBuilder
{
public:
    UnusedExprBuilder()
    {
        mImpl = nullptr;
    }
};

inline std::vector<DynamicPluginTensorDesc> dynamicDescs(
    std::vector<Dims> const& networkDims, std::vector<Dims> const& maxDims, DataType type)
{
    std::vector<DynamicPluginTensorDesc> descs(networkDims.size());
    for (size_t i = 0; i < descs.size(); ++i)
    {
        descs[i].desc = tensor(type);
        descs[i].desc.dims = networkDims[i];
        descs[i].min = maxDims[i];
        descs[i].opt = maxDims[i];
        descs[i].max = maxDims[i];
    }
    return descs;
}

} // namespace gsmlp::trt::test

#endif // GSMLP_TRT_PLUGIN_TEST_UTILS_H
