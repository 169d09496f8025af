/* The metadata `gsmlp export` writes into every ONNX file and `gsmlp build` copies into the engine's JSON
 * (defined in gsmlp/deploy_metadata.py): what the samples need to decode the outputs and name the labels. */
#ifndef GSMLP_SAMPLE_METADATA_H
#define GSMLP_SAMPLE_METADATA_H

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace gsmlp::sample
{

enum class Activation
{
    kSOFTMAX, // DETR: softmax over the classes, the last one "no object"
    kSIGMOID  // Deformable DETR: every (query, class) pair scored by its sigmoid
};

struct ModelMetadata
{
    std::string family;
    std::string mode;  // "gated" or "dense"
    std::string dtype; // "fp32" or "fp16"
    std::string gsmlpVersion;
    Activation activation{Activation::kSOFTMAX};
    std::vector<std::string> labels; // entry i names class i; "" where the model names none

    //! The name of class `label`, or its number where the file names none.
    std::string labelName(int64_t label) const;
};

using MetadataProps = std::map<std::string, std::string>;

//! Reads the key/value metadata of `source` (an ONNX file's metadata_props, or the engine JSON's "metadata").
//! On failure says what is missing or wrong (a foreign file, an older gsmlp's, a bad value) in `error`.
bool readMetadata(MetadataProps const& props, std::string const& source, ModelMetadata& out, std::string& error);

//! The "metadata" object of an engine's JSON file (`gsmlp build` writes it as ENGINE.json).
bool readEngineMetadataProps(std::string const& jsonPath, MetadataProps& props, std::string& error);

} // namespace gsmlp::sample

#endif // GSMLP_SAMPLE_METADATA_H
