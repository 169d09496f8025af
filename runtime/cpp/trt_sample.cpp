/* gsmlp_trt_sample: load the GatedSparseMLP plugin library and a `gsmlp build` engine, run one preprocessed
 * image, print the detections. The engine's JSON (ENGINE.json, from `gsmlp build`) says how to decode them.
 * Build and run commands: README.md beside this file. */
#include "detections.h"
#include "metadata.h"
#include "options.h"
#include "raw_input.h"

#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
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

// pixel_mask [1,H,W] (gsmlp::sample::pixelMask) in the engine's dtype, which follows the export.
std::vector<char> pixelMask(DataType type, gsmlp::sample::Options const& options)
{
    std::vector<int64_t> const mask = gsmlp::sample::pixelMask(options);
    size_t const size = elementSize(type);
    std::vector<char> bytes(mask.size() * size, 0);
    for (size_t i = 0; i < mask.size(); ++i)
    {
        char* at = bytes.data() + i * size;
        if (mask[i] == 0)
        {
            continue;
        }
        if (type == DataType::kINT64)
        {
            std::memcpy(at, &mask[i], sizeof(int64_t));
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
    if (!std::ifstream(options.library, std::ios::binary))
    {
        std::fprintf(stderr, "error: --plugin %s: no such file (libgsmlp_trt_plugin.so; see docs/TENSORRT.md)\n",
            options.library.c_str());
        return false;
    }
    if (loaded.runtime->getPluginRegistry().loadLibrary(options.library.c_str()) == nullptr)
    {
        std::fprintf(stderr, "error: TensorRT could not load the plugin library %s\n", options.library.c_str());
        return false;
    }
    std::vector<char> plan;
    if (!gsmlp::sample::readFile(options.model, plan))
    {
        std::fprintf(stderr, "error: --engine %s: no such file, or it cannot be read\n", options.model.c_str());
        return false;
    }
    loaded.engine.reset(loaded.runtime->deserializeCudaEngine(plan.data(), plan.size()));
    if (!loaded.engine)
    {
        std::fprintf(stderr,
            "error: TensorRT could not deserialize %s (built by another TensorRT version or for another GPU? "
            "its .json says which)\n",
            options.model.c_str());
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

// The host bytes and shape of one engine input: the image, or the pixel mask in the engine's dtype.
bool inputFor(char const* name, DataType type, std::vector<float> const& image,
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
        host.resize(image.size() * sizeof(float));
        std::memcpy(host.data(), image.data(), host.size());
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

bool bindInputs(LoadedEngine& loaded, std::vector<float> const& image, gsmlp::sample::Options const& options,
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

int printDetections(LoadedEngine const& loaded, Bindings& bindings, gsmlp::sample::Options const& options,
    gsmlp::sample::ModelMetadata const& metadata)
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
        logitsShape.d[2], metadata.activation, options.scoreThreshold, options.imageHeight, options.imageWidth);
    gsmlp::sample::printModel(options.model, metadata, "gsmlp TensorRT plugin");
    gsmlp::sample::printDetections(
        detections, metadata, options.scoreThreshold, options.imageHeight, options.imageWidth);
    return 0;
}

// The engine's gsmlp metadata, from its JSON: read before TensorRT is touched, so a foreign engine fails first.
bool readEngineMetadata(gsmlp::sample::Options const& options, gsmlp::sample::ModelMetadata& metadata)
{
    gsmlp::sample::MetadataProps props;
    std::string error;
    if (!gsmlp::sample::readEngineMetadataProps(options.metadata, props, error)
        || !gsmlp::sample::readMetadata(props, "the engine " + options.model + " (" + options.metadata + ")",
            metadata, error))
    {
        std::fprintf(stderr, "error: %s\n", error.c_str());
        return false;
    }
    return true;
}

// Load, bind, execute, print. Every owner (engine, stream, buffers) is an object of this scope, so each early
// return releases what was acquired; the logger is declared first because the runtime uses it to the end.
int run(gsmlp::sample::Options const& options)
{
    gsmlp::sample::ModelMetadata metadata;
    Logger logger;
    LoadedEngine loaded;
    std::vector<float> image;
    if (!readEngineMetadata(options, metadata) || !gsmlp::sample::readRawImage(options, image)
        || !loadEngine(options, logger, loaded))
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
    return printDetections(loaded, bindings, options, metadata);
}

} // namespace

int main(int argc, char** argv)
{
    gsmlp::sample::Runner const runner{"gsmlp_trt_sample", "--engine", "an engine of `gsmlp build`", "--plugin",
        "libgsmlp_trt_plugin.so (loaded with IPluginRegistry::loadLibrary)", true,
        "       [--metadata ENGINE.json]   (the engine's JSON from `gsmlp build`; default: beside the engine)\n",
        false, true};
    gsmlp::sample::Options options;
    gsmlp::sample::Parsed const parsed = gsmlp::sample::parseOptions(argc, argv, runner, options);
    if (parsed != gsmlp::sample::Parsed::kRUN)
    {
        return parsed == gsmlp::sample::Parsed::kHELP ? 0 : 2;
    }
    return run(options);
}
