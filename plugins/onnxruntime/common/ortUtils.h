/* Small helpers over ONNX Runtime's C API that every op of the library uses (the library uses no C++ wrapper:
 * the C API headers are all it builds against): error statuses that name the op and node, tensor
 * descriptions, string attributes, config entries, type names. */
#ifndef GSMLP_ORT_UTILS_H
#define GSMLP_ORT_UTILS_H

#include "onnxruntime_c_api.h"

#include <cstdint>
#include <string>
#include <vector>

namespace gsmlp::ort
{

//! The domain and opset version every op of the library is registered in (gsmlp/op_identity.py).
constexpr char const* kDOMAIN = "gsmlp";
constexpr int kDOMAIN_VERSION = 1;

//! Returns the status of `expr` from the calling function when it is an error.
#define GSMLP_ORT_RETURN_IF_ERROR(expr)                                                                               \
    do                                                                                                                 \
    {                                                                                                                  \
        if (OrtStatus* gsmlpStatus_ = (expr))                                                                          \
        {                                                                                                              \
            return gsmlpStatus_;                                                                                       \
        }                                                                                                              \
    } while (0)

//! One input or output as ONNX Runtime describes it; dims of -1 are unknown (only while a session is created).
struct TensorDesc
{
    ONNXTensorElementDataType type{ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED};
    std::vector<int64_t> dims;
};

//! A node of the graph, for messages: its op type and its name.
struct Node
{
    char const* opType;
    std::string name;
};

//! ORT_INVALID_ARGUMENT (or `code`) with "<op type> node '<name>': <message>".
OrtStatus* nodeError(OrtApi const* api, Node const& node, std::string const& message,
    OrtErrorCode code = ORT_INVALID_ARGUMENT);

//! The message of `status`, which it releases.
std::string takeMessage(OrtApi const* api, OrtStatus* status);

//! The node the kernel is created for (its name "?" where ONNX Runtime gives none).
Node kernelNode(OrtApi const* api, OrtKernelInfo const* info, char const* opType);

//! Type and shape of a tensor value (a kernel's input at run time, or a constant initializer).
OrtStatus* describeValue(OrtApi const* api, OrtValue const* value, TensorDesc& out);

//! Type and shape (-1 where unknown) that the graph gives input `index` while the session is created.
OrtStatus* describeKernelInput(OrtApi const* api, OrtKernelInfo const* info, size_t index, TensorDesc& out);

//! Where the node carries the STRING attribute `name`, it must equal `expected` (plugin_version "1",
//! plugin_namespace ""): else an error naming the attribute and both values.
OrtStatus* checkStringAttribute(
    OrtApi const* api, OrtKernelInfo const* info, Node const& node, char const* name, char const* expected);

//! plugin_version "1" and plugin_namespace "" where present (the TensorRT binding's identity).
OrtStatus* checkPluginAttributes(OrtApi const* api, OrtKernelInfo const* info, Node const& node);

//! A session config entry ("" where unset).
std::string configEntry(OrtApi const* api, OrtKernelInfo const* info, char const* key);

//! "float32", "float16", "double", ... for messages.
std::string typeName(ONNXTensorElementDataType type);

//! The kernel library's last error as an ONNX Runtime status naming the node and the call.
OrtStatus* kernelError(OrtApi const* api, Node const& node, char const* call, int status);

} // namespace gsmlp::ort

#endif // GSMLP_ORT_UTILS_H
