/* Small helpers over ONNX Runtime's C API (the library uses no C++ wrapper: the C API headers are all it
 * builds against): error statuses that name the node, tensor descriptions, attributes, config entries. */
#ifndef GSMLP_ORT_UTILS_H
#define GSMLP_ORT_UTILS_H

#include "gatedSparseMLPOrtChecks.h"
#include "onnxruntime_c_api.h"

#include <string>

namespace gsmlp::ort
{

//! Returns the status of `expr` from the calling function when it is an error.
#define GSMLP_ORT_RETURN_IF_ERROR(expr)                                                                               \
    do                                                                                                                 \
    {                                                                                                                  \
        if (OrtStatus* gsmlpStatus_ = (expr))                                                                          \
        {                                                                                                              \
            return gsmlpStatus_;                                                                                       \
        }                                                                                                              \
    } while (0)

//! ORT_INVALID_ARGUMENT (or `code`) with "GatedSparseMLP node '<node>': <message>".
OrtStatus* nodeError(OrtApi const* api, std::string const& node, std::string const& message,
    OrtErrorCode code = ORT_INVALID_ARGUMENT);

//! The message of `status` (which it releases), prefixed with `context`.
std::string takeMessage(OrtApi const* api, OrtStatus* status);

std::string nodeName(OrtApi const* api, OrtKernelInfo const* info);

//! Type and shape of a tensor value (a kernel's input at run time, or a constant initializer).
OrtStatus* describeValue(OrtApi const* api, OrtValue const* value, TensorDesc& out);

//! Type and shape (-1 where unknown) that the graph gives input `index` while the session is created.
OrtStatus* describeKernelInput(OrtApi const* api, OrtKernelInfo const* info, size_t index, TensorDesc& out);

//! block_size, threshold, block_mask_output; plugin_version/plugin_namespace must be "1"/"" where present.
OrtStatus* readAttributes(OrtApi const* api, OrtKernelInfo const* info, std::string const& node, Attributes& out);

//! readAttributes, then checkAttributes against the node's output count: what both kernels do when created.
OrtStatus* readCheckedAttributes(
    OrtApi const* api, OrtKernelInfo const* info, std::string const& node, Attributes& out);

//! A session config entry ("" where unset).
std::string configEntry(OrtApi const* api, OrtKernelInfo const* info, char const* key);

} // namespace gsmlp::ort

#endif // GSMLP_ORT_UTILS_H
