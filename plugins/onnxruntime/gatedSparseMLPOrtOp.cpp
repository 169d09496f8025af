#include "gatedSparseMLPOrtOp.h"

#include "gatedSparseMLPCpuKernel.h"
#include "gatedSparseMLPCudaKernel.h"
#include "gatedSparseMLPShapeInference.h"

namespace gsmlp::ort
{
namespace
{

// OrtCustomOp first, so that ONNX Runtime's `op` pointer is also the definition (standard layout).
struct OpDefinition
{
    OrtCustomOp op;
    char const* provider;
};

char const* ORT_API_CALL name(OrtCustomOp const*)
{
    return kOP_TYPE;
}

char const* ORT_API_CALL provider(OrtCustomOp const* op)
{
    return reinterpret_cast<OpDefinition const*>(op)->provider;
}

// Every input is of one type T (float32 or float16), checked by the kernel so that a wrong type gets a
// message naming the input; UNDEFINED lets ONNX Runtime hand any type through to that check.
ONNXTensorElementDataType ORT_API_CALL inputType(OrtCustomOp const*, size_t)
{
    return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
}

size_t ORT_API_CALL inputCount(OrtCustomOp const*)
{
    return kNB_INPUTS;
}

// Y has X's type (ONNX Runtime infers it from the inputs); BlockMask is bool.
ONNXTensorElementDataType ORT_API_CALL outputType(OrtCustomOp const*, size_t index)
{
    return index == 1 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL : ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
}

size_t ORT_API_CALL outputCount(OrtCustomOp const*)
{
    return kMAX_OUTPUTS;
}

OrtCustomOpInputOutputCharacteristic ORT_API_CALL inputCharacteristic(OrtCustomOp const*, size_t)
{
    return INPUT_OUTPUT_REQUIRED;
}

OrtCustomOpInputOutputCharacteristic ORT_API_CALL outputCharacteristic(OrtCustomOp const*, size_t index)
{
    return index == 1 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
}

OrtMemType ORT_API_CALL inputMemoryType(OrtCustomOp const*, size_t)
{
    return OrtMemTypeDefault;
}

int ORT_API_CALL notVariadic(OrtCustomOp const*)
{
    return 1;
}

int ORT_API_CALL domainVersion(OrtCustomOp const*)
{
    return kDOMAIN_VERSION;
}

template <typename Kernel>
OrtStatusPtr ORT_API_CALL createKernel(OrtCustomOp const*, OrtApi const* api, OrtKernelInfo const* info, void** kernel)
{
    return Kernel::create(api, info, kernel);
}

template <typename Kernel>
OrtStatusPtr ORT_API_CALL computeKernel(void* kernel, OrtKernelContext* context)
{
    return static_cast<Kernel*>(kernel)->compute(context);
}

template <typename Kernel>
void ORT_API_CALL destroyKernel(void* kernel)
{
    delete static_cast<Kernel*>(kernel);
}

template <typename Kernel>
OpDefinition makeOp(char const* executionProvider)
{
    OpDefinition definition{};
    OrtCustomOp& op = definition.op;
    op.version = ORT_API_VERSION;
    op.GetName = name;
    op.GetExecutionProviderType = provider;
    op.GetInputType = inputType;
    op.GetInputTypeCount = inputCount;
    op.GetOutputType = outputType;
    op.GetOutputTypeCount = outputCount;
    op.KernelDestroy = destroyKernel<Kernel>;
    op.GetInputCharacteristic = inputCharacteristic;
    op.GetOutputCharacteristic = outputCharacteristic;
    op.GetInputMemoryType = inputMemoryType;
    op.GetVariadicInputMinArity = notVariadic;
    op.GetVariadicInputHomogeneity = notVariadic;
    op.GetVariadicOutputMinArity = notVariadic;
    op.GetVariadicOutputHomogeneity = notVariadic;
    op.CreateKernelV2 = createKernel<Kernel>;
    op.KernelComputeV2 = computeKernel<Kernel>;
    op.InferOutputShapeFn = inferOutputTypesAndShapes;
    op.GetStartVersion = domainVersion;
    op.GetEndVersion = domainVersion;
    definition.provider = executionProvider;
    return definition;
}

} // namespace

OrtCustomOp const* cpuOp()
{
    static OpDefinition const definition = makeOp<GatedSparseMLPCpuKernel>("CPUExecutionProvider");
    return &definition.op;
}

OrtCustomOp const* cudaOp()
{
    static OpDefinition const definition = makeOp<GatedSparseMLPCudaKernel>("CUDAExecutionProvider");
    return &definition.op;
}

} // namespace gsmlp::ort
