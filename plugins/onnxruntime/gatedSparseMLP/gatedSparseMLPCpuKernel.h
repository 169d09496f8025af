/* GatedSparseMLP on ONNX Runtime's CPU execution provider, computed by the kernel library's CPU kernel.
 *
 * The weights are initializers: they are packed once, when ONNX Runtime creates the kernel (once per session
 * and node), and every run only computes. Each run's scratch comes from a small pool, so concurrent Run calls
 * on one session share the packed weights safely. The kernel's work runs on ONNX Runtime's intra-op threads
 * (common/ortCpuThreads.h), so the two never compete for the cores. */
#ifndef GSMLP_ORT_GATED_SPARSE_MLP_CPU_KERNEL_H
#define GSMLP_ORT_GATED_SPARSE_MLP_CPU_KERNEL_H

#include "common/ortCpuThreads.h"
#include "gatedSparseMLPOrtChecks.h"
#include "onnxruntime_c_api.h"

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace gsmlp::ort::gated_sparse_mlp
{

//! Reusable byte buffers, one per concurrent run.
class ScratchPool
{
public:
    std::vector<uint8_t> take(size_t bytes);
    void give(std::vector<uint8_t> buffer);

private:
    std::mutex mMutex;
    std::vector<std::vector<uint8_t>> mFree;
};

class GatedSparseMLPCpuKernel
{
public:
    static OrtStatus* create(OrtApi const* api, OrtKernelInfo const* info, void** kernel) noexcept;
    OrtStatus* compute(OrtKernelContext* context) noexcept;

private:
    GatedSparseMLPCpuKernel(OrtApi const* api, Node node, Attributes attributes);
    OrtStatus* packConstantWeights(OrtKernelInfo const* info);
    OrtStatus* run(gsmlp_problem const& problem, gsmlp_tensors const& tensors, OrtKernelContext* context);
    bool packedFor(gsmlp_problem const& problem) const;

    OrtApi const* mApi;
    Node mNode;
    Attributes mAttributes;
    CpuThreading mThreading;
    std::vector<uint8_t> mPacked; // empty: some weight is not an initializer; packed per run instead
    gsmlp_problem mPackedProblem{};
    ScratchPool mScratch;
};

} // namespace gsmlp::ort::gated_sparse_mlp

#endif // GSMLP_ORT_GATED_SPARSE_MLP_CPU_KERNEL_H
