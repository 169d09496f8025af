#include "multiScaleDeformableAttentionKernel.h"

#include "multiScaleDeformableAttentionOrtChecks.h"

#include <array>
#include <exception>
#include <memory>

namespace gsmlp::ort::msda
{
namespace
{

// One run's inputs read and checked, the output allocated, and the kernel library's view of them.
struct Binding
{
    InputDescs inputs;
    std::array<void const*, kNB_INPUTS> data{};
    void* output{nullptr};
    gsmlp_msda_problem problem{};

    gsmlp_msda_tensors tensors() const
    {
        return {data[kVALUE], static_cast<int32_t const*>(data[kSPATIAL_SHAPES]),
            static_cast<int32_t const*>(data[kLEVEL_START_INDEX]), data[kSAMPLING_LOCATIONS],
            data[kATTENTION_WEIGHTS], output};
    }
};

OrtStatus* bind(OrtApi const* api, OrtKernelContext* context, Node const& node, Binding& out)
{
    size_t count = 0;
    GSMLP_ORT_RETURN_IF_ERROR(api->KernelContext_GetInputCount(context, &count));
    if (count != kNB_INPUTS)
    {
        return nodeError(api, node,
            "expects 5 inputs (value, spatial_shapes, level_start_index, sampling_locations, attention_weights), got "
                + std::to_string(count));
    }
    for (int32_t i = 0; i < kNB_INPUTS; ++i)
    {
        OrtValue const* value = nullptr;
        GSMLP_ORT_RETURN_IF_ERROR(api->KernelContext_GetInput(context, i, &value));
        if (value == nullptr)
        {
            return nodeError(api, node, std::string("input ") + inputName(i) + " is missing (every input is required)");
        }
        GSMLP_ORT_RETURN_IF_ERROR(describeValue(api, value, out.inputs[i]));
        GSMLP_ORT_RETURN_IF_ERROR(api->GetTensorData(value, &out.data[i]));
    }
    std::string const error = checkInputs(out.inputs);
    if (!error.empty())
    {
        return nodeError(api, node, error);
    }
    out.problem = makeProblem(out.inputs);
    std::vector<int64_t> const dims = outputDims(out.inputs);
    OrtValue* output = nullptr;
    GSMLP_ORT_RETURN_IF_ERROR(api->KernelContext_GetOutput(context, 0, dims.data(), dims.size(), &output));
    return api->GetTensorMutableData(output, &out.output);
}

// What the graph says of the inputs while the session is created (-1 where unknown): a file whose inputs cannot
// fit fails then, not at its first run.
OrtStatus* checkGraphInputs(OrtApi const* api, OrtKernelInfo const* info, Node const& node)
{
    InputDescs inputs;
    for (int32_t i = 0; i < kNB_INPUTS; ++i)
    {
        GSMLP_ORT_RETURN_IF_ERROR(describeKernelInput(api, info, i, inputs[i]));
        if (inputs[i].dims.empty() || inputs[i].type == ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED)
        {
            return nullptr; // not known yet: checked at every run
        }
    }
    std::string const error = checkInputs(inputs);
    return error.empty() ? nullptr : nodeError(api, node, error);
}

// The checks both kernels make when ONNX Runtime creates them.
OrtStatus* checkNode(OrtApi const* api, OrtKernelInfo const* info, Node const& node)
{
    GSMLP_ORT_RETURN_IF_ERROR(checkPluginAttributes(api, info, node));
    return checkGraphInputs(api, info, node);
}

OrtStatus* creationError(OrtApi const* api, char const* provider, std::exception const& e)
{
    return api->CreateStatus(
        ORT_FAIL, (std::string(kOP_TYPE) + ": creating the " + provider + " kernel: " + e.what()).c_str());
}

} // namespace

MultiScaleDeformableAttentionCpuKernel::MultiScaleDeformableAttentionCpuKernel(
    OrtApi const* api, Node node, CpuThreading threading)
    : mApi(api)
    , mNode(std::move(node))
    , mThreading(threading)
{
}

OrtStatus* MultiScaleDeformableAttentionCpuKernel::create(
    OrtApi const* api, OrtKernelInfo const* info, void** kernel) noexcept
{
    try
    {
        Node const node = kernelNode(api, info, kOP_TYPE);
        GSMLP_ORT_RETURN_IF_ERROR(checkNode(api, info, node));
        CpuThreading threading;
        GSMLP_ORT_RETURN_IF_ERROR(readCpuThreading(api, info, node, threading));
        *kernel = new MultiScaleDeformableAttentionCpuKernel(api, node, threading);
        return nullptr;
    }
    catch (std::exception const& e)
    {
        return creationError(api, "CPU", e);
    }
}

OrtStatus* MultiScaleDeformableAttentionCpuKernel::compute(OrtKernelContext* context) noexcept
{
    try
    {
        Binding binding;
        GSMLP_ORT_RETURN_IF_ERROR(bind(mApi, context, mNode, binding));
        gsmlp_msda_tensors const tensors = binding.tensors();
        OrtParallel const threads(mApi, context);
        // Also for an empty output: the level tables are checked all the same.
        int const status
            = gsmlp_msda_cpu_forward(&binding.problem, &tensors, mThreading.workers, threads.hook(mThreading));
        return status == GSMLP_OK ? nullptr : kernelError(mApi, mNode, "gsmlp_msda_cpu_forward", status);
    }
    catch (std::exception const& e)
    {
        return nodeError(mApi, mNode, std::string("CPU kernel: ") + e.what(), ORT_RUNTIME_EXCEPTION);
    }
}

MultiScaleDeformableAttentionCudaKernel::MultiScaleDeformableAttentionCudaKernel(OrtApi const* api, Node node)
    : mApi(api)
    , mNode(std::move(node))
{
}

OrtStatus* MultiScaleDeformableAttentionCudaKernel::create(
    OrtApi const* api, OrtKernelInfo const* info, void** kernel) noexcept
{
    try
    {
        Node const node = kernelNode(api, info, kOP_TYPE);
        GSMLP_ORT_RETURN_IF_ERROR(checkNode(api, info, node));
        *kernel = new MultiScaleDeformableAttentionCudaKernel(api, node);
        return nullptr;
    }
    catch (std::exception const& e)
    {
        return creationError(api, "CUDA", e);
    }
}

OrtStatus* MultiScaleDeformableAttentionCudaKernel::compute(OrtKernelContext* context) noexcept
{
    try
    {
        Binding binding;
        GSMLP_ORT_RETURN_IF_ERROR(bind(mApi, context, mNode, binding));
        void* stream = nullptr;
        GSMLP_ORT_RETURN_IF_ERROR(mApi->KernelContext_GetGPUComputeStream(context, &stream));
        gsmlp_msda_tensors const tensors = binding.tensors();
        // The level tables are CPU-side inputs (inputMemoryType): checked on the host, passed by value.
        int const status = gsmlp_msda_cuda_forward_host_levels(&binding.problem, &tensors, stream);
        return status == GSMLP_OK ? nullptr : kernelError(mApi, mNode, "gsmlp_msda_cuda_forward_host_levels", status);
    }
    catch (std::exception const& e)
    {
        return nodeError(mApi, mNode, std::string("CUDA kernel: ") + e.what(), ORT_RUNTIME_EXCEPTION);
    }
}

} // namespace gsmlp::ort::msda
