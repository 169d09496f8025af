#include "metadata.h"

#include "json.h"

#include <cstdlib>
#include <fstream>
#include <iterator>

namespace gsmlp::sample
{
namespace
{

// gsmlp/deploy_metadata.py: METADATA_VERSION and REQUIRED_KEYS, in that table's order. Tests run these samples
// on files lacking each key, so a list that drifts from the Python one fails them.
constexpr int kMETADATA_VERSION = 1;
char const* const kREQUIRED_KEYS[] = {"gsmlp.family", "gsmlp.mode", "gsmlp.dtype", "gsmlp.metadata_version",
    "gsmlp.version", "gsmlp.op_domain", "gsmlp.op_version", "gsmlp.plugin_version", "gsmlp.activation",
    "gsmlp.resize", "gsmlp.shortest_edge", "gsmlp.longest_edge", "gsmlp.image_mean", "gsmlp.image_std",
    "gsmlp.pad_multiple", "gsmlp.labels"};
char const* const kREEXPORT = "re-export it with `gsmlp export` (and rebuild an engine with `gsmlp build`)";

bool badValue(std::string const& source, char const* key, std::string const& value, char const* want,
    std::string& error)
{
    error = source + ": metadata " + key + " is '" + value.substr(0, 80) + "', expected " + want + "; " + kREEXPORT;
    return false;
}

bool readLabels(MetadataProps const& props, std::string const& source, ModelMetadata& out, std::string& error)
{
    std::string const& text = props.at("gsmlp.labels");
    json::Value list;
    std::string why;
    bool ok = json::parse(text, list, why) && list.type == json::Value::Type::kARRAY;
    for (size_t i = 0; ok && i < list.array.size(); ++i)
    {
        ok = list.array[i].type == json::Value::Type::kSTRING;
        if (ok)
        {
            out.labels.push_back(list.array[i].string);
        }
    }
    return ok || badValue(source, "gsmlp.labels", text, "a JSON list of label names", error);
}

} // namespace

std::string ModelMetadata::labelName(int64_t label) const
{
    if (label >= 0 && label < static_cast<int64_t>(labels.size()) && !labels[label].empty())
    {
        return labels[label];
    }
    return std::to_string(label);
}

bool readMetadata(MetadataProps const& props, std::string const& source, ModelMetadata& out, std::string& error)
{
    if (props.count("gsmlp.family") == 0)
    {
        error = source
            + " carries no gsmlp metadata (no gsmlp.family key): it was not written by `gsmlp export`, so nothing "
              "says how to decode its outputs; export the checkpoint with `gsmlp export`";
        return false;
    }
    auto const version = props.find("gsmlp.metadata_version");
    if (version != props.end() && std::atoi(version->second.c_str()) > kMETADATA_VERSION)
    {
        error = source + " has gsmlp metadata version " + version->second + ", newer than this sample reads ("
            + std::to_string(kMETADATA_VERSION) + "): rebuild the sample from the same gsmlp, or " + kREEXPORT;
        return false;
    }
    std::string missing;
    for (char const* key : kREQUIRED_KEYS)
    {
        if (props.count(key) == 0)
        {
            missing += (missing.empty() ? "" : ", ") + std::string(key);
        }
    }
    if (!missing.empty())
    {
        error = source + " was exported by an older gsmlp: its metadata lacks " + missing
            + ", which the runtimes need to pre-process images and decode outputs; " + kREEXPORT;
        return false;
    }
    out = ModelMetadata{};
    out.family = props.at("gsmlp.family");
    out.mode = props.at("gsmlp.mode");
    out.dtype = props.at("gsmlp.dtype");
    out.gsmlpVersion = props.at("gsmlp.version");
    std::string const& activation = props.at("gsmlp.activation");
    if (activation != "softmax" && activation != "sigmoid")
    {
        return badValue(source, "gsmlp.activation", activation, "one of sigmoid, softmax", error);
    }
    out.activation = activation == "sigmoid" ? Activation::kSIGMOID : Activation::kSOFTMAX;
    return readLabels(props, source, out, error);
}

bool readEngineMetadataProps(std::string const& jsonPath, MetadataProps& props, std::string& error)
{
    std::ifstream file(jsonPath, std::ios::binary);
    if (!file)
    {
        error = "cannot read " + jsonPath
            + ": the engine's JSON (written beside it by `gsmlp build`) says how to decode its outputs; build the "
              "engine with `gsmlp build`, or name the JSON with --metadata";
        return false;
    }
    std::string const text{std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
    json::Value document;
    std::string why;
    if (!json::parse(text, document, why) || document.type != json::Value::Type::kOBJECT)
    {
        error = jsonPath + " is corrupt: not a JSON object (" + why + ")";
        return false;
    }
    json::Value const* format = document.find("format");
    if (format == nullptr || format->string != "gsmlp-trt-engine/1")
    {
        error = jsonPath + " is not a gsmlp engine metadata file (expected \"format\": \"gsmlp-trt-engine/1\")";
        return false;
    }
    json::Value const* metadata = document.find("metadata");
    if (metadata == nullptr || metadata->type != json::Value::Type::kOBJECT)
    {
        error = jsonPath
            + " was written by an older `gsmlp build`: it lacks the model metadata (\"metadata\": the family, "
              "preprocessing and label names); rebuild the engine with `gsmlp build` from a file of `gsmlp export`";
        return false;
    }
    props.clear();
    for (auto const& [key, value] : metadata->object)
    {
        if (value.type == json::Value::Type::kSTRING)
        {
            props[key] = value.string;
        }
    }
    return true;
}

} // namespace gsmlp::sample
