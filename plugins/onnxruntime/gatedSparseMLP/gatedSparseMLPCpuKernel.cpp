#include "gatedSparseMLPCpuKernel.h"

#include "gatedSparseMLPAttributes.h"
#include "gatedSparseMLPBinding.h"

#include <exception>

namespace gsmlp::ort::gated_sparse_mlp
{
namespace
{

// Weights of the problem with `tensors`, packed into a fresh buffer (single-threaded: packing happens once).
int packWeights(gsmlp_problem const& problem, gsmlp_tensors const& tensors, std::vector<uint8_t>& packed)
{
    packed.assign(gsmlp_cpu_packed_size(&problem), 0);
    return gsmlp_cpu_pack_weights(&problem, &tensors, packed.data(), packed.size(), 1);
}

} // namespace

std::vector<uint8_t> ScratchPool::take(size_t bytes)
{
    std::lock_guard<std::mutex> lock(mMutex);
    for (auto it = mFree.begin(); it != mFree.end(); ++it)
    {
        if (it->size() >= bytes)
        {
            std::vector<uint8_t> buffer = std::move(*it);
            mFree.erase(it);
            return buffer;
        }
    }
    return std::vector<uint8_t>(bytes);
}

void ScratchPool::give(std::vector<uint8_t> buffer)
{
    std::lock_guard<std::mutex> lock(mMutex);
    mFree.push_back(std::move(buffer));
}

GatedSparseMLPCpuKernel::GatedSparseMLPCpuKernel(OrtApi const* api, Node node, Attributes attributes)
    : mApi(api)
    , mNode(std::move(node))
    , mAttributes(attributes)
{
}

OrtStatus* GatedSparseMLPCpuKernel::create(OrtApi const* api, OrtKernelInfo const* info, void** kernel) noexcept
{
    try
    {
        Node const node = kernelNode(api, info, kOP_TYPE);
        Attributes attributes;
        GSMLP_ORT_RETURN_IF_ERROR(readCheckedAttributes(api, info, node, attributes));
        std::unique_ptr<GatedSparseMLPCpuKernel> created(new GatedSparseMLPCpuKernel(api, node, attributes));
        GSMLP_ORT_RETURN_IF_ERROR(readCpuThreading(api, info, node, created->mThreading));
        GSMLP_ORT_RETURN_IF_ERROR(created->packConstantWeights(info));
        *kernel = created.release();
        return nullptr;
    }
    catch (std::exception const& e)
    {
        return api->CreateStatus(ORT_FAIL, (std::string("GatedSparseMLP: creating the CPU kernel: ") + e.what()).c_str());
    }
}

OrtStatus* GatedSparseMLPCpuKernel::packConstantWeights(OrtKernelInfo const* info)
{
    Binding binding;
    GSMLP_ORT_RETURN_IF_ERROR(describeKernelInput(mApi, info, kX, binding.inputs[kX]));
    TensorDesc& x = binding.inputs[kX];
    if (x.dims.empty())
    {
        x.dims = {-1, -1}; // rank not known yet: checked at every run
    }
    for (int32_t i = kW1; i < kNB_INPUTS; ++i)
    {
        int isConstant = 0;
        OrtValue const* value = nullptr;
        GSMLP_ORT_RETURN_IF_ERROR(mApi->KernelInfoGetConstantInput_tensor(info, i, &isConstant, &value));
        if (!isConstant || value == nullptr)
        {
            return nullptr; // not an initializer: the weights are packed at every run instead
        }
        GSMLP_ORT_RETURN_IF_ERROR(describeValue(mApi, value, binding.inputs[i]));
        GSMLP_ORT_RETURN_IF_ERROR(mApi->GetTensorData(value, &binding.data[i]));
    }
    if (x.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED)
    {
        x.type = binding.inputs[kW1].type; // not inferred yet: checked at every run
    }
    // X's shape may be unknown here (-1): the checks compare what is known now, and again at every run.
    std::string const error = checkInputs(binding.inputs, mAttributes.blockSize);
    if (!error.empty())
    {
        return nodeError(mApi, mNode, error);
    }
    binding.problem = makeProblem(binding.inputs, mAttributes);
    binding.problem.tokens = 0; // packing does not depend on the token count
    binding.problem.d_model = binding.inputs[kW1].dims[1];
    if (int const status = packWeights(binding.problem, binding.tensors(), mPacked); status != GSMLP_OK)
    {
        return kernelError(mApi, mNode, "gsmlp_cpu_pack_weights", status);
    }
    mPackedProblem = binding.problem;
    return nullptr;
}

bool GatedSparseMLPCpuKernel::packedFor(gsmlp_problem const& problem) const
{
    gsmlp_problem const& p = mPackedProblem;
    return !mPacked.empty() && p.d_model == problem.d_model && p.hidden == problem.hidden
        && p.block_size == problem.block_size && p.rank == problem.rank && p.dtype == problem.dtype;
}

OrtStatus* GatedSparseMLPCpuKernel::run(
    gsmlp_problem const& problem, gsmlp_tensors const& tensors, OrtKernelContext* context)
{
    std::vector<uint8_t> perRun;
    if (!packedFor(problem))
    {
        if (int const status = packWeights(problem, tensors, perRun); status != GSMLP_OK)
        {
            return kernelError(mApi, mNode, "gsmlp_cpu_pack_weights", status);
        }
    }
    std::vector<uint8_t> const& packed = perRun.empty() ? mPacked : perRun;
    std::vector<uint8_t> scratch = mScratch.take(gsmlp_cpu_scratch_size(&problem, mThreading.workers));
    OrtParallel const threads(mApi, context);
    int const status = gsmlp_cpu_run_packed(&problem, &tensors, packed.data(), packed.size(), scratch.data(),
        scratch.size(), mThreading.workers, threads.hook(mThreading));
    mScratch.give(std::move(scratch));
    return status == GSMLP_OK ? nullptr : kernelError(mApi, mNode, "gsmlp_cpu_run_packed", status);
}

OrtStatus* GatedSparseMLPCpuKernel::compute(OrtKernelContext* context) noexcept
{
    try
    {
        Binding binding;
        GSMLP_ORT_RETURN_IF_ERROR(bind(mApi, context, mNode, mAttributes, binding));
        if (binding.problem.tokens == 0)
        {
            return nullptr; // empty X: empty outputs, no kernel work
        }
        return run(binding.problem, binding.tensors(), context);
    }
    catch (std::exception const& e)
    {
        return nodeError(mApi, mNode, std::string("CPU kernel: ") + e.what(), ORT_RUNTIME_EXCEPTION);
    }
}

} // namespace gsmlp::ort::gated_sparse_mlp
