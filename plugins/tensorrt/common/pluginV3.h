/* The scaffolding every plugin of the library shares, so that a plugin folder holds only what is its own:
 *
 *   PluginV3<Derived>        the IPluginV3 with its three capabilities in one object (as TensorRT's own V3
 *                            plugins), identity, clone and attachToContext (no per-context resources);
 *   PluginCreatorV3<Traits>  the IPluginCreatorV3One: fields parsed (and the reason logged, naming the layer
 *                            and the phase, when they are refused), then the plugin made from them.
 *
 * Derived: a final class with `static constexpr char const* kNAME` and a copy constructor.
 * Traits:  kNAME, `using Params`, `using Plugin` (constructible from Params), and
 *          `static std::string parse(PluginFieldCollection const*, Params&)` ("" or the message). */
#ifndef GSMLP_TRT_PLUGIN_V3_H
#define GSMLP_TRT_PLUGIN_V3_H

#include "pluginFields.h"
#include "pluginLogger.h"

#include <NvInferRuntime.h>

#include <exception>
#include <string>

namespace gsmlp::trt
{

template <typename Derived>
class PluginV3 : public nvinfer1::IPluginV3,
                 public nvinfer1::IPluginV3OneCore,
                 public nvinfer1::IPluginV3OneBuild,
                 public nvinfer1::IPluginV3OneRuntime
{
public:
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override
    {
        switch (type)
        {
        case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
        case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
        case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
        }
        return nullptr;
    }

    nvinfer1::IPluginV3* clone() noexcept override
    {
        try
        {
            return new Derived(static_cast<Derived const&>(*this));
        }
        catch (std::exception const& e)
        {
            logError(Derived::kNAME, std::string("clone failed: ") + e.what());
        }
        return nullptr;
    }

    char const* getPluginName() const noexcept override
    {
        return Derived::kNAME;
    }

    char const* getPluginVersion() const noexcept override
    {
        return kPLUGIN_VERSION;
    }

    char const* getPluginNamespace() const noexcept override
    {
        return kPLUGIN_NAMESPACE;
    }

    //! No per-context resources: the kernel library takes its scratch from TensorRT's workspace.
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* /*context*/) noexcept override
    {
        return clone();
    }
};

template <typename Traits>
class PluginCreatorV3 : public nvinfer1::IPluginCreatorV3One
{
public:
    //! nullptr, with the reason in the TensorRT log, when a field is missing, mistyped, out of range or unknown.
    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override
    {
        try
        {
            typename Traits::Params params{};
            std::string const error = Traits::parse(fc, params);
            if (!error.empty())
            {
                char const* const when = phase == nvinfer1::TensorRTPhase::kBUILD ? "from the ONNX node"
                                                                                   : "from the engine (deserializing)";
                logError(Traits::kNAME,
                    std::string("cannot create layer '") + (name == nullptr ? "" : name) + "' " + when + ": " + error);
                return nullptr;
            }
            return new typename Traits::Plugin(params);
        }
        catch (std::exception const& e)
        {
            logError(Traits::kNAME, std::string("createPlugin: ") + e.what());
        }
        return nullptr;
    }

    char const* getPluginName() const noexcept override
    {
        return Traits::kNAME;
    }

    char const* getPluginVersion() const noexcept override
    {
        return kPLUGIN_VERSION;
    }

    char const* getPluginNamespace() const noexcept override
    {
        return kPLUGIN_NAMESPACE;
    }
};

} // namespace gsmlp::trt

#endif // GSMLP_TRT_PLUGIN_V3_H
