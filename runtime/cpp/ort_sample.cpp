/* gsmlp_ort_sample: run a `gsmlp export` ONNX file in ONNX Runtime (C API), with the gsmlp op library, on one
 * image prepared by `python -m gsmlp.runtime.prepare_image`; print the detections. Build and run: README.md. */
#include "detections.h"
#include "metadata.h"
#include "options.h"
#include "raw_input.h"

#include <onnxruntime_c_api.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace
{

using gsmlp::sample::Options;

OrtApi const* gApi = nullptr;

// An owner of one ONNX Runtime object: released through the API on every way out of run().
template <typename T, auto Release>
struct Owned
{
    T* ptr{nullptr};
    Owned() = default;
    Owned(Owned const&) = delete;
    Owned& operator=(Owned const&) = delete;
    ~Owned()
    {
        if (ptr != nullptr)
        {
            (gApi->*Release)(ptr);
        }
    }
};

using Env = Owned<OrtEnv, &OrtApi::ReleaseEnv>;
using SessionOptions = Owned<OrtSessionOptions, &OrtApi::ReleaseSessionOptions>;
using Session = Owned<OrtSession, &OrtApi::ReleaseSession>;
using Metadata = Owned<OrtModelMetadata, &OrtApi::ReleaseModelMetadata>;
using TypeInfo = Owned<OrtTypeInfo, &OrtApi::ReleaseTypeInfo>;
using ShapeInfo = Owned<OrtTensorTypeAndShapeInfo, &OrtApi::ReleaseTensorTypeAndShapeInfo>;
using MemoryInfo = Owned<OrtMemoryInfo, &OrtApi::ReleaseMemoryInfo>;
using Value = Owned<OrtValue, &OrtApi::ReleaseValue>;

//! False, with "error: WHAT: ONNX Runtime's message", where `status` is an error.
bool ok(OrtStatus* status, std::string const& what)
{
    if (status == nullptr)
    {
        return true;
    }
    std::fprintf(stderr, "error: %s: %s\n", what.c_str(), gApi->GetErrorMessage(status));
    gApi->ReleaseStatus(status);
    return false;
}

// Frees what ONNX Runtime allocated for us (names, metadata strings).
void release(OrtAllocator* allocator, void* pointer)
{
    ok(gApi->AllocatorFree(allocator, pointer), "free");
}

bool isReadableFile(std::string const& path)
{
    return static_cast<bool>(std::ifstream(path, std::ios::binary));
}

bool createSession(Options const& options, Env& env, SessionOptions& sessionOptions, Session& session)
{
    if (!isReadableFile(options.model))
    {
        std::fprintf(stderr, "error: --onnx %s: no such file, or it cannot be read\n", options.model.c_str());
        return false;
    }
    if (!ok(gApi->CreateEnv(ORT_LOGGING_LEVEL_ERROR, "gsmlp_ort_sample", &env.ptr), "ONNX Runtime environment")
        || !ok(gApi->CreateSessionOptions(&sessionOptions.ptr), "session options"))
    {
        return false;
    }
    if (options.threads > 0
        && (!ok(gApi->SetIntraOpNumThreads(sessionOptions.ptr, options.threads), "--threads")
            // The op library splits its tokens into this many shares; it cannot ask ONNX Runtime for the count.
            || !ok(gApi->AddSessionConfigEntry(
                       sessionOptions.ptr, "gsmlp.cpu_workers", std::to_string(options.threads).c_str()),
                "--threads")))
    {
        return false;
    }
    if (!options.library.empty())
    {
        if (!isReadableFile(options.library))
        {
            std::fprintf(stderr,
                "error: --ops-lib %s: no such file (the gsmlp op library, libgsmlp_onnxruntime_ops.so, is "
                "installed in gsmlp/lib/ when gsmlp is built with GSMLP_ONNXRUNTIME_INCLUDE; see "
                "plugins/onnxruntime/README.md)\n",
                options.library.c_str());
            return false;
        }
        if (!ok(gApi->RegisterCustomOpsLibrary_V2(sessionOptions.ptr, options.library.c_str()),
                "ONNX Runtime could not load the op library " + options.library))
        {
            return false;
        }
    }
    return ok(gApi->CreateSession(env.ptr, options.model.c_str(), sessionOptions.ptr, &session.ptr),
        "ONNX Runtime cannot load " + options.model + " (not an ONNX model, or one it cannot run)");
}

bool readMetadataProps(OrtSession* session, gsmlp::sample::MetadataProps& props)
{
    OrtAllocator* allocator = nullptr;
    Metadata metadata;
    char** keys = nullptr;
    int64_t count = 0;
    if (!ok(gApi->GetAllocatorWithDefaultOptions(&allocator), "allocator")
        || !ok(gApi->SessionGetModelMetadata(session, &metadata.ptr), "model metadata")
        || !ok(gApi->ModelMetadataGetCustomMetadataMapKeys(metadata.ptr, allocator, &keys, &count), "metadata keys"))
    {
        return false;
    }
    bool good = true;
    for (int64_t i = 0; i < count; ++i)
    {
        char* value = nullptr;
        good = good && ok(gApi->ModelMetadataLookupCustomMetadataMap(metadata.ptr, allocator, keys[i], &value),
                           "metadata value");
        if (value != nullptr)
        {
            props[keys[i]] = value;
            release(allocator, value);
        }
        release(allocator, keys[i]);
    }
    if (keys != nullptr)
    {
        release(allocator, keys);
    }
    return good;
}

// The declared shape of input `index` (-1 where dynamic) and its name.
bool inputShape(OrtSession* session, size_t index, std::string& name, std::vector<int64_t>& dims,
    ONNXTensorElementDataType& type)
{
    OrtAllocator* allocator = nullptr;
    char* text = nullptr;
    TypeInfo info;
    OrtTensorTypeAndShapeInfo const* tensor = nullptr;
    size_t rank = 0;
    if (!ok(gApi->GetAllocatorWithDefaultOptions(&allocator), "allocator")
        || !ok(gApi->SessionGetInputName(session, index, allocator, &text), "input name"))
    {
        return false;
    }
    name = text;
    release(allocator, text);
    if (!ok(gApi->SessionGetInputTypeInfo(session, index, &info.ptr), "input type")
        || !ok(gApi->CastTypeInfoToTensorInfo(info.ptr, &tensor), "input type") || tensor == nullptr
        || !ok(gApi->GetTensorElementType(tensor, &type), "input type")
        || !ok(gApi->GetDimensionsCount(tensor, &rank), "input shape"))
    {
        return false;
    }
    dims.resize(rank);
    return ok(gApi->GetDimensions(tensor, dims.data(), rank), "input shape");
}

// Every input is pixel_values [1,3,H,W] float32 or pixel_mask [1,H,W] int64, of the sizes given.
bool checkInputs(OrtSession* session, Options const& options, std::vector<std::string>& names)
{
    size_t count = 0;
    if (!ok(gApi->SessionGetInputCount(session, &count), "inputs"))
    {
        return false;
    }
    for (size_t i = 0; i < count; ++i)
    {
        std::string name;
        std::vector<int64_t> dims;
        ONNXTensorElementDataType type{};
        if (!inputShape(session, i, name, dims, type))
        {
            return false;
        }
        bool const values = name == "pixel_values";
        if (!values && name != "pixel_mask")
        {
            std::fprintf(stderr, "error: %s has an input %s; a file of `gsmlp export` takes pixel_values and "
                                 "pixel_mask\n", options.model.c_str(), name.c_str());
            return false;
        }
        std::vector<int64_t> const wanted = values ? std::vector<int64_t>{1, 3, options.height, options.width}
                                                   : std::vector<int64_t>{1, options.height, options.width};
        ONNXTensorElementDataType const wantedType
            = values ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT : ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
        bool fits = dims.size() == wanted.size() && type == wantedType;
        for (size_t d = 0; fits && d < dims.size(); ++d)
        {
            fits = dims[d] < 0 || dims[d] == wanted[d];
        }
        if (!fits)
        {
            std::string declared;
            for (int64_t d : dims)
            {
                declared += (declared.empty() ? "" : ",") + (d < 0 ? std::string("?") : std::to_string(d));
            }
            std::fprintf(stderr,
                "error: %s takes %s [%s] (%s), which --height %d --width %d do not fit: prepare the image with "
                "`python -m gsmlp.runtime.prepare_image IMAGE RAW --model %s`, which prints the sizes\n",
                options.model.c_str(), name.c_str(), declared.c_str(), values ? "float32" : "int64",
                options.height, options.width, options.model.c_str());
            return false;
        }
        names.push_back(name);
    }
    return true;
}

bool tensor(OrtMemoryInfo* memory, void* data, size_t bytes, std::vector<int64_t> const& shape,
    ONNXTensorElementDataType type, Value& value)
{
    return ok(gApi->CreateTensorWithDataAsOrtValue(memory, data, bytes, shape.data(), shape.size(), type, &value.ptr),
        "input tensor");
}

// Outputs [1, queries, classes] and [1, queries, 4], float32: their data pointers and sizes.
bool outputArrays(OrtValue* logits, OrtValue* boxes, float*& logitsData, float*& boxesData, int64_t& queries,
    int64_t& classes)
{
    ShapeInfo logitsInfo;
    ShapeInfo boxesInfo;
    std::vector<int64_t> logitsShape(3);
    std::vector<int64_t> boxesShape(3);
    size_t rank = 0;
    size_t boxesRank = 0;
    if (!ok(gApi->GetTensorTypeAndShape(logits, &logitsInfo.ptr), "logits")
        || !ok(gApi->GetDimensionsCount(logitsInfo.ptr, &rank), "logits")
        || !ok(gApi->GetTensorTypeAndShape(boxes, &boxesInfo.ptr), "pred_boxes")
        || !ok(gApi->GetDimensionsCount(boxesInfo.ptr, &boxesRank), "pred_boxes"))
    {
        return false;
    }
    if (rank != 3 || boxesRank != 3 || !ok(gApi->GetDimensions(logitsInfo.ptr, logitsShape.data(), 3), "logits")
        || !ok(gApi->GetDimensions(boxesInfo.ptr, boxesShape.data(), 3), "pred_boxes")
        || boxesShape[1] != logitsShape[1] || boxesShape[2] != 4)
    {
        std::fprintf(stderr, "error: the outputs must be logits [1, queries, classes] and pred_boxes [1, queries, 4]\n");
        return false;
    }
    queries = logitsShape[1];
    classes = logitsShape[2];
    return ok(gApi->GetTensorMutableData(logits, reinterpret_cast<void**>(&logitsData)), "logits")
        && ok(gApi->GetTensorMutableData(boxes, reinterpret_cast<void**>(&boxesData)), "pred_boxes");
}

int run(Options const& options)
{
    Env env;
    SessionOptions sessionOptions;
    Session session;
    gsmlp::sample::MetadataProps props;
    gsmlp::sample::ModelMetadata metadata;
    std::string error;
    std::vector<std::string> inputNames;
    std::vector<float> pixels;
    if (!createSession(options, env, sessionOptions, session) || !readMetadataProps(session.ptr, props))
    {
        return 1;
    }
    if (!gsmlp::sample::readMetadata(props, options.model, metadata, error))
    {
        std::fprintf(stderr, "error: %s\n", error.c_str());
        return 1;
    }
    if (!checkInputs(session.ptr, options, inputNames) || !gsmlp::sample::readRawImage(options, pixels))
    {
        return 1;
    }
    std::vector<int64_t> mask = gsmlp::sample::pixelMask(options);
    MemoryInfo memory;
    Value inputs[2];
    if (!ok(gApi->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &memory.ptr), "memory info"))
    {
        return 1;
    }
    std::vector<char const*> names;
    std::vector<OrtValue const*> values;
    for (size_t i = 0; i < inputNames.size(); ++i)
    {
        bool const isValues = inputNames[i] == "pixel_values";
        bool const made = isValues
            ? tensor(memory.ptr, pixels.data(), pixels.size() * sizeof(float), {1, 3, options.height, options.width},
                ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, inputs[i])
            : tensor(memory.ptr, mask.data(), mask.size() * sizeof(int64_t), {1, options.height, options.width},
                ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, inputs[i]);
        if (!made)
        {
            return 1;
        }
        names.push_back(inputNames[i].c_str());
        values.push_back(inputs[i].ptr);
    }
    char const* outputNames[] = {"logits", "pred_boxes"};
    Value outputs[2];
    OrtValue* outputPointers[2] = {nullptr, nullptr};
    if (!ok(gApi->Run(session.ptr, nullptr, names.data(), values.data(), values.size(), outputNames, 2, outputPointers),
            "ONNX Runtime failed to run " + options.model))
    {
        return 1;
    }
    outputs[0].ptr = outputPointers[0];
    outputs[1].ptr = outputPointers[1];
    float* logits = nullptr;
    float* boxes = nullptr;
    int64_t queries = 0;
    int64_t classes = 0;
    if (!outputArrays(outputs[0].ptr, outputs[1].ptr, logits, boxes, queries, classes))
    {
        return 1;
    }
    auto const detections = gsmlp::sample::decodeDetections(logits, boxes, queries, classes, metadata.activation,
        options.scoreThreshold, options.imageHeight, options.imageWidth);
    gsmlp::sample::printModel(
        options.model, metadata, options.library.empty() ? "function body" : "gsmlp op library (CPU)");
    gsmlp::sample::printDetections(
        detections, metadata, options.scoreThreshold, options.imageHeight, options.imageWidth);
    return 0;
}

} // namespace

int main(int argc, char** argv)
{
    gsmlp::sample::Runner const runner{"gsmlp_ort_sample", "--onnx", "an ONNX file of `gsmlp export`", "--ops-lib",
        "libgsmlp_onnxruntime_ops.so, the gsmlp op library (sparse GatedSparseMLP kernels); without it ONNX "
        "Runtime\n          runs each GatedSparseMLP node's function body (dense, then select)",
        false, "       [--threads N]   (ONNX Runtime intra-op threads; default: its own choice)\n", true, false};
    Options options;
    gsmlp::sample::Parsed const parsed = gsmlp::sample::parseOptions(argc, argv, runner, options);
    if (parsed != gsmlp::sample::Parsed::kRUN)
    {
        return parsed == gsmlp::sample::Parsed::kHELP ? 0 : 2;
    }
    OrtApiBase const* base = OrtGetApiBase();
    gApi = base->GetApi(ORT_API_VERSION);
    if (gApi == nullptr)
    {
        std::fprintf(stderr,
            "error: the ONNX Runtime library (version %s) does not offer C API version %d, which this sample was "
            "built against: link ONNX Runtime %d.x or newer\n",
            base->GetVersionString(), ORT_API_VERSION, ORT_API_VERSION);
        return 1;
    }
    return run(options);
}
