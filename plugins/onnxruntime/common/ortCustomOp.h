/* The OrtCustomOp description of one op on one execution provider, made from the op's traits and its kernel
 * class, so that every op of the library describes itself to ONNX Runtime the same way.
 *
 * Traits: static members
 *   char const* kOP_TYPE;  size_t kNB_INPUTS, kNB_OUTPUTS;
 *   ONNXTensorElementDataType inputType(size_t), outputType(size_t);
 *   OrtCustomOpInputOutputCharacteristic inputCharacteristic(size_t), outputCharacteristic(size_t);
 *   OrtMemType inputMemoryType(size_t);
 *   OrtStatusPtr inferShapes(OrtShapeInferContext*);
 * Kernel: static OrtStatus* create(OrtApi const*, OrtKernelInfo const*, void** kernel) noexcept and
 *   OrtStatus* compute(OrtKernelContext*) noexcept. */
#ifndef GSMLP_ORT_CUSTOM_OP_H
#define GSMLP_ORT_CUSTOM_OP_H

#include "onnxruntime_c_api.h"
#include "ortUtils.h"

namespace gsmlp::ort
{

constexpr char const* kCPU_PROVIDER = "CPUExecutionProvider";
constexpr char const* kCUDA_PROVIDER = "CUDAExecutionProvider";

template <typename Traits, typename Kernel>
class CustomOp
{
public:
    //! One description per (op, kernel), alive as long as the library is loaded.
    static OrtCustomOp const* get(char const* provider)
    {
        static Definition const definition = make(provider);
        return &definition.op;
    }

private:
    // OrtCustomOp first, so that ONNX Runtime's `op` pointer is also the definition (standard layout).
    struct Definition
    {
        OrtCustomOp op;
        char const* provider;
    };

    static char const* ORT_API_CALL name(OrtCustomOp const*)
    {
        return Traits::kOP_TYPE;
    }
    static char const* ORT_API_CALL provider(OrtCustomOp const* op)
    {
        return reinterpret_cast<Definition const*>(op)->provider;
    }
    static ONNXTensorElementDataType ORT_API_CALL inputType(OrtCustomOp const*, size_t index)
    {
        return Traits::inputType(index);
    }
    static size_t ORT_API_CALL inputCount(OrtCustomOp const*)
    {
        return Traits::kNB_INPUTS;
    }
    static ONNXTensorElementDataType ORT_API_CALL outputType(OrtCustomOp const*, size_t index)
    {
        return Traits::outputType(index);
    }
    static size_t ORT_API_CALL outputCount(OrtCustomOp const*)
    {
        return Traits::kNB_OUTPUTS;
    }
    static OrtCustomOpInputOutputCharacteristic ORT_API_CALL inputCharacteristic(OrtCustomOp const*, size_t index)
    {
        return Traits::inputCharacteristic(index);
    }
    static OrtCustomOpInputOutputCharacteristic ORT_API_CALL outputCharacteristic(OrtCustomOp const*, size_t index)
    {
        return Traits::outputCharacteristic(index);
    }
    static OrtMemType ORT_API_CALL inputMemoryType(OrtCustomOp const*, size_t index)
    {
        return Traits::inputMemoryType(index);
    }
    static int ORT_API_CALL notVariadic(OrtCustomOp const*)
    {
        return 1;
    }
    static int ORT_API_CALL domainVersion(OrtCustomOp const*)
    {
        return kDOMAIN_VERSION;
    }
    static OrtStatusPtr ORT_API_CALL inferShapes(OrtCustomOp const*, OrtShapeInferContext* context)
    {
        return Traits::inferShapes(context);
    }
    static OrtStatusPtr ORT_API_CALL createKernel(
        OrtCustomOp const*, OrtApi const* api, OrtKernelInfo const* info, void** kernel)
    {
        return Kernel::create(api, info, kernel);
    }
    static OrtStatusPtr ORT_API_CALL computeKernel(void* kernel, OrtKernelContext* context)
    {
        return static_cast<Kernel*>(kernel)->compute(context);
    }
    static void ORT_API_CALL destroyKernel(void* kernel)
    {
        delete static_cast<Kernel*>(kernel);
    }

    static Definition make(char const* executionProvider)
    {
        Definition definition{};
        OrtCustomOp& op = definition.op;
        op.version = ORT_API_VERSION;
        op.GetName = name;
        op.GetExecutionProviderType = provider;
        op.GetInputType = inputType;
        op.GetInputTypeCount = inputCount;
        op.GetOutputType = outputType;
        op.GetOutputTypeCount = outputCount;
        op.KernelDestroy = destroyKernel;
        op.GetInputCharacteristic = inputCharacteristic;
        op.GetOutputCharacteristic = outputCharacteristic;
        op.GetInputMemoryType = inputMemoryType;
        op.GetVariadicInputMinArity = notVariadic;
        op.GetVariadicInputHomogeneity = notVariadic;
        op.GetVariadicOutputMinArity = notVariadic;
        op.GetVariadicOutputHomogeneity = notVariadic;
        op.CreateKernelV2 = createKernel;
        op.KernelComputeV2 = computeKernel;
        op.InferOutputShapeFn = inferShapes;
        op.GetStartVersion = domainVersion;
        op.GetEndVersion = domainVersion;
        definition.provider = executionProvider;
        return definition;
    }
};

} // namespace gsmlp::ort

#endif // GSMLP_ORT_CUSTOM_OP_H
