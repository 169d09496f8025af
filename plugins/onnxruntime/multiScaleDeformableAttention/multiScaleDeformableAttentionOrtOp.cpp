#include "multiScaleDeformableAttentionOrtOp.h"

#include "common/ortCustomOp.h"
#include "multiScaleDeformableAttentionKernel.h"
#include "multiScaleDeformableAttentionOrtChecks.h"
#include "multiScaleDeformableAttentionShapeInference.h"

namespace gsmlp::ort::msda
{
namespace
{

struct Traits
{
    static constexpr char const* kOP_TYPE = msda::kOP_TYPE;
    static constexpr size_t kNB_INPUTS = msda::kNB_INPUTS;
    static constexpr size_t kNB_OUTPUTS = 1;

    // Checked by the kernel, so that a wrong type gets a message naming the input (UNDEFINED lets ONNX
    // Runtime hand any type through to that check).
    static ONNXTensorElementDataType inputType(size_t)
    {
        return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    }
    static ONNXTensorElementDataType outputType(size_t)
    {
        return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED; // value's type (ONNX Runtime infers it)
    }
    static OrtCustomOpInputOutputCharacteristic inputCharacteristic(size_t)
    {
        return INPUT_OUTPUT_REQUIRED;
    }
    static OrtCustomOpInputOutputCharacteristic outputCharacteristic(size_t)
    {
        return INPUT_OUTPUT_REQUIRED;
    }
    // The level tables on the host for every provider: checked there, and the CUDA kernel takes them by value.
    static OrtMemType inputMemoryType(size_t index)
    {
        return index == kSPATIAL_SHAPES || index == kLEVEL_START_INDEX ? OrtMemTypeCPUInput : OrtMemTypeDefault;
    }
    static OrtStatusPtr inferShapes(OrtShapeInferContext* context)
    {
        return inferOutputTypesAndShapes(context);
    }
};

} // namespace

OrtCustomOp const* cpuOp()
{
    return CustomOp<Traits, MultiScaleDeformableAttentionCpuKernel>::get(kCPU_PROVIDER);
}

OrtCustomOp const* cudaOp()
{
    return CustomOp<Traits, MultiScaleDeformableAttentionCudaKernel>::get(kCUDA_PROVIDER);
}

} // namespace gsmlp::ort::msda
