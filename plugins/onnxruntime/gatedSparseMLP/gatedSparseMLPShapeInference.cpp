#include "gatedSparseMLPShapeInference.h"

#include "common/ortShapeInference.h"
#include "gatedSparseMLPOrtChecks.h"

#include <exception>
#include <string>
#include <vector>

namespace gsmlp::ort::gated_sparse_mlp
{
namespace
{

// block_size where the node carries a valid one, else 0 (the kernel's creation then names the problem).
int64_t blockSizeOf(OrtApi const* api, OrtShapeInferContext* context)
{
    OrtOpAttr const* attribute = nullptr;
    int64_t value = 0;
    size_t size = 0;
    OrtStatus* status = api->ShapeInferContext_GetAttribute(context, "block_size", &attribute);
    if (status == nullptr && attribute != nullptr)
    {
        status = api->ReadOpAttr(attribute, ORT_OP_ATTR_INT, &value, sizeof value, &size);
    }
    if (status != nullptr)
    {
        api->ReleaseStatus(status);
        return 0;
    }
    return value;
}

OrtStatus* infer(OrtApi const* api, OrtShapeInferContext* context)
{
    size_t count = 0;
    GSMLP_ORT_RETURN_IF_ERROR(api->ShapeInferContext_GetInputCount(context, &count));
    if (count != kNB_INPUTS)
    {
        std::string const message = "GatedSparseMLP expects 8 inputs (X, W1, B1, W2, B2, GateDown, GateUp, "
                                    "GateBias), got "
            + std::to_string(count);
        return api->CreateStatus(ORT_INVALID_ARGUMENT, message.c_str());
    }
    std::vector<TypeShape> inputs(kNB_INPUTS);
    InputDescs descs;
    for (int32_t i = 0; i < kNB_INPUTS; ++i)
    {
        GSMLP_ORT_RETURN_IF_ERROR(readInputTypeShape(api, context, i, inputs[i]));
        descs[i] = inputs[i].desc;
    }
    int64_t const blockSize = blockSizeOf(api, context);
    if (blockSize >= 1)
    {
        std::string const error = checkInputs(descs, blockSize);
        if (!error.empty())
        {
            return api->CreateStatus(ORT_INVALID_ARGUMENT, ("GatedSparseMLP: " + error).c_str());
        }
    }
    GSMLP_ORT_RETURN_IF_ERROR(writeOutputTypeShape(api, context, 0, inputs[kX]));
    if (inputs[kX].desc.dims.empty() || inputs[kGATE_UP].desc.dims.empty())
    {
        return nullptr; // shapes unknown here: BlockMask's shape is left to the run
    }
    TypeShape mask = inputs[kX];
    mask.desc.type = ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL;
    mask.desc.dims.back() = inputs[kGATE_UP].desc.dims[0];
    mask.symbols.back() = inputs[kGATE_UP].symbols[0];
    if (OrtStatus* status = writeOutputTypeShape(api, context, 1, mask))
    {
        api->ReleaseStatus(status); // the node has no output 1 (BlockMask is optional)
    }
    return nullptr;
}

} // namespace

OrtStatusPtr inferOutputTypesAndShapes(OrtShapeInferContext* context)
{
    OrtApi const* api = shapeInferenceApi();
    try
    {
        return infer(api, context);
    }
    catch (std::exception const& e)
    {
        return api->CreateStatus(ORT_FAIL, (std::string("GatedSparseMLP shape inference: ") + e.what()).c_str());
    }
}

} // namespace gsmlp::ort::gated_sparse_mlp
