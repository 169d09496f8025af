#include "gatedSparseMLPFields.h"

#include "common/pluginFields.h"

#include <cmath>
#include <cstdio>
#include <cstring>

namespace gsmlp::trt::gated_sparse_mlp
{
namespace
{

using nvinfer1::PluginField;
using nvinfer1::PluginFieldType;

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

constexpr FieldHandler<GatedSparseMLPParams> kFIELD_HANDLERS[]{
    {kFIELD_BLOCK_SIZE, true, "field block_size is missing (the INT attribute block_size of the ONNX node)",
        readBlockSize},
    {kFIELD_THRESHOLD, true, "field threshold is missing (the FLOAT attribute threshold of the ONNX node)",
        readThreshold},
    {kFIELD_BLOCK_MASK_OUTPUT, true, nullptr, readBlockMaskOutput},
    // The ONNX parser passes the node's plugin_version/plugin_namespace attributes along as fields.
    {"plugin_version", false, nullptr, readPluginVersion<GatedSparseMLPParams>},
    {"plugin_namespace", false, nullptr, readPluginNamespace<GatedSparseMLPParams>},
};

} // namespace

std::string parseFields(nvinfer1::PluginFieldCollection const* fields, GatedSparseMLPParams& params)
{
    return parseFieldTable(fields, kFIELD_HANDLERS,
        "GatedSparseMLP takes block_size, threshold, block_mask_output, plugin_version, plugin_namespace", params);
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

} // namespace gsmlp::trt::gated_sparse_mlp
