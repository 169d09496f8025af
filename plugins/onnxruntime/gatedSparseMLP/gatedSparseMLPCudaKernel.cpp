#include "gatedSparseMLPCudaKernel.h"

#include "gatedSparseMLPAttributes.h"
#include "gatedSparseMLPBinding.h"

#include <exception>
#include <memory>

namespace gsmlp::ort::gated_sparse_mlp
{

GatedSparseMLPCudaKernel::GatedSparseMLPCudaKernel(
    OrtApi const* api, Node node, Attributes attributes, OrtAllocator* allocator)
    : mApi(api)
    , mNode(std::move(node))
    , mAttributes(attributes)
    , mAllocator(allocator)
{
}

GatedSparseMLPCudaKernel::~GatedSparseMLPCudaKernel()
{
    mApi->ReleaseAllocator(mAllocator);
}

OrtStatus* GatedSparseMLPCudaKernel::create(OrtApi const* api, OrtKernelInfo const* info, void** kernel) noexcept
{
    try
    {
        Node const node = kernelNode(api, info, kOP_TYPE);
        Attributes attributes;
        GSMLP_ORT_RETURN_IF_ERROR(readCheckedAttributes(api, info, node, attributes));
        OrtAllocator* allocator = nullptr;
        GSMLP_ORT_RETURN_IF_ERROR(api->KernelInfoGetAllocator(info, OrtMemTypeDefault, &allocator));
        *kernel = new GatedSparseMLPCudaKernel(api, node, attributes, allocator);
        return nullptr;
    }
    catch (std::exception const& e)
    {
        return api->CreateStatus(ORT_FAIL, (std::string("GatedSparseMLP: creating the CUDA kernel: ") + e.what()).c_str());
    }
}

OrtStatus* GatedSparseMLPCudaKernel::compute(OrtKernelContext* context) noexcept
{
    try
    {
        Binding binding;
        GSMLP_ORT_RETURN_IF_ERROR(bind(mApi, context, mNode, mAttributes, binding));
        if (binding.problem.tokens == 0)
        {
            return nullptr; // empty X: empty outputs, no launch
        }
        void* stream = nullptr;
        GSMLP_ORT_RETURN_IF_ERROR(mApi->KernelContext_GetGPUComputeStream(context, &stream));
        size_t const bytes = gsmlp_cuda_workspace_size(&binding.problem);
        // A scratch buffer from ONNX Runtime's stream-aware arena: freed memory is reused in stream order.
        OrtMemoryInfo const* memory = mAllocator->Info(mAllocator);
        void* workspace = nullptr;
        GSMLP_ORT_RETURN_IF_ERROR(mApi->KernelContext_GetScratchBuffer(context, memory, bytes, &workspace));
        gsmlp_tensors const tensors = binding.tensors();
        int const status = gsmlp_cuda_forward(&binding.problem, &tensors, workspace, bytes, stream);
        OrtAllocator* owner = nullptr;
        GSMLP_ORT_RETURN_IF_ERROR(mApi->KernelContext_GetAllocator(context, memory, &owner));
        owner->Free(owner, workspace);
        mApi->ReleaseAllocator(owner);
        return status == GSMLP_OK ? nullptr : kernelError(mApi, mNode, "gsmlp_cuda_forward", status);
    }
    catch (std::exception const& e)
    {
        return nodeError(mApi, mNode, std::string("CUDA kernel: ") + e.what(), ORT_RUNTIME_EXCEPTION);
    }
}

} // namespace gsmlp::ort::gated_sparse_mlp
