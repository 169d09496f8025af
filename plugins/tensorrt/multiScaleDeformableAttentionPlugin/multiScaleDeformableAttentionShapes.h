/* Inputs, shapes and types of the MultiScaleDeformableAttention plugin (docs/op_spec.md), and their
 * translation into the kernel library's gsmlp_msda_problem. Pure functions on TensorRT descriptors: no CUDA, no
 * TensorRT library. */
#ifndef GSMLP_TRT_MULTI_SCALE_DEFORMABLE_ATTENTION_SHAPES_H
#define GSMLP_TRT_MULTI_SCALE_DEFORMABLE_ATTENTION_SHAPES_H

#include "gsmlp/multi_scale_deformable_attention.h"
#include "gsmlp/multi_scale_deformable_attention_shapes.hpp"

#include <NvInferRuntime.h>

#include <cstdint>
#include <string>

namespace gsmlp::trt::msda
{

//! Input order and names (docs/op_spec.md), shared with the ONNX Runtime op library. Output 0 is
//! [N, Lq, M * D] of value's type.
using shapes::msda::inputName;
using shapes::msda::kATTENTION_WEIGHTS;
using shapes::msda::kLEVEL_START_INDEX;
using shapes::msda::kNB_INPUTS;
using shapes::msda::kSAMPLING_LOCATIONS;
using shapes::msda::kSPATIAL_SHAPES;
using shapes::msda::kVALUE;

//! The 5 inputs' dims against each other (gsmlp/multi_scale_deformable_attention_shapes.hpp); -1 matches
//! anything. "" or a message naming the size, the inputs and dimensions.
std::string checkInputDims(nvinfer1::Dims const* dims, int32_t nbInputs);

//! The format/type rule: every tensor LINEAR; value, sampling_locations, attention_weights and the output of
//! one type, fp32 or fp16; the level tables kINT32. Decides for `pos` from inOut[0..pos] only.
bool supportsCombination(int32_t pos, nvinfer1::PluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs);

//! The kernel problem for fully known input dims (call checkInputDims first).
gsmlp_msda_problem makeProblem(nvinfer1::Dims const* dims, nvinfer1::DataType type);

} // namespace gsmlp::trt::msda

#endif // GSMLP_TRT_MULTI_SCALE_DEFORMABLE_ATTENTION_SHAPES_H
