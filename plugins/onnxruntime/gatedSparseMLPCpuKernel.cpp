#include "gatedSparseMLPCpuKernel.h"

#include "gatedSparseMLPBinding.h"
#include "ortUtils.h"

#include <cstdlib>
#include <exception>
#include <new>
#include <thread>

namespace gsmlp::ort
{
namespace
{

// gsmlp_parallel on ONNX Runtime's intra-op thread pool: one ParallelFor iteration per kernel worker.
struct OrtThreads
{
    OrtApi const* api;
    OrtKernelContext* context;
};

struct WorkerCall
{
    gsmlp_worker_fn fn;
    void* arg;
};

void runWorker(void* data, size_t worker)
{
    auto* call = static_cast<WorkerCall*>(data);
    call->fn(call->arg, static_cast<int>(worker));
}

void runOnOrtThreads(void* context, int workers, gsmlp_worker_fn fn, void* arg)
{
    auto* threads = static_cast<OrtThreads*>(context);
    WorkerCall call{fn, arg};
    OrtStatus* status = threads->api->KernelContext_ParallelFor(
        threads->context, runWorker, static_cast<size_t>(workers), 0, &call);
    if (status != nullptr)
    {
        // The workers take jobs from one shared counter: running them here finishes whatever is left.
        threads->api->ReleaseStatus(status);
        for (int worker = 0; worker < workers; ++worker)
        {
            fn(arg, worker);
        }
    }
}

int defaultWorkers()
{
    unsigned const hardware = std::thread::hardware_concurrency();
    return hardware > 0 ? static_cast<int>(hardware) : 1;
}

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

GatedSparseMLPCpuKernel::GatedSparseMLPCpuKernel(OrtApi const* api, std::string node, Attributes attributes)
    : mApi(api)
    , mNode(std::move(node))
    , mAttributes(attributes)
{
}

OrtStatus* GatedSparseMLPCpuKernel::create(OrtApi const* api, OrtKernelInfo const* info, void** kernel) noexcept
{
    try
    {
        std::string const node = nodeName(api, info);
        Attributes attributes;
        GSMLP_ORT_RETURN_IF_ERROR(readCheckedAttributes(api, info, node, attributes));
        std::unique_ptr<GatedSparseMLPCpuKernel> created(new GatedSparseMLPCpuKernel(api, node, attributes));
        GSMLP_ORT_RETURN_IF_ERROR(created->readThreading(info));
        GSMLP_ORT_RETURN_IF_ERROR(created->packConstantWeights(info));
        *kernel = created.release();
        return nullptr;
    }
    catch (std::exception const& e)
    {
        return api->CreateStatus(ORT_FAIL, (std::string("GatedSparseMLP: creating the CPU kernel: ") + e.what()).c_str());
    }
}

OrtStatus* GatedSparseMLPCpuKernel::readThreading(OrtKernelInfo const* info)
{
    std::string const workers = configEntry(mApi, info, kCONFIG_CPU_WORKERS);
    mWorkers = defaultWorkers();
    if (!workers.empty())
    {
        char* end = nullptr;
        long const value = std::strtol(workers.c_str(), &end, 10);
        if (end == workers.c_str() || *end != '\0' || value < 1 || value > 4096)
        {
            return nodeError(mApi, mNode,
                std::string("session config entry ") + kCONFIG_CPU_WORKERS + " is \"" + workers
                    + "\"; it must be an integer in [1, 4096] (the intra-op thread count)");
        }
        mWorkers = static_cast<int>(value);
    }
    std::string const threads = configEntry(mApi, info, kCONFIG_CPU_THREADS);
    if (!threads.empty() && threads != "onnxruntime" && threads != "openmp")
    {
        return nodeError(mApi, mNode,
            std::string("session config entry ") + kCONFIG_CPU_THREADS + " is \"" + threads
                + "\"; choose onnxruntime (the default) or openmp");
    }
    mOrtThreads = threads != "openmp";
    return nullptr;
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
    std::vector<uint8_t> scratch = mScratch.take(gsmlp_cpu_scratch_size(&problem, mWorkers));
    OrtThreads threads{mApi, context};
    gsmlp_parallel const parallel{runOnOrtThreads, &threads};
    int const status = gsmlp_cpu_run_packed(&problem, &tensors, packed.data(), packed.size(), scratch.data(),
        scratch.size(), mWorkers, mOrtThreads ? &parallel : nullptr);
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

} // namespace gsmlp::ort
