/* Where the CPU kernels of every op run: on ONNX Runtime's intra-op threads (KernelContext_ParallelFor,
 * through the kernel library's gsmlp_parallel hook), so that the kernel library and ONNX Runtime never keep
 * two pools spinning for the same cores. Two session config entries tune it, read when a kernel is created. */
#ifndef GSMLP_ORT_CPU_THREADS_H
#define GSMLP_ORT_CPU_THREADS_H

#include "gsmlp/common.h"
#include "onnxruntime_c_api.h"
#include "ortUtils.h"

namespace gsmlp::ort
{

//! Session config entries (OrtSessionOptions' AddConfigEntry).
constexpr char const* kCONFIG_CPU_WORKERS = "gsmlp.cpu_workers"; // workers; default: the hardware threads
constexpr char const* kCONFIG_CPU_THREADS = "gsmlp.cpu_threads"; // "onnxruntime" (default) or "openmp"

struct CpuThreading
{
    int workers{1};
    bool ortThreads{true}; //!< false: the kernel library's own OpenMP team (a measurement mode only)
};

//! Reads both config entries; a bad value is an error naming the entry and the value.
OrtStatus* readCpuThreading(OrtApi const* api, OrtKernelInfo const* info, Node const& node, CpuThreading& out);

//! One run's gsmlp_parallel on the intra-op pool of `context`.
class OrtParallel
{
public:
    OrtParallel(OrtApi const* api, OrtKernelContext* context) noexcept;
    OrtParallel(OrtParallel const&) = delete;
    OrtParallel& operator=(OrtParallel const&) = delete;

    //! The hook to hand the kernel library: ONNX Runtime's threads, or nullptr (OpenMP) where `threading` says so.
    gsmlp_parallel const* hook(CpuThreading const& threading) const noexcept
    {
        return threading.ortThreads ? &mParallel : nullptr;
    }

private:
    static void run(void* self, int workers, gsmlp_worker_fn fn, void* arg);

    OrtApi const* mApi;
    OrtKernelContext* mContext;
    gsmlp_parallel mParallel;
};

} // namespace gsmlp::ort

#endif // GSMLP_ORT_CPU_THREADS_H
