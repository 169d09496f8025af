#include "ortUtils.h"

#include "gsmlp/common.h"

namespace gsmlp::ort
{
namespace
{

// A string attribute; `present` is false (and no error) where the node does not carry it.
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

} // namespace

OrtStatus* nodeError(OrtApi const* api, Node const& node, std::string const& message, OrtErrorCode code)
{
    std::string const text = std::string(node.opType) + " node '" + node.name + "': " + message;
    return api->CreateStatus(code, text.c_str());
}

std::string takeMessage(OrtApi const* api, OrtStatus* status)
{
    std::string message = api->GetErrorMessage(status);
    api->ReleaseStatus(status);
    return message;
}

Node kernelNode(OrtApi const* api, OrtKernelInfo const* info, char const* opType)
{
    return Node{opType, nodeName(api, info)};
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

OrtStatus* checkStringAttribute(
    OrtApi const* api, OrtKernelInfo const* info, Node const& node, char const* name, char const* expected)
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

OrtStatus* checkPluginAttributes(OrtApi const* api, OrtKernelInfo const* info, Node const& node)
{
    GSMLP_ORT_RETURN_IF_ERROR(checkStringAttribute(api, info, node, "plugin_version", "1"));
    return checkStringAttribute(api, info, node, "plugin_namespace", "");
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

std::string typeName(ONNXTensorElementDataType type)
{
    switch (type)
    {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return "float32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return "float16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return "double";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16: return "bfloat16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8: return "int8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return "uint8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return "int32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return "int64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return "bool";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED: return "undefined (not a tensor?)";
    default: return "ONNX element type " + std::to_string(static_cast<int>(type));
    }
}

OrtStatus* kernelError(OrtApi const* api, Node const& node, char const* call, int status)
{
    std::string const detail = gsmlp_last_error();
    return nodeError(api, node,
        std::string(call) + " failed: " + gsmlp_status_string(status) + (detail.empty() ? "" : ": " + detail),
        ORT_RUNTIME_EXCEPTION);
}

} // namespace gsmlp::ort
