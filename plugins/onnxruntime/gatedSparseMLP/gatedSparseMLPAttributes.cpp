#include "gatedSparseMLPAttributes.h"

namespace gsmlp::ort::gated_sparse_mlp
{

OrtStatus* readAttributes(OrtApi const* api, OrtKernelInfo const* info, Node const& node, Attributes& out)
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
    return checkPluginAttributes(api, info, node);
}

OrtStatus* readCheckedAttributes(OrtApi const* api, OrtKernelInfo const* info, Node const& node, Attributes& out)
{
    GSMLP_ORT_RETURN_IF_ERROR(readAttributes(api, info, node, out));
    size_t outputs = 0;
    GSMLP_ORT_RETURN_IF_ERROR(api->KernelInfo_GetOutputCount(info, &outputs));
    std::string const error = checkAttributes(out, static_cast<int64_t>(outputs));
    return error.empty() ? nullptr : nodeError(api, node, error);
}

} // namespace gsmlp::ort::gated_sparse_mlp
