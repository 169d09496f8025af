#include "gatedSparseMLPShapeInference.h"

#include "gatedSparseMLPOrtChecks.h"
#include "ortUtils.h"

#include <atomic>
#include <exception>
#include <string>
#include <vector>

namespace gsmlp::ort
{
namespace
{

std::atomic<OrtApi const*> gApi{nullptr};
std::atomic<int64_t> gUnknownDims{0};

// Type, dims (-1 unknown) and symbolic dim names ("" where none) of one input.
struct TypeShape
{
    TensorDesc desc;
    std::vector<std::string> symbols;
};

OrtStatus* readInput(OrtApi const* api, OrtShapeInferContext* context, size_t index, TypeShape& out)
{
    OrtTensorTypeAndShapeInfo* info = nullptr;
    GSMLP_ORT_RETURN_IF_ERROR(api->ShapeInferContext_GetInputTypeShape(context, index, &info));
    size_t rank = 0;
    OrtStatus* status = api->GetTensorElementType(info, &out.desc.type);
    if (status == nullptr)
    {
        status = api->GetDimensionsCount(info, &rank);
    }
    std::vector<char const*> symbols(rank, nullptr);
    if (status == nullptr)
    {
        out.desc.dims.assign(rank, -1);
        status = api->GetDimensions(info, out.desc.dims.data(), rank);
    }
    if (status == nullptr)
    {
        status = api->GetSymbolicDimensions(info, symbols.data(), rank);
    }
    for (size_t i = 0; i < symbols.size(); ++i)
    {
        out.symbols.emplace_back(symbols[i] != nullptr ? symbols[i] : "");
        if (out.desc.dims[i] < 0 && out.symbols.back().empty())
        {
            // ONNX Runtime writes a dim without a name as its value, and -1 is no value: name the unknown.
            out.symbols.back() = "gsmlp_dim_" + std::to_string(gUnknownDims.fetch_add(1));
        }
    }
    return status; // `info` belongs to the context (ONNX Runtime's own C++ wrapper does not release it either)
}

OrtStatus* writeOutput(OrtApi const* api, OrtShapeInferContext* context, size_t index, TypeShape const& shape)
{
    OrtTensorTypeAndShapeInfo* info = nullptr;
    GSMLP_ORT_RETURN_IF_ERROR(api->CreateTensorTypeAndShapeInfo(&info));
    std::vector<char const*> symbols;
    for (std::string const& symbol : shape.symbols)
    {
        symbols.push_back(symbol.c_str());
    }
    OrtStatus* status = api->SetTensorElementType(info, shape.desc.type);
    if (status == nullptr)
    {
        status = api->SetDimensions(info, shape.desc.dims.data(), shape.desc.dims.size());
    }
    if (status == nullptr)
    {
        status = api->SetSymbolicDimensions(info, symbols.data(), symbols.size());
    }
    if (status == nullptr)
    {
        status = api->ShapeInferContext_SetOutputTypeShape(context, index, info);
    }
    api->ReleaseTensorTypeAndShapeInfo(info);
    return status;
}

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
        GSMLP_ORT_RETURN_IF_ERROR(readInput(api, context, i, inputs[i]));
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
    GSMLP_ORT_RETURN_IF_ERROR(writeOutput(api, context, 0, inputs[kX]));
    if (inputs[kX].desc.dims.empty() || inputs[kGATE_UP].desc.dims.empty())
    {
        return nullptr; // shapes unknown here: BlockMask's shape is left to the run
    }
    TypeShape mask = inputs[kX];
    mask.desc.type = ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL;
    mask.desc.dims.back() = inputs[kGATE_UP].desc.dims[0];
    mask.symbols.back() = inputs[kGATE_UP].symbols[0];
    if (OrtStatus* status = writeOutput(api, context, 1, mask))
    {
        api->ReleaseStatus(status); // the node has no output 1 (BlockMask is optional)
    }
    return nullptr;
}

} // namespace

void setShapeInferenceApi(OrtApi const* api)
{
    gApi.store(api);
}

OrtStatusPtr ORT_API_CALL inferOutputTypesAndShapes(OrtCustomOp const*, OrtShapeInferContext* context)
{
    OrtApi const* api = gApi.load();
    try
    {
        return infer(api, context);
    }
    catch (std::exception const& e)
    {
        return api->CreateStatus(ORT_FAIL, (std::string("GatedSparseMLP shape inference: ") + e.what()).c_str());
    }
}

} // namespace gsmlp::ort
