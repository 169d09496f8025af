/* The plugin's fields: the attributes of the ONNX GatedSparseMLP node (docs/op_spec.md).
 *
 *   block_size         kINT32   x1  neurons per gated block, >= 1
 *   threshold          kFLOAT32 x1  a block is active iff NOT (logit <= threshold); not NaN
 *   block_mask_output  kINT32   x1  optional, 0 (default) or 1: 1 adds output 1, BlockMask (the gate's own
 *                                   decisions, bool), for parity checks (gsmlp build --block-masks)
 *
 * The ONNX parser may also pass plugin_version ("1") and plugin_namespace ("") as kCHAR fields; they are
 * checked and otherwise ignored. Any other field is an error, so a typo never falls back to a default. */
#ifndef GSMLP_TRT_GATED_SPARSE_MLP_FIELDS_H
#define GSMLP_TRT_GATED_SPARSE_MLP_FIELDS_H

#include "common/pluginFields.h"

#include <NvInferRuntime.h>

#include <array>
#include <cstdint>
#include <string>

namespace gsmlp::trt::gated_sparse_mlp
{

constexpr char const* kPLUGIN_NAME{"GatedSparseMLP"};
constexpr char const* kFIELD_BLOCK_SIZE{"block_size"};
constexpr char const* kFIELD_THRESHOLD{"threshold"};
constexpr char const* kFIELD_BLOCK_MASK_OUTPUT{"block_mask_output"};

struct GatedSparseMLPParams
{
    int32_t blockSize{0};
    float threshold{0.F};
    int32_t blockMaskOutput{0}; // 1: the plugin has the second output BlockMask
};

//! Parses `fields` into `params`. Returns "" on success, else a message naming the field at fault.
std::string parseFields(nvinfer1::PluginFieldCollection const* fields, GatedSparseMLPParams& params);

//! The fields that serialize a plugin: exactly the ones parseFields reads back (block_mask_output only where
//! it is 1, so a plugin without BlockMask serializes as before). Holds its own copy of the values, so the
//! collection stays valid for the lifetime of this object.
class SerializedFields
{
public:
    explicit SerializedFields(GatedSparseMLPParams const& params) noexcept;
    SerializedFields(SerializedFields const& other) noexcept;
    SerializedFields& operator=(SerializedFields const&) = delete;

    nvinfer1::PluginFieldCollection const* collection() const noexcept
    {
        return &mCollection;
    }

private:
    void bind() noexcept;

    int32_t mBlockSize;
    float mThreshold;
    int32_t mBlockMaskOutput;
    std::array<nvinfer1::PluginField, 3> mFields{};
    nvinfer1::PluginFieldCollection mCollection{};
};

//! The timing-cache ID suffix: the attribute values, the threshold by its bits so that no two thresholds
//! share cached timings (TensorRT adds the I/O shapes and formats itself).
std::string timingCacheId(GatedSparseMLPParams const& params);

//! A readable summary of the attributes, for engine inspection.
std::string metadataString(GatedSparseMLPParams const& params);

} // namespace gsmlp::trt::gated_sparse_mlp

#endif // GSMLP_TRT_GATED_SPARSE_MLP_FIELDS_H
