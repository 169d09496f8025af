/* Output type and shape for ONNX Runtime's graph resolution: [N, Lq, M * D] of value's type. The same pass
 * checks the inputs against each other, so a file whose inputs do not fit fails when the session is created,
 * with a message naming the input and dimension. */
#ifndef GSMLP_ORT_MULTI_SCALE_DEFORMABLE_ATTENTION_SHAPE_INFERENCE_H
#define GSMLP_ORT_MULTI_SCALE_DEFORMABLE_ATTENTION_SHAPE_INFERENCE_H

#include "onnxruntime_c_api.h"

namespace gsmlp::ort::msda
{

OrtStatusPtr inferOutputTypesAndShapes(OrtShapeInferContext* context);

} // namespace gsmlp::ort::msda

#endif // GSMLP_ORT_MULTI_SCALE_DEFORMABLE_ATTENTION_SHAPE_INFERENCE_H
