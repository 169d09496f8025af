/* What the GatedSparseMLP plugin can do without the TensorRT library or a GPU: creator field parsing (good
 * and bad fields), the serialization round trip, format support, output types and shapes, input checks,
 * workspace size, an empty enqueue, the optional BlockMask output, the library entry points and logging
 * through the logger finder.
 * Run by tests/test_trt_plugin.py; prints "N passed, N failed" and exits non-zero on any failure. */
#include "api/pluginLibrary.h"
#include "common/pluginLogger.h"
#include "gatedSparseMLPPlugin/gatedSparseMLPFields.h"
#include "gatedSparseMLPPlugin/gatedSparseMLPPlugin.h"
#include "gatedSparseMLPPlugin/gatedSparseMLPPluginCreator.h"
#include "gatedSparseMLPPlugin/gatedSparseMLPShapes.h"
#include "gsmlp/gated_sparse_mlp.h"
#include "pluginTestUtils.h"

#include <NvInferRuntime.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

using namespace nvinfer1;
using namespace gsmlp::trt;
using namespace gsmlp::trt::gated_sparse_mlp;
using namespace gsmlp::trt::test;

namespace
{

std::vector<Dims> inputDims(std::vector<int64_t> x, int64_t h, int64_t r, int64_t b)
{
    int64_t const dModel = x.back();
    int64_t const nb = (h + b - 1) / b;
    return {dims(x), dims({h, dModel}), dims({h}), dims({dModel, h}), dims({dModel}), dims({r, dModel}),
        dims({nb, r}), dims({nb})};
}

struct Fields
{
    int32_t blockSize{32};
    float threshold{0.25F};
    std::vector<PluginField> list;
    PluginFieldCollection fc{};

    PluginFieldCollection const* make()
    {
        fc.nbFields = static_cast<int32_t>(list.size());
        fc.fields = list.data();
        return &fc;
    }
};

std::unique_ptr<GatedSparseMLPPlugin> create(GatedSparseMLPPluginCreator& creator, PluginFieldCollection const* fc,
    TensorRTPhase phase = TensorRTPhase::kBUILD)
{
    return std::unique_ptr<GatedSparseMLPPlugin>(
        static_cast<GatedSparseMLPPlugin*>(creator.createPlugin("ffn0", fc, phase)));
}

void testCreatorIdentity()
{
    GatedSparseMLPPluginCreator creator;
    CHECK(std::strcmp(creator.getPluginName(), "GatedSparseMLP") == 0);
    CHECK(std::strcmp(creator.getPluginVersion(), "1") == 0);
    CHECK(std::strcmp(creator.getPluginNamespace(), "") == 0);
    CHECK(std::strcmp(creator.getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") == 0);
    PluginFieldCollection const* names = creator.getFieldNames();
    CHECK(names->nbFields == 3);
    CHECK(std::strcmp(names->fields[0].name, "block_size") == 0 && names->fields[0].type == PluginFieldType::kINT32);
    CHECK(std::strcmp(names->fields[1].name, "threshold") == 0 && names->fields[1].type == PluginFieldType::kFLOAT32);
    CHECK(std::strcmp(names->fields[2].name, "block_mask_output") == 0
        && names->fields[2].type == PluginFieldType::kINT32);
}

void testGoodFields()
{
    GatedSparseMLPPluginCreator creator;
    Fields f;
    f.list = {PluginField("block_size", &f.blockSize, PluginFieldType::kINT32, 1),
        PluginField("threshold", &f.threshold, PluginFieldType::kFLOAT32, 1)};
    auto plugin = create(creator, f.make());
    CHECK(plugin != nullptr);
    if (plugin)
    {
        CHECK(plugin->params().blockSize == 32);
        CHECK(plugin->params().threshold == 0.25F);
        CHECK(std::strcmp(plugin->getPluginName(), "GatedSparseMLP") == 0);
        CHECK(std::strcmp(plugin->getPluginVersion(), "1") == 0);
        CHECK(plugin->getNbOutputs() == 1);
        CHECK(std::string(plugin->getTimingCacheID()).find("block_size=32") != std::string::npos);
        CHECK(std::string(plugin->getMetadataString()) == "block_size=32 threshold=0.25");
        auto* core = plugin->getCapabilityInterface(PluginCapabilityType::kCORE);
        auto* build = plugin->getCapabilityInterface(PluginCapabilityType::kBUILD);
        auto* runtime = plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME);
        CHECK(core != nullptr && std::strcmp(core->getInterfaceInfo().kind, "PLUGIN_V3ONE_CORE") == 0);
        CHECK(build != nullptr && std::strcmp(build->getInterfaceInfo().kind, "PLUGIN_V3ONE_BUILD") == 0);
        CHECK(runtime != nullptr && std::strcmp(runtime->getInterfaceInfo().kind, "PLUGIN_V3ONE_RUNTIME") == 0);
    }
    // As the ONNX parser passes string attributes: kCHAR bytes of std::string, no NUL; "" has length 0.
    char const version[] = {'1'};
    Fields g;
    g.list = {PluginField("plugin_namespace", "", PluginFieldType::kCHAR, 0),
        PluginField("threshold", &g.threshold, PluginFieldType::kFLOAT32, 1),
        PluginField("plugin_version", version, PluginFieldType::kCHAR, 1),
        PluginField("block_size", &g.blockSize, PluginFieldType::kINT32, 1)};
    CHECK(create(creator, g.make()) != nullptr);
    // +Inf is a legitimate threshold: every block inactive, Y = B2.
    Fields h;
    h.threshold = std::numeric_limits<float>::infinity();
    h.list = {PluginField("block_size", &h.blockSize, PluginFieldType::kINT32, 1),
        PluginField("threshold", &h.threshold, PluginFieldType::kFLOAT32, 1)};
    CHECK(create(creator, h.make()) != nullptr);
}

// Each bad collection yields nullptr and an error naming the field at fault.
void expectRejected(std::vector<PluginField> list, char const* mention)
{
    GatedSparseMLPPluginCreator creator;
    Fields f;
    f.list = std::move(list);
    int const before = gFinder.logger.count;
    CHECK(create(creator, f.make()) == nullptr);
    CHECK(gFinder.logger.count == before + 1);
    CHECK(lastErrorMentions(mention));
    CHECK(lastErrorMentions("'ffn0'"));
    if (!lastErrorMentions(mention))
    {
        std::printf("  expected \"%s\" in: %s\n", mention, gFinder.logger.last.c_str());
    }
}

void testBadFields()
{
    int32_t const bs = 32;
    int32_t const zero = 0;
    int32_t const negative = -4;
    int32_t const two[] = {32, 64};
    float const thr = 0.5F;
    float const nan = std::numeric_limits<float>::quiet_NaN();
    int64_t const bs64 = 32;
    char const wrongVersion[] = {'2'};
    PluginField const goodBs("block_size", &bs, PluginFieldType::kINT32, 1);
    PluginField const goodThr("threshold", &thr, PluginFieldType::kFLOAT32, 1);

    expectRejected({goodThr}, "block_size is missing");
    expectRejected({goodBs}, "threshold is missing");
    expectRejected({PluginField("block_size", &thr, PluginFieldType::kFLOAT32, 1), goodThr}, "block_size must be kINT32");
    expectRejected({PluginField("block_size", &bs64, PluginFieldType::kINT64, 1), goodThr}, "got kINT64");
    expectRejected({PluginField("block_size", &zero, PluginFieldType::kINT32, 1), goodThr}, "block_size must be >= 1");
    expectRejected({PluginField("block_size", &negative, PluginFieldType::kINT32, 1), goodThr}, "got -4");
    expectRejected({PluginField("block_size", two, PluginFieldType::kINT32, 2), goodThr}, "must hold 1 value, got 2");
    expectRejected({PluginField("block_size", nullptr, PluginFieldType::kINT32, 1), goodThr}, "block_size has no data");
    expectRejected({goodBs, PluginField("threshold", &bs, PluginFieldType::kINT32, 1)}, "threshold must be kFLOAT32");
    expectRejected({goodBs, PluginField("threshold", &nan, PluginFieldType::kFLOAT32, 1)}, "threshold is NaN");
    expectRejected({goodBs, goodThr, goodBs}, "block_size is given twice");
    expectRejected({goodBs, goodThr, PluginField("blocksize", &bs, PluginFieldType::kINT32, 1)}, "unknown field blocksize");
    expectRejected({goodBs, goodThr, PluginField("plugin_version", wrongVersion, PluginFieldType::kCHAR, 1)},
        "plugin_version is \"2\"");
    expectRejected({goodBs, goodThr, PluginField("plugin_namespace", "gsmlp", PluginFieldType::kCHAR, 5)},
        "plugin_namespace is \"gsmlp\"");
    expectRejected({goodBs, goodThr, PluginField(nullptr, &bs, PluginFieldType::kINT32, 1)}, "field #2 has no name");

    GatedSparseMLPPluginCreator creator;
    CHECK(creator.createPlugin("ffn0", nullptr, TensorRTPhase::kBUILD) == nullptr);
    CHECK(lastErrorMentions("no field collection"));
}

void testSerializationRoundTrip()
{
    GatedSparseMLPPluginCreator creator;
    // A threshold with no short decimal form: the round trip must keep its exact bits.
    float const thresholds[] = {0.1F, -3.75F, std::nextafter(1.0F, 2.0F), -std::numeric_limits<float>::infinity()};
    int32_t const blockSizes[] = {1, 16, 37, 2048};
    for (int i = 0; i < 4; ++i)
    {
        GatedSparseMLPParams const params{blockSizes[i], thresholds[i]};
        GatedSparseMLPPlugin original(params);
        PluginFieldCollection const* serialized = original.getFieldsToSerialize();
        CHECK(serialized != nullptr && serialized->nbFields == 2);
        auto restored = create(creator, serialized, TensorRTPhase::kRUNTIME);
        CHECK(restored != nullptr);
        if (restored)
        {
            CHECK(restored->params().blockSize == params.blockSize);
            CHECK(std::memcmp(&restored->params().threshold, &params.threshold, sizeof(float)) == 0);
            CHECK(std::string(restored->getTimingCacheID()) == original.getTimingCacheID());
        }
        // A clone (and a context-attached copy) serializes its own copy of the values.
        std::unique_ptr<IPluginV3> cloned(original.clone());
        auto* clone = static_cast<GatedSparseMLPPlugin*>(cloned.get());
        CHECK(clone != nullptr);
        PluginFieldCollection const* fromClone = clone->getFieldsToSerialize();
        CHECK(fromClone->fields[0].data != serialized->fields[0].data);
        CHECK(*static_cast<int32_t const*>(fromClone->fields[0].data) == params.blockSize);
        std::unique_ptr<IPluginV3> attached(original.attachToContext(nullptr));
        CHECK(attached != nullptr);
    }
    // Different attributes must not share timing-cache entries.
    CHECK(timingCacheId({32, 0.5F}) != timingCacheId({32, std::nextafter(0.5F, 1.0F)}));
    CHECK(timingCacheId({32, 0.5F}) != timingCacheId({64, 0.5F}));
}

void testFormatCombinations()
{
    GatedSparseMLPPlugin plugin({32, 0.F});
    auto supportsAll = [&](std::vector<PluginTensorDesc> const& descs) {
        std::vector<DynamicPluginTensorDesc> inOut(descs.size());
        for (size_t i = 0; i < descs.size(); ++i)
        {
            inOut[i].desc = descs[i];
        }
        bool all = true;
        for (int32_t pos = 0; pos < 9; ++pos)
        {
            all = all && plugin.supportsFormatCombination(pos, inOut.data(), 8, 1);
        }
        return all;
    };
    std::vector<PluginTensorDesc> fp32(9, tensor(DataType::kFLOAT));
    std::vector<PluginTensorDesc> fp16(9, tensor(DataType::kHALF));
    CHECK(supportsAll(fp32));
    CHECK(supportsAll(fp16));
    std::vector<PluginTensorDesc> mixed = fp32;
    mixed[3] = tensor(DataType::kHALF);
    CHECK(!supportsAll(mixed));
    std::vector<PluginTensorDesc> outMixed = fp16;
    outMixed[8] = tensor(DataType::kFLOAT);
    CHECK(!supportsAll(outMixed));
    CHECK(!supportsAll(std::vector<PluginTensorDesc>(9, tensor(DataType::kBF16))));
    CHECK(!supportsAll(std::vector<PluginTensorDesc>(9, tensor(DataType::kINT8))));
    CHECK(!supportsAll(std::vector<PluginTensorDesc>(9, tensor(DataType::kINT32))));
    CHECK(!supportsAll(std::vector<PluginTensorDesc>(9, tensor(DataType::kHALF, TensorFormat::kHWC8))));
    std::vector<PluginTensorDesc> chw = fp32;
    chw[0] = tensor(DataType::kFLOAT, TensorFormat::kCHW32);
    CHECK(!supportsAll(chw));
    std::vector<DynamicPluginTensorDesc> nine(9);
    CHECK(!plugin.supportsFormatCombination(9, nine.data(), 8, 1));
    CHECK(!plugin.supportsFormatCombination(0, nine.data(), 7, 1));
}

void testOutputTypesAndShapes()
{
    GatedSparseMLPPlugin plugin({32, 0.F});
    std::vector<DataType> in(8, DataType::kHALF);
    DataType out{DataType::kFLOAT};
    CHECK(plugin.getOutputDataTypes(&out, 1, in.data(), 8) == 0 && out == DataType::kHALF);
    std::fill(in.begin(), in.end(), DataType::kFLOAT);
    CHECK(plugin.getOutputDataTypes(&out, 1, in.data(), 8) == 0 && out == DataType::kFLOAT);
    std::fill(in.begin(), in.end(), DataType::kINT32);
    CHECK(plugin.getOutputDataTypes(&out, 1, in.data(), 8) != 0);
    CHECK(plugin.getOutputDataTypes(&out, 1, in.data(), 7) != 0);

    // Stand-ins for TensorRT's expressions: only their identity matters here.
    int cells[3] = {};
    std::vector<DimsExprs> inputs(8);
    inputs[0].nbDims = 3;
    for (int i = 0; i < 3; ++i)
    {
        inputs[0].d[i] = reinterpret_cast<IDimensionExpr const*>(&cells[i]);
    }
    DimsExprs output{};
    UnusedExprBuilder builder;
    CHECK(plugin.getOutputShapes(inputs.data(), 8, nullptr, 0, &output, 1, builder) == 0);
    CHECK(output.nbDims == 3);
    CHECK(output.d[0] == inputs[0].d[0] && output.d[1] == inputs[0].d[1] && output.d[2] == inputs[0].d[2]);
    CHECK(plugin.getOutputShapes(inputs.data(), 7, nullptr, 0, &output, 1, builder) != 0);
}

void testConfigureAndShapeChecks()
{
    GatedSparseMLPPlugin plugin({32, 0.F});
    // Batch and tokens dynamic in the network, known in the profile; weights static.
    std::vector<Dims> network = inputDims({-1, -1, 256}, 1000, 16, 32);
    std::vector<Dims> profileMax = inputDims({2, 850, 256}, 1000, 16, 32);
    auto in = dynamicDescs(network, profileMax, DataType::kFLOAT);
    auto out = dynamicDescs({network[0]}, {profileMax[0]}, DataType::kFLOAT);
    CHECK(plugin.configurePlugin(in.data(), 8, out.data(), 1) == 0);

    auto badW1 = inputDims({-1, -1, 256}, 1000, 16, 32);
    badW1[kW1] = dims({1000, 128});
    auto in2 = dynamicDescs(badW1, badW1, DataType::kFLOAT);
    CHECK(plugin.configurePlugin(in2.data(), 8, out.data(), 1) != 0);
    CHECK(lastErrorMentions("d_model: X.shape[2] = 256 but W1.shape[1] = 128"));

    // hidden 1000 with block 32 has 32 blocks (the last one partial); 31 is wrong.
    auto badBlocks = network;
    badBlocks[kGATE_UP] = dims({31, 16});
    badBlocks[kGATE_BIAS] = dims({31});
    auto in3 = dynamicDescs(badBlocks, badBlocks, DataType::kFLOAT);
    CHECK(plugin.configurePlugin(in3.data(), 8, out.data(), 1) != 0);
    CHECK(lastErrorMentions("ceil(1000/32) = 32"));

    auto badRank = network;
    badRank[kB1] = dims({1000, 1});
    auto in4 = dynamicDescs(badRank, badRank, DataType::kFLOAT);
    CHECK(plugin.configurePlugin(in4.data(), 8, out.data(), 1) != 0);
    CHECK(lastErrorMentions("input B1 must have 1 dimension"));

    auto in5 = dynamicDescs(network, profileMax, DataType::kFLOAT);
    in5[kGATE_BIAS].desc.type = DataType::kHALF;
    CHECK(plugin.configurePlugin(in5.data(), 8, out.data(), 1) != 0);
    CHECK(lastErrorMentions("GateBias has another data type"));

    CHECK(plugin.configurePlugin(in.data(), 7, out.data(), 1) != 0);
    CHECK(lastErrorMentions("expects 8 inputs"));

    // A 2-D X and a 4-D X are fine: tokens are all leading dimensions.
    std::vector<Dims> twoD = inputDims({100, 64}, 256, 8, 64);
    CHECK(checkInputDims(twoD.data(), 8, 64).empty());
    std::vector<Dims> fourD = inputDims({2, 3, 5, 64}, 256, 8, 64);
    CHECK(checkInputDims(fourD.data(), 8, 64).empty());
    CHECK(tokenCount(fourD[kX]) == 30);
    CHECK(tokenCount(dims({64})) == 1);
    CHECK(tokenCount(dims({0, 7, 64})) == 0);
}

void testProblemAndWorkspace()
{
    GatedSparseMLPParams const params{64, 0.125F};
    std::vector<Dims> maxDims = inputDims({2, 850, 256}, 2048, 16, 64);
    gsmlp_problem const problem = makeProblem(maxDims.data(), DataType::kHALF, params);
    CHECK(problem.tokens == 1700);
    CHECK(problem.d_model == 256);
    CHECK(problem.hidden == 2048);
    CHECK(problem.rank == 16);
    CHECK(problem.block_size == 64);
    CHECK(problem.threshold == 0.125F);
    CHECK(problem.dtype == GSMLP_FP16);

    GatedSparseMLPPlugin plugin(params);
    std::vector<Dims> network = inputDims({-1, -1, 256}, 2048, 16, 64);
    auto in = dynamicDescs(network, maxDims, DataType::kHALF);
    auto out = dynamicDescs({network[0]}, {maxDims[0]}, DataType::kHALF);
    // The workspace is the library's figure for the profile's largest problem, not one of our own.
    CHECK(plugin.getWorkspaceSize(in.data(), 8, out.data(), 1) == gsmlp_cuda_workspace_size(&problem));
    gsmlp_problem fp32Problem = problem;
    fp32Problem.dtype = GSMLP_FP32;
    auto in32 = dynamicDescs(network, maxDims, DataType::kFLOAT);
    CHECK(plugin.getWorkspaceSize(in32.data(), 8, out.data(), 1) == gsmlp_cuda_workspace_size(&fp32Problem));
    CHECK(plugin.getWorkspaceSize(in.data(), 7, out.data(), 1) == 0);
}

void testEnqueueWithoutWork()
{
    GatedSparseMLPPlugin plugin({32, 0.F});
    std::vector<Dims> shapes = inputDims({0, 100, 64}, 128, 4, 32);
    std::vector<PluginTensorDesc> in(8, tensor(DataType::kFLOAT));
    for (int i = 0; i < 8; ++i)
    {
        in[i].dims = shapes[i];
    }
    PluginTensorDesc out = in[0];
    std::vector<void const*> pointers(8, nullptr);
    void* outputs[1] = {nullptr};
    CHECK(plugin.onShapeChange(in.data(), 8, &out, 1) == 0);
    // An empty batch launches nothing, so it runs without a GPU and returns success.
    CHECK(plugin.enqueue(in.data(), &out, pointers.data(), outputs, nullptr, nullptr) == 0);
    // Inconsistent shapes are refused before anything reaches the kernel library.
    in[kB2].dims = dims({63});
    CHECK(plugin.onShapeChange(in.data(), 8, &out, 1) != 0);
    CHECK(plugin.enqueue(in.data(), &out, pointers.data(), outputs, nullptr, nullptr) != 0);
    CHECK(lastErrorMentions("enqueue: d_model: X.shape[2] = 64 but B2.shape[0] = 63"));
}

// block_mask_output = 1: a second output, BlockMask (kBOOL, X's leading shape by the number of blocks).
void testBlockMaskOutput()
{
    GatedSparseMLPPluginCreator creator;
    int32_t const one = 1;
    int32_t const two = 2;
    float const half = 0.5F;
    Fields f;
    f.list = {PluginField("block_size", &f.blockSize, PluginFieldType::kINT32, 1),
        PluginField("threshold", &f.threshold, PluginFieldType::kFLOAT32, 1),
        PluginField("block_mask_output", &one, PluginFieldType::kINT32, 1)};
    auto plugin = create(creator, f.make());
    CHECK(plugin != nullptr);
    if (!plugin)
    {
        return;
    }
    CHECK(plugin->params().blockMaskOutput == 1);
    CHECK(plugin->getNbOutputs() == 2);
    CHECK(std::string(plugin->getMetadataString()) == "block_size=32 threshold=0.25 block_mask_output=1");
    CHECK(std::string(plugin->getTimingCacheID()).find("_block_mask_output=1") != std::string::npos);
    CHECK(timingCacheId({32, 0.5F, 1}) != timingCacheId({32, 0.5F, 0}));

    PluginFieldCollection const* serialized = plugin->getFieldsToSerialize();
    CHECK(serialized->nbFields == 3);
    auto restored = create(creator, serialized, TensorRTPhase::kRUNTIME);
    CHECK(restored != nullptr && restored->params().blockMaskOutput == 1 && restored->getNbOutputs() == 2);

    PluginField const goodBs("block_size", &f.blockSize, PluginFieldType::kINT32, 1);
    PluginField const goodThr("threshold", &f.threshold, PluginFieldType::kFLOAT32, 1);
    expectRejected({goodBs, goodThr, PluginField("block_mask_output", &two, PluginFieldType::kINT32, 1)},
        "block_mask_output must be 0 or 1, got 2");
    expectRejected({goodBs, goodThr, PluginField("block_mask_output", &half, PluginFieldType::kFLOAT32, 1)},
        "block_mask_output must be kINT32");
    expectRejected({goodBs, goodThr, PluginField("block_mask_output", &one, PluginFieldType::kINT32, 1),
                       PluginField("block_mask_output", &one, PluginFieldType::kINT32, 1)},
        "block_mask_output is given twice");

    // Types: Y follows X, BlockMask is kBOOL; a one-output plugin refuses two outputs.
    std::vector<DataType> in(8, DataType::kHALF);
    DataType out[2] = {DataType::kFLOAT, DataType::kFLOAT};
    CHECK(plugin->getOutputDataTypes(out, 2, in.data(), 8) == 0 && out[0] == DataType::kHALF
        && out[1] == DataType::kBOOL);
    CHECK(plugin->getOutputDataTypes(out, 1, in.data(), 8) != 0);
    GatedSparseMLPPlugin single({32, 0.F});
    CHECK(single.getOutputDataTypes(out, 2, in.data(), 8) != 0);

    // Shapes: BlockMask keeps X's leading expressions and ends in GateUp's rows.
    int cells[4] = {};
    std::vector<DimsExprs> inputs(8);
    inputs[kX].nbDims = 3;
    for (int i = 0; i < 3; ++i)
    {
        inputs[kX].d[i] = reinterpret_cast<IDimensionExpr const*>(&cells[i]);
    }
    inputs[kGATE_UP].nbDims = 2;
    inputs[kGATE_UP].d[0] = reinterpret_cast<IDimensionExpr const*>(&cells[3]);
    DimsExprs outputs[2]{};
    UnusedExprBuilder builder;
    CHECK(plugin->getOutputShapes(inputs.data(), 8, nullptr, 0, outputs, 2, builder) == 0);
    CHECK(outputs[1].nbDims == 3 && outputs[1].d[0] == inputs[kX].d[0] && outputs[1].d[1] == inputs[kX].d[1]);
    CHECK(outputs[1].d[2] == inputs[kGATE_UP].d[0] && outputs[0].d[2] == inputs[kX].d[2]);

    // Formats: the ninth tensor (BlockMask) must be kBOOL.
    std::vector<DynamicPluginTensorDesc> inOut(10);
    for (int i = 0; i < 9; ++i)
    {
        inOut[i].desc = tensor(DataType::kFLOAT);
    }
    inOut[9].desc = tensor(DataType::kBOOL);
    bool all = true;
    for (int32_t pos = 0; pos < 10; ++pos)
    {
        all = all && plugin->supportsFormatCombination(pos, inOut.data(), 8, 2);
    }
    CHECK(all);
    inOut[9].desc = tensor(DataType::kFLOAT);
    CHECK(!plugin->supportsFormatCombination(9, inOut.data(), 8, 2));
    CHECK(!single.supportsFormatCombination(0, inOut.data(), 8, 2));

    // Configure: Y and a kBOOL BlockMask of X's leading shape by 32 blocks.
    std::vector<Dims> network = inputDims({-1, -1, 256}, 1000, 16, 32);
    auto inDescs = dynamicDescs(network, inputDims({2, 850, 256}, 1000, 16, 32), DataType::kFLOAT);
    auto outDescs = dynamicDescs({network[0], dims({-1, -1, 32})}, {dims({2, 850, 256}), dims({2, 850, 32})},
        DataType::kFLOAT);
    outDescs[1].desc.type = DataType::kBOOL;
    CHECK(plugin->configurePlugin(inDescs.data(), 8, outDescs.data(), 2) == 0);
    CHECK(plugin->configurePlugin(inDescs.data(), 8, outDescs.data(), 1) != 0);
    CHECK(lastErrorMentions("2 outputs (Y, BlockMask)"));
    outDescs[1].desc.type = DataType::kINT8;
    CHECK(plugin->configurePlugin(inDescs.data(), 8, outDescs.data(), 2) != 0);
    CHECK(lastErrorMentions("BlockMask must be kBOOL"));

    // An empty X enqueues nothing, with both outputs.
    std::vector<Dims> empty = inputDims({0, 100, 64}, 128, 4, 32);
    std::vector<PluginTensorDesc> runIn(8, tensor(DataType::kFLOAT));
    for (int i = 0; i < 8; ++i)
    {
        runIn[i].dims = empty[i];
    }
    PluginTensorDesc runOut[2] = {runIn[0], tensor(DataType::kBOOL)};
    runOut[1].dims = dims({0, 100, 4});
    std::vector<void const*> pointers(8, nullptr);
    void* outputPointers[2] = {nullptr, nullptr};
    CHECK(plugin->onShapeChange(runIn.data(), 8, runOut, 2) == 0);
    CHECK(plugin->enqueue(runIn.data(), runOut, pointers.data(), outputPointers, nullptr, nullptr) == 0);
}

void testLibraryEntryPoints()
{
    int32_t nb = 0;
    IPluginCreatorInterface* const* creators = getCreators(nb);
    CHECK(nb == 2); // GatedSparseMLP first, then MultiScaleDeformableAttention (its own test)
    CHECK(creators != nullptr && creators[0] != nullptr);
    if (creators != nullptr && creators[0] != nullptr)
    {
        CHECK(std::strcmp(creators[0]->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") == 0);
        auto* creator = static_cast<IPluginCreatorV3One*>(creators[0]);
        CHECK(std::strcmp(creator->getPluginName(), "GatedSparseMLP") == 0);
    }
    int32_t again = 0;
    CHECK(getCreators(again) == creators); // The same creator every time: TensorRT keeps the pointer.
}

} // namespace

int main()
{
    // As TensorRT does on loading the library: errors reach its logger, not stderr.
    setLoggerFinder(&gFinder);
    testCreatorIdentity();
    testGoodFields();
    testBadFields();
    testSerializationRoundTrip();
    testFormatCombinations();
    testOutputTypesAndShapes();
    testConfigureAndShapeChecks();
    testProblemAndWorkspace();
    testEnqueueWithoutWork();
    testBlockMaskOutput();
    testLibraryEntryPoints();
    std::printf("%d passed, %d failed\n", gPassed, gFailed);
    return gFailed == 0 ? 0 : 1;
}
