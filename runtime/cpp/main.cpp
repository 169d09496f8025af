/* gsmlp_trt_sample: load the GatedSparseMLP plugin library and a `gsmlp build` engine, run one preprocessed
 * image, print the detections. Build and run commands: README.md beside this file. */
#include "detections.h"
#include "options.h"

#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

using namespace nvinfer1;

namespace
{

class Logger : public ILogger
{
    void log(Severity severity, AsciiChar const* msg) noexcept override
    {
        if (severity <= Severity::kWARNING)
        {
            std::fprintf(stderr, "[TensorRT] %s\n", msg);
        }
    }
};

bool readFile(std::string const& path, std::vector<char>& bytes)
{
    std::ifstream file(path, std::ios::binary);
    if (!file)
    {
        return false;
    }
    bytes.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
    return true;
}

bool cudaOk(cudaError_t status, char const* what)
{
    if (status != cudaSuccess)
    {
        std::fprintf(stderr, "error: %s: %s\n", what, cudaGetErrorString(status));
        return false;
    }
    return true;
}

size_t elementSize(DataType type)
{
    switch (type)
    {
    case DataType::kINT64: return 8;
    case DataType::kFLOAT:
    case DataType::kINT32: return 4;
    case DataType::kHALF:
    case DataType::kBF16: return 2;
    case DataType::kBOOL:
    case DataType::kUINT8:
    case DataType::kINT8: return 1;
    default: return 0;
    }
}

int64_t volume(Dims const& dims)
{
    int64_t n = 1;
    for (int32_t i = 0; i < dims.nbDims; ++i)
    {
        n *= dims.d[i];
    }
    return n;
}

// IEEE half -> float, for engines whose outputs are fp16 (from an fp16 ONNX).
float halfToFloat(uint16_t h)
{
    uint32_t const sign = static_cast<uint32_t>(h & 0x8000U) << 16;
    uint32_t exponent = (h >> 10) & 0x1FU;
    uint32_t mantissa = h & 0x3FFU;
    uint32_t bits = 0;
    if (exponent == 0x1FU)
    {
        bits = sign | 0x7F800000U | (mantissa << 13);
    }
    else if (exponent == 0)
    {
        if (mantissa == 0)
        {
            bits = sign;
        }
        else
        {
            exponent = 113; // Normalize the subnormal: 127 - 15 + 1.
            while ((mantissa & 0x400U) == 0)
            {
                mantissa <<= 1;
                --exponent;
            }
            bits = sign | (exponent << 23) | ((mantissa & 0x3FFU) << 13);
        }
    }
    else
    {
        bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    }
    float value = 0.F;
    std::memcpy(&value, &bits, sizeof(value));
    return value;
}

// pixel_mask [1,H,W]: 1 on the resized image, 0 on the padding. Its dtype follows the export.
std::vector<char> pixelMask(DataType type, gsmlp::sample::Options const& options)
{
    int64_t const count = int64_t{options.height} * options.width;
    std::vector<char> bytes(static_cast<size_t>(count) * elementSize(type), 0);
    for (int64_t i = 0; i < count; ++i)
    {
        if (i / options.width >= options.validHeight || i % options.width >= options.validWidth)
        {
            continue;
        }
        char* at = bytes.data() + i * static_cast<int64_t>(elementSize(type));
        if (type == DataType::kINT64)
        {
            int64_t const one = 1;
            std::memcpy(at, &one, sizeof(one));
        }
        else if (type == DataType::kINT32)
        {
            int32_t const one = 1;
            std::memcpy(at, &one, sizeof(one));
        }
        else if (type == DataType::kFLOAT)
        {
            float const one = 1.F;
            std::memcpy(at, &one, sizeof(one));
        }
        else
        {
            *at = 1; // kBOOL, kUINT8, kINT8
        }
    }
    return bytes;
}

std::vector<float> toFloat(std::vector<char> const& bytes, DataType type)
{
    std::vector<float> values;
    if (type == DataType::kFLOAT)
    {
        values.resize(bytes.size() / sizeof(float));
        std::memcpy(values.data(), bytes.data(), bytes.size());
    }
    else if (type == DataType::kHALF)
    {
        values.resize(bytes.size() / sizeof(uint16_t));
        for (size_t i = 0; i < values.size(); ++i)
        {
            uint16_t h = 0;
            std::memcpy(&h, bytes.data() + i * sizeof(uint16_t), sizeof(h));
            values[i] = halfToFloat(h);
        }
    }
    return values;
}

// Owns one device allocation; freed on every path out of run(), early returns included.
struct DeviceBuffer
{
    void* ptr{nullptr};
    DeviceBuffer() = default;
    DeviceBuffer(DeviceBuffer const&) = delete;
    DeviceBuffer& operator=(DeviceBuffer const&) = delete;
    ~DeviceBuffer()
    {
        if (ptr != nullptr)
        {
            cudaFree(ptr);
        }
    }
};

// Owns the CUDA stream; destroyed on every path out of run(), early returns included.
struct Stream
{
    cudaStream_t handle{};
    bool created{false};
    Stream() = default;
    Stream(Stream const&) = delete;
    Stream& operator=(Stream const&) = delete;
    bool create()
    {
        created = cudaOk(cudaStreamCreate(&handle), "cudaStreamCreate");
        return created;
    }
    ~Stream()
    {
        if (created)
        {
            cudaStreamDestroy(handle);
        }
    }
};

// The runtime, the engine and its execution context, destroyed in reverse order of creation.
struct LoadedEngine
{
    std::unique_ptr<IRuntime> runtime;
    std::unique_ptr<ICudaEngine> engine;
    std::unique_ptr<IExecutionContext> context;
};

// The device buffer of every engine tensor, and the host copies of the outputs.
struct Bindings
{
    std::map<std::string, DeviceBuffer> device;
    std::map<std::string, std::vector<char>> hostOutputs;
};

bool loadEngine(gsmlp::sample::Options const& options, ILogger& logger, LoadedEngine& loaded)
{
    loaded.runtime.reset(createInferRuntime(logger));
    if (!loaded.runtime)
    {
        std::fprintf(stderr, "error: TensorRT could not create a runtime\n");
        return false;
    }
    if (loaded.runtime->getPluginRegistry().loadLibrary(options.pluginLib.c_str()) == nullptr)
    {
        std::fprintf(stderr, "error: could not load the plugin library %s\n", options.pluginLib.c_str());
        return false;
    }
    std::vector<char> plan;
    if (!readFile(options.engine, plan))
    {
        std::fprintf(stderr, "error: cannot read the engine %s\n", options.engine.c_str());
        return false;
    }
    loaded.engine.reset(loaded.runtime->deserializeCudaEngine(plan.data(), plan.size()));
    if (!loaded.engine)
    {
        std::fprintf(stderr,
            "error: TensorRT could not deserialize %s (built by another TensorRT version or for another GPU? "
            "its .json says which)\n",
            options.engine.c_str());
        return false;
    }
    loaded.context.reset(loaded.engine->createExecutionContext());
    if (!loaded.context)
    {
        std::fprintf(stderr, "error: TensorRT could not create an execution context\n");
        return false;
    }
    return true;
}

bool readImage(gsmlp::sample::Options const& options, std::vector<char>& image)
{
    int64_t const pixels = int64_t{3} * options.height * options.width;
    if (!readFile(options.input, image) || static_cast<int64_t>(image.size()) != pixels * 4)
    {
        std::fprintf(stderr, "error: %s must hold float32 [1,3,%d,%d] (%lld bytes)\n", options.input.c_str(),
            options.height, options.width, static_cast<long long>(pixels * 4));
        return false;
    }
    return true;
}

// The host bytes and shape of one engine input: the image, or the pixel mask in the engine's dtype.
bool inputFor(char const* name, DataType type, std::vector<char> const& image,
    gsmlp::sample::Options const& options, std::vector<char>& host, Dims& dims)
{
    if (std::strcmp(name, "pixel_values") == 0)
    {
        if (type != DataType::kFLOAT)
        {
            std::fprintf(stderr, "error: this sample feeds fp32 pixel_values; the engine wants another type\n");
            return false;
        }
        dims.nbDims = 4;
        dims.d[0] = 1, dims.d[1] = 3, dims.d[2] = options.height, dims.d[3] = options.width;
        host = image;
        return true;
    }
    if (std::strcmp(name, "pixel_mask") == 0)
    {
        dims.nbDims = 3;
        dims.d[0] = 1, dims.d[1] = options.height, dims.d[2] = options.width;
        host = pixelMask(type, options);
        return true;
    }
    std::fprintf(stderr, "error: unexpected engine input %s (expected pixel_values, pixel_mask)\n", name);
    return false;
}

bool bindInputs(LoadedEngine& loaded, std::vector<char> const& image, gsmlp::sample::Options const& options,
    cudaStream_t stream, Bindings& bindings)
{
    ICudaEngine const& engine = *loaded.engine;
    for (int32_t i = 0; i < engine.getNbIOTensors(); ++i)
    {
        char const* name = engine.getIOTensorName(i);
        if (engine.getTensorIOMode(name) != TensorIOMode::kINPUT)
        {
            continue;
        }
        std::vector<char> host;
        Dims dims{};
        if (!inputFor(name, engine.getTensorDataType(name), image, options, host, dims))
        {
            return false;
        }
        if (!loaded.context->setInputShape(name, dims))
        {
            std::fprintf(stderr, "error: %s [1,3,%d,%d] is outside the engine's optimization profile\n", name,
                options.height, options.width);
            return false;
        }
        DeviceBuffer& buffer = bindings.device[name];
        if (!cudaOk(cudaMalloc(&buffer.ptr, host.size()), "cudaMalloc")
            || !cudaOk(cudaMemcpyAsync(buffer.ptr, host.data(), host.size(), cudaMemcpyHostToDevice, stream),
                "copy input"))
        {
            return false;
        }
        loaded.context->setTensorAddress(name, buffer.ptr);
    }
    return true;
}

// Outputs are bound after the inputs: their shapes follow from the input shapes.
bool bindOutputs(LoadedEngine& loaded, Bindings& bindings)
{
    ICudaEngine const& engine = *loaded.engine;
    for (int32_t i = 0; i < engine.getNbIOTensors(); ++i)
    {
        char const* name = engine.getIOTensorName(i);
        if (engine.getTensorIOMode(name) != TensorIOMode::kOUTPUT)
        {
            continue;
        }
        size_t const bytes = static_cast<size_t>(volume(loaded.context->getTensorShape(name)))
            * elementSize(engine.getTensorDataType(name));
        DeviceBuffer& buffer = bindings.device[name];
        if (!cudaOk(cudaMalloc(&buffer.ptr, bytes == 0 ? 1 : bytes), "cudaMalloc"))
        {
            return false;
        }
        bindings.hostOutputs[name].resize(bytes);
        loaded.context->setTensorAddress(name, buffer.ptr);
    }
    return true;
}

bool execute(IExecutionContext& context, cudaStream_t stream, Bindings& bindings)
{
    if (!context.enqueueV3(stream))
    {
        std::fprintf(stderr, "error: TensorRT failed to run the engine (its log above says why)\n");
        return false;
    }
    for (auto& [name, host] : bindings.hostOutputs)
    {
        if (!cudaOk(cudaMemcpyAsync(
                        host.data(), bindings.device[name].ptr, host.size(), cudaMemcpyDeviceToHost, stream),
                "copy output"))
        {
            return false;
        }
    }
    return cudaOk(cudaStreamSynchronize(stream), "run");
}

int printDetections(LoadedEngine const& loaded, Bindings& bindings, gsmlp::sample::Options const& options)
{
    if (bindings.hostOutputs.count("logits") == 0 || bindings.hostOutputs.count("pred_boxes") == 0)
    {
        std::fprintf(stderr, "error: the engine has no logits/pred_boxes outputs\n");
        return 1;
    }
    ICudaEngine const& engine = *loaded.engine;
    Dims const logitsShape = loaded.context->getTensorShape("logits");
    std::vector<float> const logits = toFloat(bindings.hostOutputs["logits"], engine.getTensorDataType("logits"));
    std::vector<float> const boxes
        = toFloat(bindings.hostOutputs["pred_boxes"], engine.getTensorDataType("pred_boxes"));
    if (logitsShape.nbDims != 3 || logits.empty() || boxes.empty())
    {
        std::fprintf(stderr, "error: logits must be fp32/fp16 [1, queries, classes]\n");
        return 1;
    }
    auto const detections = gsmlp::sample::decodeDetections(logits.data(), boxes.data(), logitsShape.d[1],
        logitsShape.d[2], options.sigmoid, options.scoreThreshold, options.imageHeight, options.imageWidth);
    std::printf("%zu detections with score >= %.2f (boxes in pixels of the %dx%d image)\n", detections.size(),
        static_cast<double>(options.scoreThreshold), options.imageWidth, options.imageHeight);
    for (auto const& d : detections)
    {
        std::printf("query %3lld  label %3lld  score %.3f  box [%.1f, %.1f, %.1f, %.1f]\n",
            static_cast<long long>(d.query), static_cast<long long>(d.label), static_cast<double>(d.score),
            static_cast<double>(d.box[0]), static_cast<double>(d.box[1]), static_cast<double>(d.box[2]),
            static_cast<double>(d.box[3]));
    }
    return 0;
}

// Load, bind, execute, print. Every owner (engine, stream, buffers) is an object of this scope, so each early
// return releases what was acquired; the logger is declared first because the runtime uses it to the end.
int run(gsmlp::sample::Options const& options)
{
    Logger logger;
    LoadedEngine loaded;
    std::vector<char> image;
    if (!loadEngine(options, logger, loaded) || !readImage(options, image))
    {
        return 1;
    }
    Stream stream;
    Bindings bindings;
    if (!stream.create() || !bindInputs(loaded, image, options, stream.handle, bindings)
        || !bindOutputs(loaded, bindings) || !execute(*loaded.context, stream.handle, bindings))
    {
        return 1;
    }
    return printDetections(loaded, bindings, options);
}

} // namespace

int main(int argc, char** argv)
{
    gsmlp::sample::Options options;
    if (!gsmlp::sample::parseOptions(argc, argv, options))
    {
        return 2;
    }
    return run(options);
}
