#include "ortShapeInference.h"

#include <atomic>

namespace gsmlp::ort
{
namespace
{
std::atomic<OrtApi const*> gApi{nullptr};
std::atomic<int64_t> gUnknownDims{0};
} // namespace

void setShapeInferenceApi(OrtApi const* api)
{
    gApi.store(api);
}

OrtApi const* shapeInferenceApi()
{
    return gApi.load();
}

std::string freshDimName()
{
    return "gsmlp_dim_" + std::to_string(gUnknownDims.fetch_add(1));
}

OrtStatus* readInputTypeShape(OrtApi const* api, OrtShapeInferContext* context, size_t index, TypeShape& out)
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
            out.symbols.back() = freshDimName();
        }
    }
    return status; // `info` belongs to the context (ONNX Runtime's own C++ wrapper does not release it either)
}

OrtStatus* writeOutputTypeShape(OrtApi const* api, OrtShapeInferContext* context, size_t index, TypeShape const& shape)
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

} // namespace gsmlp::ort
