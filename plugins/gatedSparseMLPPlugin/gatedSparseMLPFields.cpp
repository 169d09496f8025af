#include "gatedSparseMLPFields.h"

#include <cmath>
#include <cstdio>
#include <cstring>

namespace gsmlp::trt
{
namespace
{

using nvinfer1::PluginField;
using nvinfer1::PluginFieldType;

char const* typeName(PluginFieldType type)
{
    switch (type)
    {
    case PluginFieldType::kFLOAT16: return "kFLOAT16";
    case PluginFieldType::kFLOAT32: return "kFLOAT32";
    case PluginFieldType::kFLOAT64: return "kFLOAT64";
    case PluginFieldType::kINT8: return "kINT8";
    case PluginFieldType::kINT16: return "kINT16";
    case PluginFieldType::kINT32: return "kINT32";
    case PluginFieldType::kCHAR: return "kCHAR";
    case PluginFieldType::kDIMS: return "kDIMS";
    case PluginFieldType::kUNKNOWN: return "kUNKNOWN";
    case PluginFieldType::kBF16: return "kBF16";
    case PluginFieldType::kINT64: return "kINT64";
    case PluginFieldType::kFP8: return "kFP8";
    case PluginFieldType::kINT4: return "kINT4";
    case PluginFieldType::kFP4: return "kFP4";
    }
    return "an unknown type";
}

// One scalar of `expected` type, or a message saying what came instead.
std::string checkScalar(PluginField const& field, PluginFieldType expected)
{
    if (field.type != expected)
    {
        return std::string("field ") + field.name + " must be " + typeName(expected) + ", got " + typeName(field.type);
    }
    if (field.length != 1)
    {
        return std::string("field ") + field.name + " must hold 1 value, got " + std::to_string(field.length);
    }
    if (field.data == nullptr)
    {
        return std::string("field ") + field.name + " has no data";
    }
    return "";
}

// A kCHAR field equal to `expected`. The parser copies std::string bytes, with or without a terminating NUL,
// so the text ends at `length` or at the first NUL.
std::string checkText(PluginField const& field, char const* expected)
{
    if (field.type != PluginFieldType::kCHAR)
    {
        return std::string("field ") + field.name + " must be kCHAR, got " + typeName(field.type);
    }
    if (field.length < 0 || (field.length > 0 && field.data == nullptr))
    {
        return std::string("field ") + field.name + " has no data";
    }
    auto const* chars = static_cast<char const*>(field.data);
    size_t const size = field.length == 0 ? 0 : strnlen(chars, static_cast<size_t>(field.length));
    std::string const value(chars == nullptr ? "" : chars, size);
    if (value != expected)
    {
        return std::string("field ") + field.name + " is \"" + value + "\"; this library provides \"" + expected
            + "\"";
    }
    return "";
}

// One scalar field of `type` copied into `value`, or the message of checkScalar.
template <typename T>
std::string readScalar(PluginField const& field, PluginFieldType type, T& value)
{
    std::string const error = checkScalar(field, type);
    if (error.empty())
    {
        std::memcpy(&value, field.data, sizeof(T));
    }
    return error;
}

std::string readBlockSize(PluginField const& field, GatedSparseMLPParams& parsed)
{
    std::string const error = readScalar(field, PluginFieldType::kINT32, parsed.blockSize);
    if (error.empty() && parsed.blockSize < 1)
    {
        return "field block_size must be >= 1, got " + std::to_string(parsed.blockSize);
    }
    return error;
}

std::string readThreshold(PluginField const& field, GatedSparseMLPParams& parsed)
{
    std::string const error = readScalar(field, PluginFieldType::kFLOAT32, parsed.threshold);
    // A NaN threshold would silently make every block active; +-Inf are legitimate extremes.
    return error.empty() && std::isnan(parsed.threshold) ? "field threshold is NaN" : error;
}

std::string readBlockMaskOutput(PluginField const& field, GatedSparseMLPParams& parsed)
{
    std::string const error = readScalar(field, PluginFieldType::kINT32, parsed.blockMaskOutput);
    if (error.empty() && parsed.blockMaskOutput != 0 && parsed.blockMaskOutput != 1)
    {
        return "field block_mask_output must be 0 or 1, got " + std::to_string(parsed.blockMaskOutput);
    }
    return error;
}

std::string readPluginVersion(PluginField const& field, GatedSparseMLPParams& /*parsed*/)
{
    return checkText(field, kPLUGIN_VERSION);
}

std::string readPluginNamespace(PluginField const& field, GatedSparseMLPParams& /*parsed*/)
{
    return checkText(field, kPLUGIN_NAMESPACE);
}

// One row per field the plugin reads: its name, whether it may be given only once, the message when a
// required field is absent (nullptr: optional), and how it is read into the parameters ("" or a message).
struct FieldHandler
{
    char const* name;
    bool once;
    char const* missing;
    std::string (*read)(PluginField const& field, GatedSparseMLPParams& parsed);
};

constexpr FieldHandler kFIELD_HANDLERS[]{
    {kFIELD_BLOCK_SIZE, true, "field block_size is missing (the INT attribute block_size of the ONNX node)",
        readBlockSize},
    {kFIELD_THRESHOLD, true, "field threshold is missing (the FLOAT attribute threshold of the ONNX node)",
        readThreshold},
    {kFIELD_BLOCK_MASK_OUTPUT, true, nullptr, readBlockMaskOutput},
    // The ONNX parser passes the node's plugin_version/plugin_namespace attributes along as fields.
    {"plugin_version", false, nullptr, readPluginVersion},
    {"plugin_namespace", false, nullptr, readPluginNamespace},
};
constexpr size_t kNB_FIELD_HANDLERS{sizeof(kFIELD_HANDLERS) / sizeof(kFIELD_HANDLERS[0])};

FieldHandler const* findHandler(char const* name)
{
    for (FieldHandler const& handler : kFIELD_HANDLERS)
    {
        if (std::strcmp(name, handler.name) == 0)
        {
            return &handler;
        }
    }
    return nullptr;
}

} // namespace

std::string parseFields(nvinfer1::PluginFieldCollection const* fields, GatedSparseMLPParams& params)
{
    if (fields == nullptr)
    {
        return "no field collection was given (block_size and threshold are required)";
    }
    if (fields->nbFields < 0 || (fields->nbFields > 0 && fields->fields == nullptr))
    {
        return "the field collection is malformed (" + std::to_string(fields->nbFields) + " fields, no array)";
    }
    bool seen[kNB_FIELD_HANDLERS]{};
    GatedSparseMLPParams parsed{};
    for (int32_t i = 0; i < fields->nbFields; ++i)
    {
        PluginField const& field = fields->fields[i];
        if (field.name == nullptr)
        {
            return "field #" + std::to_string(i) + " has no name";
        }
        FieldHandler const* handler = findHandler(field.name);
        if (handler == nullptr)
        {
            return std::string("unknown field ") + field.name
                + " (GatedSparseMLP takes block_size, threshold, block_mask_output, plugin_version, plugin_namespace)";
        }
        bool& wasSeen = seen[handler - kFIELD_HANDLERS];
        if (handler->once && wasSeen)
        {
            return std::string("field ") + handler->name + " is given twice";
        }
        wasSeen = true;
        std::string const error = handler->read(field, parsed);
        if (!error.empty())
        {
            return error;
        }
    }
    for (size_t i = 0; i < kNB_FIELD_HANDLERS; ++i)
    {
        if (kFIELD_HANDLERS[i].missing != nullptr && !seen[i])
        {
            return kFIELD_HANDLERS[i].missing;
        }
    }
    params = parsed;
    return "";
}

SerializedFields::SerializedFields(GatedSparseMLPParams const& params) noexcept
    : mBlockSize(params.blockSize)
    , mThreshold(params.threshold)
    , mBlockMaskOutput(params.blockMaskOutput)
{
    bind();
}

SerializedFields::SerializedFields(SerializedFields const& other) noexcept
    : mBlockSize(other.mBlockSize)
    , mThreshold(other.mThreshold)
    , mBlockMaskOutput(other.mBlockMaskOutput)
{
    // The copy must point at its own values, not at the ones of `other`.
    bind();
}

void SerializedFields::bind() noexcept
{
    mFields[0] = PluginField(kFIELD_BLOCK_SIZE, &mBlockSize, PluginFieldType::kINT32, 1);
    mFields[1] = PluginField(kFIELD_THRESHOLD, &mThreshold, PluginFieldType::kFLOAT32, 1);
    mFields[2] = PluginField(kFIELD_BLOCK_MASK_OUTPUT, &mBlockMaskOutput, PluginFieldType::kINT32, 1);
    mCollection.nbFields = mBlockMaskOutput != 0 ? 3 : 2;
    mCollection.fields = mFields.data();
}

std::string timingCacheId(GatedSparseMLPParams const& params)
{
    uint32_t bits{0};
    std::memcpy(&bits, &params.threshold, sizeof(bits));
    char buffer[128];
    std::snprintf(buffer, sizeof(buffer), "GatedSparseMLP_v%s_block_size=%d_threshold_bits=0x%08x%s", kPLUGIN_VERSION,
        static_cast<int>(params.blockSize), static_cast<unsigned>(bits),
        params.blockMaskOutput != 0 ? "_block_mask_output=1" : "");
    return buffer;
}

std::string metadataString(GatedSparseMLPParams const& params)
{
    char buffer[128];
    std::snprintf(buffer, sizeof(buffer), "block_size=%d threshold=%.9g%s", static_cast<int>(params.blockSize),
        static_cast<double>(params.threshold), params.blockMaskOutput != 0 ? " block_mask_output=1" : "");
    return buffer;
}

} // namespace gsmlp::trt
