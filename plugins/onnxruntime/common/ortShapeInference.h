/* Reading input and writing output types and shapes during ONNX Runtime's graph resolution
 * (OrtCustomOp::InferOutputShapeFn), for every op of the library. A dimension keeps its symbolic name
 * (e.g. "batch") from input to output; an unknown dimension without one gets a fresh name. */
#ifndef GSMLP_ORT_SHAPE_INFERENCE_H
#define GSMLP_ORT_SHAPE_INFERENCE_H

#include "onnxruntime_c_api.h"
#include "ortUtils.h"

#include <string>
#include <vector>

namespace gsmlp::ort
{

//! The API table the shape inference uses (InferOutputShapeFn is handed none); set at registration.
void setShapeInferenceApi(OrtApi const* api);
OrtApi const* shapeInferenceApi();

//! Type, dims (-1 unknown) and symbolic dim names ("" where a dim is known) of one input or output.
struct TypeShape
{
    TensorDesc desc;
    std::vector<std::string> symbols;
};

OrtStatus* readInputTypeShape(OrtApi const* api, OrtShapeInferContext* context, size_t index, TypeShape& out);
OrtStatus* writeOutputTypeShape(OrtApi const* api, OrtShapeInferContext* context, size_t index, TypeShape const& shape);

//! A name for an unknown dimension that none of the graph's names can clash with.
std::string freshDimName();

} // namespace gsmlp::ort

#endif // GSMLP_ORT_SHAPE_INFERENCE_H
