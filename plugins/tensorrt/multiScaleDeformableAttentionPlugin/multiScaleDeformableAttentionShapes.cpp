#include "multiScaleDeformableAttentionShapes.h"

namespace gsmlp::trt::msda
{

using nvinfer1::DataType;
using nvinfer1::Dims;

std::string checkInputDims(Dims const* dims, int32_t nbInputs)
{
    if (dims == nullptr || nbInputs != kNB_INPUTS)
    {
        return "expects 5 inputs (value, spatial_shapes, level_start_index, sampling_locations, attention_weights), got "
            + std::to_string(nbInputs);
    }
    shapes::Shape inputs[kNB_INPUTS];
    for (int32_t i = 0; i < kNB_INPUTS; ++i)
    {
        inputs[i] = {dims[i].nbDims, dims[i].d};
    }
    return shapes::msda::check(inputs);
}

bool supportsCombination(int32_t pos, nvinfer1::PluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs)
{
    if (inOut == nullptr || nbInputs != kNB_INPUTS || nbOutputs != 1 || pos < 0 || pos >= nbInputs + nbOutputs)
    {
        return false;
    }
    nvinfer1::PluginTensorDesc const& desc = inOut[pos];
    if (desc.format != nvinfer1::TensorFormat::kLINEAR)
    {
        return false;
    }
    if (pos == kSPATIAL_SHAPES || pos == kLEVEL_START_INDEX)
    {
        return desc.type == DataType::kINT32;
    }
    // value decides the float type; the other float tensors and the output follow it.
    return pos == kVALUE ? desc.type == DataType::kFLOAT || desc.type == DataType::kHALF : desc.type == inOut[kVALUE].type;
}

gsmlp_msda_problem makeProblem(Dims const* dims, DataType type)
{
    gsmlp_msda_problem problem{};
    problem.batch = dims[kVALUE].d[0];
    problem.value_len = dims[kVALUE].d[1];
    problem.heads = dims[kVALUE].d[2];
    problem.head_dim = dims[kVALUE].d[3];
    problem.levels = dims[kSAMPLING_LOCATIONS].d[3];
    problem.queries = dims[kSAMPLING_LOCATIONS].d[1];
    problem.points = dims[kSAMPLING_LOCATIONS].d[4];
    problem.dtype = type == DataType::kHALF ? GSMLP_FP16 : GSMLP_FP32;
    return problem;
}

} // namespace gsmlp::trt::msda
