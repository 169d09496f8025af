#include "multiScaleDeformableAttentionShapeInference.h"

#include "common/ortShapeInference.h"
#include "multiScaleDeformableAttentionOrtChecks.h"

#include <exception>
#include <string>
#include <vector>

namespace gsmlp::ort::msda
{
namespace
{

OrtStatus* fail(OrtApi const* api, std::string const& message)
{
    return api->CreateStatus(ORT_INVALID_ARGUMENT, (std::string(kOP_TYPE) + ": " + message).c_str());
}

OrtStatus* infer(OrtApi const* api, OrtShapeInferContext* context)
{
    size_t count = 0;
    GSMLP_ORT_RETURN_IF_ERROR(api->ShapeInferContext_GetInputCount(context, &count));
    if (count != kNB_INPUTS)
    {
        return fail(api,
            "expects 5 inputs (value, spatial_shapes, level_start_index, sampling_locations, attention_weights), got "
                + std::to_string(count));
    }
    std::vector<TypeShape> inputs(kNB_INPUTS);
    InputDescs descs;
    bool ranksKnown = true;
    for (int32_t i = 0; i < kNB_INPUTS; ++i)
    {
        GSMLP_ORT_RETURN_IF_ERROR(readInputTypeShape(api, context, i, inputs[i]));
        descs[i] = inputs[i].desc;
        ranksKnown = ranksKnown && !descs[i].dims.empty(); // rank 0: no shape in the graph (checked at the run)
    }
    TypeShape output;
    output.desc.type = inputs[kVALUE].desc.type;
    if (!ranksKnown)
    {
        output.desc.dims = {-1, -1, -1};
        output.symbols = {freshDimName(), freshDimName(), freshDimName()};
        return writeOutputTypeShape(api, context, 0, output);
    }
    std::string const error = checkInputs(descs);
    if (!error.empty())
    {
        return fail(api, error);
    }
    output.desc.dims = outputDims(descs);
    // N and Lq keep their names (from value and sampling_locations); M * D is a number or a new name.
    output.symbols = {inputs[kVALUE].symbols[0], inputs[kSAMPLING_LOCATIONS].symbols[1],
        output.desc.dims[2] >= 0 ? std::string() : freshDimName()};
    return writeOutputTypeShape(api, context, 0, output);
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
        return api->CreateStatus(ORT_FAIL, (std::string(kOP_TYPE) + " shape inference: " + e.what()).c_str());
    }
}

} // namespace gsmlp::ort::msda
