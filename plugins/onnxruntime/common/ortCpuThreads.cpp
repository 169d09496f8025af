#include "ortCpuThreads.h"

#include <cstdlib>
#include <string>
#include <thread>

namespace gsmlp::ort
{
namespace
{

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

int defaultWorkers()
{
    unsigned const hardware = std::thread::hardware_concurrency();
    return hardware > 0 ? static_cast<int>(hardware) : 1;
}

} // namespace

OrtStatus* readCpuThreading(OrtApi const* api, OrtKernelInfo const* info, Node const& node, CpuThreading& out)
{
    std::string const workers = configEntry(api, info, kCONFIG_CPU_WORKERS);
    out.workers = defaultWorkers();
    if (!workers.empty())
    {
        char* end = nullptr;
        long const value = std::strtol(workers.c_str(), &end, 10);
        if (end == workers.c_str() || *end != '\0' || value < 1 || value > 4096)
        {
            return nodeError(api, node,
                std::string("session config entry ") + kCONFIG_CPU_WORKERS + " is \"" + workers
                    + "\"; it must be an integer in [1, 4096] (the intra-op thread count)");
        }
        out.workers = static_cast<int>(value);
    }
    std::string const threads = configEntry(api, info, kCONFIG_CPU_THREADS);
    if (!threads.empty() && threads != "onnxruntime" && threads != "openmp")
    {
        return nodeError(api, node,
            std::string("session config entry ") + kCONFIG_CPU_THREADS + " is \"" + threads
                + "\"; choose onnxruntime (the default) or openmp");
    }
    out.ortThreads = threads != "openmp";
    return nullptr;
}

OrtParallel::OrtParallel(OrtApi const* api, OrtKernelContext* context) noexcept
    : mApi(api)
    , mContext(context)
    , mParallel{&OrtParallel::run, this}
{
}

// One ParallelFor iteration per kernel worker.
void OrtParallel::run(void* self, int workers, gsmlp_worker_fn fn, void* arg)
{
    auto const* threads = static_cast<OrtParallel const*>(self);
    WorkerCall call{fn, arg};
    OrtStatus* status
        = threads->mApi->KernelContext_ParallelFor(threads->mContext, runWorker, static_cast<size_t>(workers), 0, &call);
    if (status != nullptr)
    {
        // The workers take jobs from one shared counter: running them here finishes whatever is left.
        threads->mApi->ReleaseStatus(status);
        for (int worker = 0; worker < workers; ++worker)
        {
            fn(arg, worker);
        }
    }
}

} // namespace gsmlp::ort
