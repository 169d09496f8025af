/* The OrtCustomOp descriptions of GatedSparseMLP: one per execution provider, sharing everything but the
 * kernel. Identity (domain, op type, opset version) as the exporter writes it (gsmlp/op_identity.py). */
#ifndef GSMLP_ORT_GATED_SPARSE_MLP_OP_H
#define GSMLP_ORT_GATED_SPARSE_MLP_OP_H

#include "onnxruntime_c_api.h"

namespace gsmlp::ort::gated_sparse_mlp
{

//! The op for ONNX Runtime's CPU execution provider (fp32 and fp16, the CPU kernel).
OrtCustomOp const* cpuOp();
//! The op for ONNX Runtime's CUDA execution provider (the CUDA kernels, ONNX Runtime's stream).
OrtCustomOp const* cudaOp();

} // namespace gsmlp::ort::gated_sparse_mlp

#endif // GSMLP_ORT_GATED_SPARSE_MLP_OP_H
