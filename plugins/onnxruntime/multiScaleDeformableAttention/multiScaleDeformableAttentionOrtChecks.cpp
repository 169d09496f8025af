#include "multiScaleDeformableAttentionOrtChecks.h"

namespace gsmlp::ort::msda
{
namespace
{

bool isFloat(ONNXTensorElementDataType type)
{
    return type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
}

std::string checkTypes(InputDescs const& inputs)
{
    ONNXTensorElementDataType const type = inputs[kVALUE].type;
    if (!isFloat(type))
    {
        return "input value has data type " + typeName(type)
            + "; MultiScaleDeformableAttention computes float32 or float16 (export an fp32 or fp16 ONNX)";
    }
    for (int32_t i : {kSAMPLING_LOCATIONS, kATTENTION_WEIGHTS})
    {
        if (inputs[i].type != type)
        {
            return std::string("input ") + inputName(i) + " has data type " + typeName(inputs[i].type)
                + " but value has " + typeName(type) + " (the float inputs share one type)";
        }
    }
    for (int32_t i : {kSPATIAL_SHAPES, kLEVEL_START_INDEX})
    {
        if (inputs[i].type != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32)
        {
            return std::string("input ") + inputName(i) + " has data type " + typeName(inputs[i].type)
                + "; the level tables are int32 (TensorRT's index type: cast transformers' int64 tables)";
        }
    }
    return "";
}

using Shapes = shapes::Shape[kNB_INPUTS];

void shapesOf(InputDescs const& inputs, Shapes& out)
{
    for (int32_t i = 0; i < kNB_INPUTS; ++i)
    {
        out[i] = {static_cast<int32_t>(inputs[i].dims.size()), inputs[i].dims.data()};
    }
}

} // namespace

std::string checkInputs(InputDescs const& inputs)
{
    std::string const error = checkTypes(inputs);
    if (!error.empty())
    {
        return error;
    }
    Shapes shapes;
    shapesOf(inputs, shapes);
    return shapes::msda::check(shapes);
}

std::vector<int64_t> outputDims(InputDescs const& inputs)
{
    Shapes shapes;
    shapesOf(inputs, shapes);
    shapes::msda::OutputDims const out = shapes::msda::outputDims(shapes);
    return {out.batch, out.queries, out.channels};
}

gsmlp_msda_problem makeProblem(InputDescs const& inputs)
{
    std::vector<int64_t> const& value = inputs[kVALUE].dims;
    std::vector<int64_t> const& locations = inputs[kSAMPLING_LOCATIONS].dims;
    gsmlp_msda_problem problem{};
    problem.batch = value[0];
    problem.value_len = value[1];
    problem.heads = value[2];
    problem.head_dim = value[3];
    problem.levels = locations[3];
    problem.queries = locations[1];
    problem.points = locations[4];
    problem.dtype = inputs[kVALUE].type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 ? GSMLP_FP16 : GSMLP_FP32;
    return problem;
}

} // namespace gsmlp::ort::msda
