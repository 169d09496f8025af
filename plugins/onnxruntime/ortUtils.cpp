#include "ortUtils.h"

#include <vector>

namespace gsmlp::ort
{
namespace
{

// A string attribute, or `fallback` where the node does not carry it; `present` says which.
OrtStatus* stringAttribute(OrtApi const* api, OrtKernelInfo const* info, char const* name, std::string& out, bool& present)
{
    size_t size = 0;
    OrtStatus* status = api->KernelInfoGetAttribute_string(info, name, nullptr, &size);
    if (status != nullptr)
    {
        api->ReleaseStatus(status);
        present = false;
        return nullptr;
    }
    std::vector<char> text(size + 1, '\0');
    GSMLP_ORT_RETURN_IF_ERROR(api->KernelInfoGetAttribute_string(info, name, text.data(), &size));
    out.assign(text.data());
    present = true;
    return nullptr;
}

OrtStatus* checkPluginAttribute(OrtApi const* api, OrtKernelInfo const* info, std::string const& node,
    char const* name, char const* expected)
{
    std::string value;
    bool present = false;
    GSMLP_ORT_RETURN_IF_ERROR(stringAttribute(api, info, name, value, present));
    if (present && value != expected)
    {
        return nodeError(api, node,
            std::string("attribute ") + name + " is \"" + value + "\"; this library implements \"" + expected + "\"");
    }
    return nullptr;
}

} // namespace

OrtStatus* nodeError(OrtApi const* api, std::string const& node, std::string const& message, OrtErrorCode code)
{
    std::string const text = "GatedSparseMLP node '" + node + "': " + message;
    return api->CreateStatus(code, text.c_str());
}

std::string takeMessage(OrtApi const* api, OrtStatus* status)
{
    std::string message = api->GetErrorMessage(status);
    api->ReleaseStatus(status);
    return message;
}

std::string nodeName(OrtApi const* api, OrtKernelInfo const* info)
{
    size_t size = 0;
    if (OrtStatus* status = api->KernelInfo_GetNodeName(info, nullptr, &size))
    {
        api->ReleaseStatus(status);
        return "?";
    }
    std::vector<char> name(size + 1, '\0');
    if (OrtStatus* status = api->KernelInfo_GetNodeName(info, name.data(), &size))
    {
        api->ReleaseStatus(status);
        return "?";
    }
    return name.data();
}

OrtStatus* describeValue(OrtApi const* api, OrtValue const* value, TensorDesc& out)
{
    OrtTensorTypeAndShapeInfo* info = nullptr;
    GSMLP_ORT_RETURN_IF_ERROR(api->GetTensorTypeAndShape(value, &info));
    size_t rank = 0;
    OrtStatus* status = api->GetTensorElementType(info, &out.type);
    if (status == nullptr)
    {
        status = api->GetDimensionsCount(info, &rank);
    }
    if (status == nullptr)
    {
        out.dims.assign(rank, 0);
        status = api->GetDimensions(info, out.dims.data(), rank);
    }
    api->ReleaseTensorTypeAndShapeInfo(info);
    return status;
}

OrtStatus* describeKernelInput(OrtApi const* api, OrtKernelInfo const* info, size_t index, TensorDesc& out)
{
    OrtTypeInfo* typeInfo = nullptr;
    GSMLP_ORT_RETURN_IF_ERROR(api->KernelInfo_GetInputTypeInfo(info, index, &typeInfo));
    OrtTensorTypeAndShapeInfo const* tensor = nullptr;
    OrtStatus* status = api->CastTypeInfoToTensorInfo(typeInfo, &tensor);
    size_t rank = 0;
    out = TensorDesc{};
    if (status == nullptr && tensor != nullptr)
    {
        status = api->GetTensorElementType(tensor, &out.type);
        if (status == nullptr)
        {
            status = api->GetDimensionsCount(tensor, &rank);
        }
        if (status == nullptr)
        {
            out.dims.assign(rank, -1);
            status = api->GetDimensions(tensor, out.dims.data(), rank);
        }
    }
    api->ReleaseTypeInfo(typeInfo);
    return status;
}

OrtStatus* readAttributes(OrtApi const* api, OrtKernelInfo const* info, std::string const& node, Attributes& out)
{
    if (OrtStatus* status = api->KernelInfoGetAttribute_int64(info, "block_size", &out.blockSize))
    {
        return nodeError(api, node, "attribute block_size is missing or not an INT (" + takeMessage(api, status) + ")");
    }
    if (OrtStatus* status = api->KernelInfoGetAttribute_float(info, "threshold", &out.threshold))
    {
        return nodeError(api, node, "attribute threshold is missing or not a FLOAT (" + takeMessage(api, status) + ")");
    }
    out.blockMaskOutput = -1;
    if (OrtStatus* status = api->KernelInfoGetAttribute_int64(info, "block_mask_output", &out.blockMaskOutput))
    {
        // Optional: absent means "decided by the node's output count". Present with another type is an error.
        api->ReleaseStatus(status);
        out.blockMaskOutput = -1;
        float asFloat = 0.0F;
        if (OrtStatus* notFloat = api->KernelInfoGetAttribute_float(info, "block_mask_output", &asFloat))
        {
            api->ReleaseStatus(notFloat);
        }
        else
        {
            return nodeError(api, node, "attribute block_mask_output must be an INT (0 or 1), got a FLOAT");
        }
    }
    GSMLP_ORT_RETURN_IF_ERROR(checkPluginAttribute(api, info, node, "plugin_version", "1"));
    return checkPluginAttribute(api, info, node, "plugin_namespace", "");
}

OrtStatus* readCheckedAttributes(
    OrtApi const* api, OrtKernelInfo const* info, std::string const& node, Attributes& out)
{
    GSMLP_ORT_RETURN_IF_ERROR(readAttributes(api, info, node, out));
    size_t outputs = 0;
    GSMLP_ORT_RETURN_IF_ERROR(api->KernelInfo_GetOutputCount(info, &outputs));
    std::string const error = checkAttributes(out, static_cast<int64_t>(outputs));
    return error.empty() ? nullptr : nodeError(api, node, error);
}

std::string configEntry(OrtApi const* api, OrtKernelInfo const* info, char const* key)
{
    OrtKeyValuePairs* entries = nullptr;
    if (OrtStatus* status = api->KernelInfo_GetConfigEntries(info, &entries))
    {
        api->ReleaseStatus(status);
        return "";
    }
    char const* value = api->GetKeyValue(entries, key);
    std::string text = value != nullptr ? value : "";
    api->ReleaseKeyValuePairs(entries);
    return text;
}

} // namespace gsmlp::ort
