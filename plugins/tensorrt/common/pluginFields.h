/* Reading a plugin's fields (PluginFieldCollection) for every plugin of the library: one table row per field
 * the plugin takes, each read by a function that checks type, count and range, so that a missing, duplicated,
 * mistyped or unknown field is refused with a message naming it (a typo never falls back to a default).
 * The ONNX parser passes a node's plugin_version/plugin_namespace attributes along as kCHAR fields: every
 * plugin's table accepts them (readPluginVersion/readPluginNamespace) and checks their values. */
#ifndef GSMLP_TRT_PLUGIN_FIELDS_H
#define GSMLP_TRT_PLUGIN_FIELDS_H

#include <NvInferRuntime.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace gsmlp::trt
{

//! Every plugin of this library has version "1" in the default namespace (gsmlp/op_identity.py).
constexpr char const* kPLUGIN_VERSION{"1"};
constexpr char const* kPLUGIN_NAMESPACE{""};

//! "kINT32", "kFLOAT32", ... for messages.
char const* fieldTypeName(nvinfer1::PluginFieldType type);

//! One scalar of `expected` type: "" or a message saying what came instead.
std::string checkScalar(nvinfer1::PluginField const& field, nvinfer1::PluginFieldType expected);

//! A kCHAR field equal to `expected`: "" or a message with both values. The parser copies std::string bytes,
//! with or without a terminating NUL, so the text ends at `length` or at the first NUL.
std::string checkText(nvinfer1::PluginField const& field, char const* expected);

//! One scalar field of `type` copied into `value`, or the message of checkScalar.
template <typename T>
std::string readScalar(nvinfer1::PluginField const& field, nvinfer1::PluginFieldType type, T& value)
{
    std::string const error = checkScalar(field, type);
    if (error.empty())
    {
        std::memcpy(&value, field.data, sizeof(T));
    }
    return error;
}

//! One row per field a plugin reads: its name, whether it may be given only once, the message when a
//! required field is absent (nullptr: optional), and how it is read into the parameters ("" or a message).
template <typename Params>
struct FieldHandler
{
    char const* name;
    bool once;
    char const* missing;
    std::string (*read)(nvinfer1::PluginField const& field, Params& parsed);
};

template <typename Params>
std::string readPluginVersion(nvinfer1::PluginField const& field, Params& /*parsed*/)
{
    return checkText(field, kPLUGIN_VERSION);
}

template <typename Params>
std::string readPluginNamespace(nvinfer1::PluginField const& field, Params& /*parsed*/)
{
    return checkText(field, kPLUGIN_NAMESPACE);
}

//! Parses `fields` with `handlers` into `params`: "" on success (params set), else a message naming the
//! field at fault; `takes` lists the field names for the message about an unknown one.
template <typename Params, size_t N>
std::string parseFieldTable(nvinfer1::PluginFieldCollection const* fields, FieldHandler<Params> const (&handlers)[N],
    char const* takes, Params& params)
{
    if (fields == nullptr)
    {
        return std::string("no field collection was given (") + takes + ")";
    }
    if (fields->nbFields < 0 || (fields->nbFields > 0 && fields->fields == nullptr))
    {
        return "the field collection is malformed (" + std::to_string(fields->nbFields) + " fields, no array)";
    }
    bool seen[N]{};
    Params parsed{};
    for (int32_t i = 0; i < fields->nbFields; ++i)
    {
        nvinfer1::PluginField const& field = fields->fields[i];
        if (field.name == nullptr)
        {
            return "field #" + std::to_string(i) + " has no name";
        }
        size_t row = 0;
        while (row < N && std::strcmp(field.name, handlers[row].name) != 0)
        {
            ++row;
        }
        if (row == N)
        {
            return std::string("unknown field ") + field.name + " (" + takes + ")";
        }
        if (handlers[row].once && seen[row])
        {
            return std::string("field ") + handlers[row].name + " is given twice";
        }
        seen[row] = true;
        std::string const error = handlers[row].read(field, parsed);
        if (!error.empty())
        {
            return error;
        }
    }
    for (size_t row = 0; row < N; ++row)
    {
        if (handlers[row].missing != nullptr && !seen[row])
        {
            return handlers[row].missing;
        }
    }
    params = parsed;
    return "";
}

} // namespace gsmlp::trt

#endif // GSMLP_TRT_PLUGIN_FIELDS_H
