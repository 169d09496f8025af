/* Output types and shapes for ONNX Runtime's graph resolution: Y has X's type and shape, BlockMask is bool of
 * X's leading shape by the number of blocks. The same pass checks the inputs against each other, so a file
 * whose weights or X do not fit fails when the session is created, with a message naming the input. */
#ifndef GSMLP_ORT_GATED_SPARSE_MLP_SHAPE_INFERENCE_H
#define GSMLP_ORT_GATED_SPARSE_MLP_SHAPE_INFERENCE_H

#include "onnxruntime_c_api.h"

namespace gsmlp::ort::gated_sparse_mlp
{

OrtStatusPtr inferOutputTypesAndShapes(OrtShapeInferContext* context);

} // namespace gsmlp::ort::gated_sparse_mlp

#endif // GSMLP_ORT_GATED_SPARSE_MLP_SHAPE_INFERENCE_H
