#include "gatedSparseMLPOrtOp.h"

#include "common/ortCustomOp.h"
#include "gatedSparseMLPCpuKernel.h"
#include "gatedSparseMLPCudaKernel.h"
#include "gatedSparseMLPShapeInference.h"

namespace gsmlp::ort::gated_sparse_mlp
{
namespace
{

struct Traits
{
    static constexpr char const* kOP_TYPE = gated_sparse_mlp::kOP_TYPE;
    static constexpr size_t kNB_INPUTS = gated_sparse_mlp::kNB_INPUTS;
    static constexpr size_t kNB_OUTPUTS = kMAX_OUTPUTS;

    // Every input is of one type T (float32 or float16), checked by the kernel so that a wrong type gets a
    // message naming the input; UNDEFINED lets ONNX Runtime hand any type through to that check.
    static ONNXTensorElementDataType inputType(size_t)
    {
        return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    }
    // Y has X's type (ONNX Runtime infers it from the inputs); BlockMask is bool.
    static ONNXTensorElementDataType outputType(size_t index)
    {
        return index == 1 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL : ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    }
    static OrtCustomOpInputOutputCharacteristic inputCharacteristic(size_t)
    {
        return INPUT_OUTPUT_REQUIRED;
    }
    static OrtCustomOpInputOutputCharacteristic outputCharacteristic(size_t index)
    {
        return index == 1 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
    }
    static OrtMemType inputMemoryType(size_t)
    {
        return OrtMemTypeDefault;
    }
    static OrtStatusPtr inferShapes(OrtShapeInferContext* context)
    {
        return inferOutputTypesAndShapes(context);
    }
};

} // namespace

OrtCustomOp const* cpuOp()
{
    return CustomOp<Traits, GatedSparseMLPCpuKernel>::get(kCPU_PROVIDER);
}

OrtCustomOp const* cudaOp()
{
    return CustomOp<Traits, GatedSparseMLPCudaKernel>::get(kCUDA_PROVIDER);
}

} // namespace gsmlp::ort::gated_sparse_mlp
