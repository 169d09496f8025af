/* The OrtCustomOp descriptions of MultiScaleDeformableAttention: one per execution provider. Identity (domain,
 * op type, opset version) as the exporter writes it (gsmlp/op_identity.py). */
#ifndef GSMLP_ORT_MULTI_SCALE_DEFORMABLE_ATTENTION_OP_H
#define GSMLP_ORT_MULTI_SCALE_DEFORMABLE_ATTENTION_OP_H

#include "onnxruntime_c_api.h"

namespace gsmlp::ort::msda
{

//! The op for ONNX Runtime's CPU execution provider (fp32 and fp16, the CPU kernel).
OrtCustomOp const* cpuOp();
//! The op for ONNX Runtime's CUDA execution provider (the CUDA kernel, ONNX Runtime's stream).
OrtCustomOp const* cudaOp();

} // namespace gsmlp::ort::msda

#endif // GSMLP_ORT_MULTI_SCALE_DEFORMABLE_ATTENTION_OP_H
