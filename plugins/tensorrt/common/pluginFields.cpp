#include "pluginFields.h"

namespace gsmlp::trt
{

using nvinfer1::PluginField;
using nvinfer1::PluginFieldType;

char const* fieldTypeName(PluginFieldType type)
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

std::string checkScalar(PluginField const& field, PluginFieldType expected)
{
    if (field.type != expected)
    {
        return std::string("field ") + field.name + " must be " + fieldTypeName(expected) + ", got " + fieldTypeName(field.type);
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

std::string checkText(PluginField const& field, char const* expected)
{
    if (field.type != PluginFieldType::kCHAR)
    {
        return std::string("field ") + field.name + " must be kCHAR, got " + fieldTypeName(field.type);
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

} // namespace gsmlp::trt
