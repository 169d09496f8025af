/* Inputs, attributes and outputs of the GatedSparseMLP op as ONNX Runtime hands them over, checked against
 * docs/op_spec.md, and their translation into the kernel library's gsmlp_problem. Pure functions on plain
 * descriptions: no ONNX Runtime call, so every rule is unit-testable and every message names what is wrong. */
#ifndef GSMLP_ORT_GATED_SPARSE_MLP_CHECKS_H
#define GSMLP_ORT_GATED_SPARSE_MLP_CHECKS_H

#include "gsmlp/gated_sparse_mlp.h"
#include "gsmlp/gated_sparse_mlp_shapes.hpp"
#include "common/ortUtils.h"
#include "onnxruntime_c_api.h"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace gsmlp::ort::gated_sparse_mlp
{

//! Input order of the ONNX node and the input names (docs/op_spec.md), shared with the TensorRT plugin.
using shapes::inputName;
using shapes::kB1;
using shapes::kB2;
using shapes::kGATE_BIAS;
using shapes::kGATE_DOWN;
using shapes::kGATE_UP;
using shapes::kNB_INPUTS;
using shapes::kW1;
using shapes::kW2;
using shapes::kX;
//! Y, and the optional BlockMask.
constexpr int32_t kMAX_OUTPUTS{2};

constexpr char const* kOP_TYPE = "GatedSparseMLP";

using InputDescs = std::array<TensorDesc, kNB_INPUTS>;

//! The node's attributes. blockMaskOutput is -1 where the node does not carry the attribute.
struct Attributes
{
    int64_t blockSize{0};
    float threshold{0.0F};
    int64_t blockMaskOutput{-1};
};

//! Attribute values against the contract: "" or a message naming the attribute and the value.
std::string checkAttributes(Attributes const& attributes, int64_t nodeOutputs);

//! Types and shapes of the 8 inputs against each other: "" or a message naming the input and the problem
//! (e.g. "d_model: X.shape[2] = 256 but W1.shape[1] = 128"; the shape rules are
//! gsmlp/gated_sparse_mlp_shapes.hpp). Unknown dims (-1) match anything.
std::string checkInputs(InputDescs const& inputs, int64_t blockSize);

//! Rows of X: the product of its leading dimensions (0 for an empty X).
int64_t tokenCount(std::vector<int64_t> const& x) noexcept;

//! BlockMask's shape: X's leading dimensions and the number of blocks.
std::vector<int64_t> blockMaskShape(InputDescs const& inputs);

//! The kernel problem for fully known, checked inputs.
gsmlp_problem makeProblem(InputDescs const& inputs, Attributes const& attributes);

} // namespace gsmlp::ort::gated_sparse_mlp

#endif // GSMLP_ORT_GATED_SPARSE_MLP_CHECKS_H
