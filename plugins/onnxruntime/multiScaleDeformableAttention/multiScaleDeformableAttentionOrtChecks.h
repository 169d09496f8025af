/* Inputs of the MultiScaleDeformableAttention op as ONNX Runtime hands them over, checked against
 * docs/op_spec.md, and their translation into the kernel library's gsmlp_msda_problem. Pure functions on plain
 * descriptions: no ONNX Runtime call, so every rule is unit-testable and every message names what is wrong. */
#ifndef GSMLP_ORT_MULTI_SCALE_DEFORMABLE_ATTENTION_CHECKS_H
#define GSMLP_ORT_MULTI_SCALE_DEFORMABLE_ATTENTION_CHECKS_H

#include "common/ortUtils.h"
#include "gsmlp/multi_scale_deformable_attention.h"
#include "gsmlp/multi_scale_deformable_attention_shapes.hpp"
#include "onnxruntime_c_api.h"

#include <array>
#include <string>
#include <vector>

namespace gsmlp::ort::msda
{

constexpr char const* kOP_TYPE = "MultiScaleDeformableAttention";

//! Input order and names (docs/op_spec.md), shared with the TensorRT plugin.
using shapes::msda::inputName;
using shapes::msda::kATTENTION_WEIGHTS;
using shapes::msda::kLEVEL_START_INDEX;
using shapes::msda::kNB_INPUTS;
using shapes::msda::kSAMPLING_LOCATIONS;
using shapes::msda::kSPATIAL_SHAPES;
using shapes::msda::kVALUE;

using InputDescs = std::array<TensorDesc, kNB_INPUTS>;

//! Types (value float32/float16, the other floats alike, the level tables int32) and shapes of the 5 inputs:
//! "" or a message naming the input and the problem. Unknown dims (-1) match anything.
std::string checkInputs(InputDescs const& inputs);

//! The output's dims [N, Lq, M * D] (-1 where unknown).
std::vector<int64_t> outputDims(InputDescs const& inputs);

//! The kernel problem for fully known, checked inputs.
gsmlp_msda_problem makeProblem(InputDescs const& inputs);

} // namespace gsmlp::ort::msda

#endif // GSMLP_ORT_MULTI_SCALE_DEFORMABLE_ATTENTION_CHECKS_H
