/* The library's one entry point: ONNX Runtime calls RegisterCustomOps when a session options object loads
 * the library (Python: SessionOptions.register_custom_ops_library(path)). */
#include "common/ortShapeInference.h"
#include "common/ortUtils.h"
#include "gatedSparseMLP/gatedSparseMLPOrtOp.h"
#include "multiScaleDeformableAttention/multiScaleDeformableAttentionOrtOp.h"
#include "gsmlp/common.h"
#include "onnxruntime_c_api.h"

#include <exception>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace
{

// Every domain handed to a session must outlive it; sessions do not say when they end, so the domains live
// until the library is unloaded (one small object per registration).
struct DomainRelease
{
    OrtApi const* api;
    void operator()(OrtCustomOpDomain* domain) const
    {
        api->ReleaseCustomOpDomain(domain);
    }
};
std::mutex gDomainsMutex;
std::vector<std::unique_ptr<OrtCustomOpDomain, DomainRelease>> gDomains;

OrtStatus* tooOld(OrtApiBase const* apiBase)
{
    OrtApi const* oldest = apiBase->GetApi(1);
    std::string const message = std::string("the gsmlp op library needs ONNX Runtime C API version ")
        + std::to_string(ORT_API_VERSION) + " or newer; this ONNX Runtime is " + apiBase->GetVersionString();
    return oldest != nullptr ? oldest->CreateStatus(ORT_FAIL, message.c_str()) : nullptr;
}

OrtStatus* registerOps(OrtApi const* api, OrtSessionOptions* options)
{
    using namespace gsmlp::ort;
    setShapeInferenceApi(api);
    OrtCustomOpDomain* raw = nullptr;
    GSMLP_ORT_RETURN_IF_ERROR(api->CreateCustomOpDomain(kDOMAIN, &raw));
    std::unique_ptr<OrtCustomOpDomain, DomainRelease> domain(raw, DomainRelease{api});
    for (OrtCustomOp const* op : {gated_sparse_mlp::cpuOp(), msda::cpuOp()})
    {
        GSMLP_ORT_RETURN_IF_ERROR(api->CustomOpDomain_Add(domain.get(), op));
    }
    if (gsmlp_cuda_built())
    {
        for (OrtCustomOp const* op : {gated_sparse_mlp::cudaOp(), msda::cudaOp()})
        {
            GSMLP_ORT_RETURN_IF_ERROR(api->CustomOpDomain_Add(domain.get(), op));
        }
    }
    GSMLP_ORT_RETURN_IF_ERROR(api->AddCustomOpDomain(options, domain.get()));
    std::lock_guard<std::mutex> lock(gDomainsMutex);
    gDomains.push_back(std::move(domain));
    return nullptr;
}

} // namespace

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL RegisterCustomOps(
    OrtSessionOptions* options, OrtApiBase const* apiBase)
{
    OrtApi const* api = apiBase->GetApi(ORT_API_VERSION);
    if (api == nullptr)
    {
        return tooOld(apiBase);
    }
    try
    {
        return registerOps(api, options);
    }
    catch (std::exception const& e)
    {
        return api->CreateStatus(ORT_FAIL, (std::string("gsmlp op library: registration failed: ") + e.what()).c_str());
    }
}
