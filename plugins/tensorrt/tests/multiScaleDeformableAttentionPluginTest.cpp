/* What the MultiScaleDeformableAttention plugin can do without the TensorRT library or a GPU: creator identity
 * and fields (only plugin_version / plugin_namespace), serialization, format support (int32 level tables,
 * fp32/fp16 floats), output types and shapes ([N, Lq, M * D] through the expression builder), input checks,
 * an empty enqueue, and the library entry points. Run by tests/test_trt_plugin.py. */
#include "api/pluginLibrary.h"
#include "common/pluginLogger.h"
#include "gsmlp/multi_scale_deformable_attention.h"
#include "multiScaleDeformableAttentionPlugin/multiScaleDeformableAttentionFields.h"
#include "multiScaleDeformableAttentionPlugin/multiScaleDeformableAttentionPlugin.h"
#include "multiScaleDeformableAttentionPlugin/multiScaleDeformableAttentionPluginCreator.h"
#include "multiScaleDeformableAttentionPlugin/multiScaleDeformableAttentionShapes.h"
#include "pluginTestUtils.h"

#include <NvInferRuntime.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

using namespace nvinfer1;
using namespace gsmlp::trt;
using namespace gsmlp::trt::msda;
using namespace gsmlp::trt::test;

namespace
{

using Plugin = MultiScaleDeformableAttentionPlugin;
using Creator = MultiScaleDeformableAttentionPluginCreator;

// The 5 input shapes: value [N, S, M, D], spatial_shapes [L, 2], level_start_index [L],
// sampling_locations [N, Lq, M, L, P, 2], attention_weights [N, Lq, M, L, P].
std::vector<Dims> inputDims(int64_t n, int64_t s, int64_t m, int64_t d, int64_t l, int64_t q, int64_t p)
{
    return {dims({n, s, m, d}), dims({l, 2}), dims({l}), dims({n, q, m, l, p, 2}), dims({n, q, m, l, p})};
}

std::vector<PluginTensorDesc> descs(DataType floats, DataType tables = DataType::kINT32)
{
    return {tensor(floats), tensor(tables), tensor(tables), tensor(floats), tensor(floats), tensor(floats)};
}

std::unique_ptr<Plugin> create(Creator& creator, PluginFieldCollection const* fc, TensorRTPhase phase = TensorRTPhase::kBUILD)
{
    return std::unique_ptr<Plugin>(static_cast<Plugin*>(creator.createPlugin("msda0", fc, phase)));
}

void testCreatorAndFields()
{
    Creator creator;
    CHECK(std::strcmp(creator.getPluginName(), "MultiScaleDeformableAttention") == 0);
    CHECK(std::strcmp(creator.getPluginVersion(), "1") == 0);
    CHECK(std::strcmp(creator.getPluginNamespace(), "") == 0);
    CHECK(std::strcmp(creator.getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") == 0);
    CHECK(creator.getFieldNames()->nbFields == 0);

    // As the ONNX parser passes the node's two string attributes (std::string bytes, no NUL; "" has length 0).
    char const version[] = {'1'};
    std::vector<PluginField> parser = {PluginField("plugin_version", version, PluginFieldType::kCHAR, 1),
        PluginField("plugin_namespace", "", PluginFieldType::kCHAR, 0)};
    PluginFieldCollection fc{static_cast<int32_t>(parser.size()), parser.data()};
    auto plugin = create(creator, &fc);
    CHECK(plugin != nullptr);
    PluginFieldCollection const empty{0, nullptr};
    CHECK(create(creator, &empty, TensorRTPhase::kRUNTIME) != nullptr);
    CHECK(create(creator, nullptr, TensorRTPhase::kRUNTIME) != nullptr);

    int32_t const blockSize = 32;
    char const wrong[] = {'2'};
    std::vector<std::pair<PluginField, char const*>> const bad = {
        {PluginField("block_size", &blockSize, PluginFieldType::kINT32, 1), "unknown field block_size"},
        {PluginField("plugin_version", wrong, PluginFieldType::kCHAR, 1), "plugin_version is \"2\""},
        {PluginField("plugin_namespace", "gsmlp", PluginFieldType::kCHAR, 5), "plugin_namespace is \"gsmlp\""},
        {PluginField("plugin_version", &blockSize, PluginFieldType::kINT32, 1), "plugin_version must be kCHAR"},
    };
    for (auto const& [field, mention] : bad)
    {
        PluginFieldCollection one{1, &field};
        int const before = gFinder.logger.count;
        CHECK(create(creator, &one) == nullptr);
        CHECK(gFinder.logger.count == before + 1);
        CHECK(lastErrorMentions(mention) && lastErrorMentions("'msda0'")
            && lastErrorMentions("MultiScaleDeformableAttention plugin"));
        if (!lastErrorMentions(mention))
        {
            std::printf("  expected \"%s\" in: %s\n", mention, gFinder.logger.last.c_str());
        }
    }
}

void testIdentitySerializationAndClones()
{
    Plugin plugin;
    CHECK(std::strcmp(plugin.getPluginName(), "MultiScaleDeformableAttention") == 0);
    CHECK(std::strcmp(plugin.getPluginVersion(), "1") == 0 && std::strcmp(plugin.getPluginNamespace(), "") == 0);
    CHECK(plugin.getNbOutputs() == 1);
    CHECK(std::string(plugin.getTimingCacheID()) == "MultiScaleDeformableAttention_v1");
    CHECK(plugin.getFieldsToSerialize()->nbFields == 0);
    Creator creator;
    CHECK(create(creator, plugin.getFieldsToSerialize(), TensorRTPhase::kRUNTIME) != nullptr);
    std::unique_ptr<IPluginV3> cloned(plugin.clone());
    std::unique_ptr<IPluginV3> attached(plugin.attachToContext(nullptr));
    CHECK(cloned != nullptr && attached != nullptr);
    auto* core = plugin.getCapabilityInterface(PluginCapabilityType::kCORE);
    auto* build = plugin.getCapabilityInterface(PluginCapabilityType::kBUILD);
    auto* runtime = plugin.getCapabilityInterface(PluginCapabilityType::kRUNTIME);
    CHECK(core != nullptr && std::strcmp(core->getInterfaceInfo().kind, "PLUGIN_V3ONE_CORE") == 0);
    CHECK(build != nullptr && std::strcmp(build->getInterfaceInfo().kind, "PLUGIN_V3ONE_BUILD") == 0);
    CHECK(runtime != nullptr && std::strcmp(runtime->getInterfaceInfo().kind, "PLUGIN_V3ONE_RUNTIME") == 0);
    CHECK(plugin.getWorkspaceSize(nullptr, 5, nullptr, 1) == 0);
}

bool supportsAll(Plugin& plugin, std::vector<PluginTensorDesc> const& tensors)
{
    std::vector<DynamicPluginTensorDesc> inOut(tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i)
    {
        inOut[i].desc = tensors[i];
    }
    bool all = true;
    for (int32_t pos = 0; pos < 6; ++pos)
    {
        all = all && plugin.supportsFormatCombination(pos, inOut.data(), 5, 1);
    }
    return all;
}

void testFormatsAndTypes()
{
    Plugin plugin;
    CHECK(supportsAll(plugin, descs(DataType::kFLOAT)));
    CHECK(supportsAll(plugin, descs(DataType::kHALF)));
    CHECK(!supportsAll(plugin, descs(DataType::kFLOAT, DataType::kINT64))); // TensorRT's index type is INT32
    CHECK(!supportsAll(plugin, descs(DataType::kBF16)));
    std::vector<PluginTensorDesc> mixed = descs(DataType::kFLOAT);
    mixed[kATTENTION_WEIGHTS] = tensor(DataType::kHALF);
    CHECK(!supportsAll(plugin, mixed));
    std::vector<PluginTensorDesc> output = descs(DataType::kHALF);
    output[5] = tensor(DataType::kFLOAT);
    CHECK(!supportsAll(plugin, output));
    std::vector<PluginTensorDesc> hwc = descs(DataType::kHALF);
    hwc[kVALUE] = tensor(DataType::kHALF, TensorFormat::kHWC8);
    CHECK(!supportsAll(plugin, hwc));
    std::vector<DynamicPluginTensorDesc> six(6);
    CHECK(!plugin.supportsFormatCombination(6, six.data(), 5, 1));
    CHECK(!plugin.supportsFormatCombination(0, six.data(), 4, 1));

    std::vector<DataType> in = {DataType::kHALF, DataType::kINT32, DataType::kINT32, DataType::kHALF, DataType::kHALF};
    DataType out{DataType::kFLOAT};
    CHECK(plugin.getOutputDataTypes(&out, 1, in.data(), 5) == 0 && out == DataType::kHALF);
    in[kVALUE] = DataType::kINT32;
    CHECK(plugin.getOutputDataTypes(&out, 1, in.data(), 5) != 0 && lastErrorMentions("value must be fp32 or fp16"));
    CHECK(plugin.getOutputDataTypes(&out, 1, in.data(), 4) != 0 && lastErrorMentions("expects 5 inputs"));
}

// An expression builder as TensorRT's, recording the one product the plugin asks for.
class RecordingBuilder : public apiv::VExprBuilder
{
public:
    IDimensionExpr const* constant(int64_t) override
    {
        return nullptr;
    }
    IDimensionExpr const* operation(DimensionOperation op, IDimensionExpr const& first, IDimensionExpr const& second) override
    {
        ++calls;
        lastOp = op;
        a = &first;
        b = &second;
        return reinterpret_cast<IDimensionExpr const*>(&result);
    }
    IDimensionExpr const* declareSizeTensor(int32_t, IDimensionExpr const&, IDimensionExpr const&) override
    {
        return nullptr;
    }
    int calls{0};
    DimensionOperation lastOp{DimensionOperation::kSUM};
    IDimensionExpr const* a{nullptr};
    IDimensionExpr const* b{nullptr};
    int result{0};
};

class TestExprBuilder : public IExprBuilder
{
public:
    explicit TestExprBuilder(RecordingBuilder* impl)
    {
        mImpl = impl;
    }
};

void testOutputShapes()
{
    Plugin plugin;
    int cells[16] = {};
    std::vector<DimsExprs> inputs(5);
    int32_t const ranks[5] = {4, 2, 1, 6, 5};
    int next = 0;
    for (int32_t i = 0; i < 5; ++i)
    {
        inputs[i].nbDims = ranks[i];
        for (int32_t k = 0; k < ranks[i]; ++k)
        {
            inputs[i].d[k] = reinterpret_cast<IDimensionExpr const*>(&cells[next++ % 16]);
        }
    }
    RecordingBuilder impl;
    TestExprBuilder builder(&impl);
    DimsExprs output{};
    CHECK(plugin.getOutputShapes(inputs.data(), 5, nullptr, 0, &output, 1, builder) == 0);
    CHECK(output.nbDims == 3 && output.d[0] == inputs[kVALUE].d[0] && output.d[1] == inputs[kSAMPLING_LOCATIONS].d[1]);
    CHECK(impl.calls == 1 && impl.lastOp == DimensionOperation::kPROD);
    CHECK(impl.a == inputs[kVALUE].d[2] && impl.b == inputs[kVALUE].d[3]);
    CHECK(output.d[2] == reinterpret_cast<IDimensionExpr const*>(&impl.result));
    CHECK(plugin.getOutputShapes(inputs.data(), 4, nullptr, 0, &output, 1, builder) != 0);
    inputs[kVALUE].nbDims = 3;
    CHECK(plugin.getOutputShapes(inputs.data(), 5, nullptr, 0, &output, 1, builder) != 0);
    CHECK(lastErrorMentions("value must have 4 dimensions"));
}

std::vector<DynamicPluginTensorDesc> configureDescs(
    std::vector<Dims> const& network, std::vector<Dims> const& max, DataType floats, DataType tables = DataType::kINT32)
{
    std::vector<DynamicPluginTensorDesc> in = dynamicDescs(network, max, floats);
    in[kSPATIAL_SHAPES].desc.type = tables;
    in[kLEVEL_START_INDEX].desc.type = tables;
    return in;
}

void testConfigureAndShapeChecks()
{
    Plugin plugin;
    // Batch, value length and queries dynamic in the network (any image size), known in the profile.
    std::vector<Dims> network = inputDims(-1, -1, 8, 32, 4, -1, 4);
    std::vector<Dims> max = inputDims(2, 13294, 8, 32, 4, 13294, 4);
    auto in = configureDescs(network, max, DataType::kHALF);
    auto out = dynamicDescs({dims({-1, -1, 256})}, {dims({2, 13294, 256})}, DataType::kHALF);
    CHECK(plugin.configurePlugin(in.data(), 5, out.data(), 1) == 0);

    auto badHeads = inputDims(-1, -1, 8, 32, 4, -1, 4);
    badHeads[kSAMPLING_LOCATIONS] = dims({-1, -1, 4, 4, 4, 2});
    auto in2 = configureDescs(badHeads, badHeads, DataType::kFLOAT);
    auto out32 = dynamicDescs({dims({-1, -1, 256})}, {dims({2, 13294, 256})}, DataType::kFLOAT);
    CHECK(plugin.configurePlugin(in2.data(), 5, out32.data(), 1) != 0);
    CHECK(lastErrorMentions("heads M: value.shape[2] = 8 but sampling_locations.shape[2] = 4"));

    auto badLevels = network;
    badLevels[kLEVEL_START_INDEX] = dims({5});
    auto in3 = configureDescs(badLevels, badLevels, DataType::kFLOAT);
    CHECK(plugin.configurePlugin(in3.data(), 5, out32.data(), 1) != 0);
    CHECK(lastErrorMentions("levels L: spatial_shapes.shape[0] = 4 but level_start_index.shape[0] = 5"));

    auto badPair = network;
    badPair[kSPATIAL_SHAPES] = dims({4, 3});
    auto in4 = configureDescs(badPair, badPair, DataType::kFLOAT);
    CHECK(plugin.configurePlugin(in4.data(), 5, out32.data(), 1) != 0);
    CHECK(lastErrorMentions("(H, W) per level: spatial_shapes.shape[1] = 3 but it must be 2"));

    auto in5 = configureDescs(network, max, DataType::kFLOAT, DataType::kINT64);
    CHECK(plugin.configurePlugin(in5.data(), 5, out32.data(), 1) != 0);
    CHECK(lastErrorMentions("spatial_shapes must be kINT32"));

    auto in6 = configureDescs(network, max, DataType::kFLOAT);
    in6[kATTENTION_WEIGHTS].desc.type = DataType::kHALF;
    CHECK(plugin.configurePlugin(in6.data(), 5, out32.data(), 1) != 0);
    CHECK(lastErrorMentions("attention_weights has another data type than value"));
    CHECK(plugin.configurePlugin(in.data(), 4, out.data(), 1) != 0 && lastErrorMentions("expects 5 inputs"));
}

void testProblemAndEmptyEnqueue()
{
    std::vector<Dims> const shapes = inputDims(2, 13294, 8, 32, 4, 300, 4);
    gsmlp_msda_problem const problem = makeProblem(shapes.data(), DataType::kHALF);
    CHECK(problem.batch == 2 && problem.value_len == 13294 && problem.heads == 8 && problem.head_dim == 32);
    CHECK(problem.levels == 4 && problem.queries == 300 && problem.points == 4 && problem.dtype == GSMLP_FP16);

    // No queries: onShapeChange accepts it and enqueue launches nothing (null pointers are never read).
    Plugin plugin;
    std::vector<Dims> const empty = inputDims(1, 20, 2, 8, 2, 0, 3);
    std::vector<PluginTensorDesc> run = descs(DataType::kFLOAT);
    for (int32_t i = 0; i < 5; ++i)
    {
        run[i].dims = empty[i];
    }
    run[5].dims = dims({1, 0, 16});
    std::vector<void const*> pointers(5, nullptr);
    void* outputs[1] = {nullptr};
    CHECK(plugin.onShapeChange(run.data(), 5, &run[5], 1) == 0);
    CHECK(plugin.enqueue(run.data(), &run[5], pointers.data(), outputs, nullptr, nullptr) == 0);
    run[kVALUE].dims = dims({1, 20, 3, 8});
    CHECK(plugin.onShapeChange(run.data(), 5, &run[5], 1) != 0 && lastErrorMentions("heads M"));
    CHECK(plugin.enqueue(run.data(), &run[5], pointers.data(), outputs, nullptr, nullptr) != 0);
    CHECK(plugin.enqueue(nullptr, &run[5], pointers.data(), outputs, nullptr, nullptr) != 0);
}

// argv: the identity gsmlp/op_identity.py gives the op (tests/test_trt_plugin.py passes it), so that the C++
// constants cannot drift from the Python ones.
void testIdentityAgainst(int argc, char** argv)
{
    if (argc != 3)
    {
        return;
    }
    Creator creator;
    CHECK(std::string(creator.getPluginName()) == argv[1]);
    CHECK(std::string(creator.getPluginVersion()) == argv[2]);
}

void testLibraryEntryPoints()
{
    int32_t nb = 0;
    IPluginCreatorInterface* const* creators = getCreators(nb);
    CHECK(nb == 2 && creators != nullptr && creators[1] != nullptr);
    if (nb == 2 && creators != nullptr && creators[1] != nullptr)
    {
        auto* creator = static_cast<IPluginCreatorV3One*>(creators[1]);
        CHECK(std::strcmp(creator->getPluginName(), "MultiScaleDeformableAttention") == 0);
        CHECK(std::strcmp(creator->getPluginVersion(), "1") == 0);
    }
}

} // namespace

int main(int argc, char** argv)
{
    setLoggerFinder(&gFinder); // as TensorRT does on loading the library: errors reach its logger
    testIdentityAgainst(argc, argv);
    testCreatorAndFields();
    testIdentitySerializationAndClones();
    testFormatsAndTypes();
    testOutputShapes();
    testConfigureAndShapeChecks();
    testProblemAndEmptyEnqueue();
    testLibraryEntryPoints();
    std::printf("%d passed, %d failed\n", gPassed, gFailed);
    return gFailed == 0 ? 0 : 1;
}
