/* Inputs, shapes and types of the GatedSparseMLP plugin (docs/op_spec.md), and their translation into the
 * kernel library's gsmlp_problem. Pure functions on TensorRT descriptors: no CUDA, no TensorRT library. */
#ifndef GSMLP_TRT_GATED_SPARSE_MLP_SHAPES_H
#define GSMLP_TRT_GATED_SPARSE_MLP_SHAPES_H

#include "gatedSparseMLPFields.h"
#include "gsmlp/gated_sparse_mlp.h"
#include "gsmlp/gated_sparse_mlp_shapes.hpp"

#include <NvInferRuntime.h>

#include <cstdint>
#include <string>

namespace gsmlp::trt::gated_sparse_mlp
{

//! Input order of the ONNX node and the input names (docs/op_spec.md), shared with the ONNX Runtime op
//! library. Output 0, Y, has X's shape and type; the optional output 1, BlockMask (block_mask_output = 1),
//! is kBOOL of X's leading shape by the number of blocks.
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
constexpr int32_t kMAX_OUTPUTS{2};
constexpr int32_t kBLOCK_MASK{1}; //!< the index of output BlockMask

//! Checks the dimensions of the 8 inputs against each other (gsmlp/gated_sparse_mlp_shapes.hpp). A dimension
//! of -1 (unknown while building) matches anything. Returns "" or a message naming the input and dimension.
std::string checkInputDims(nvinfer1::Dims const* dims, int32_t nbInputs, int32_t blockSize);

//! Gathers the 8 input dims from TensorRT's per-input descriptors (`dimsOf` picks the dims a caller checks:
//! the network's, the profile's max, the runtime ones) into `dims`, and checks them (checkInputDims).
//! Returns "" or a message; `descs` must hold nbInputs entries.
template <typename Desc, typename DimsOf>
std::string gatherInputDims(
    Desc const* descs, int32_t nbInputs, int32_t blockSize, DimsOf dimsOf, nvinfer1::Dims (&dims)[kNB_INPUTS])
{
    if (descs == nullptr || nbInputs != kNB_INPUTS)
    {
        return "expected " + std::to_string(kNB_INPUTS) + " input descriptors, got " + std::to_string(nbInputs);
    }
    for (int32_t i = 0; i < kNB_INPUTS; ++i)
    {
        dims[i] = dimsOf(descs[i]);
    }
    return checkInputDims(dims, nbInputs, blockSize);
}

//! fp32 or fp16: the data types the kernel library computes.
bool isSupportedType(nvinfer1::DataType type) noexcept;

//! The format/type rule: every tensor LINEAR; the inputs and Y of one type, fp32 or fp16; BlockMask kBOOL.
//! Decides for `pos` from inOut[0..pos] only, as TensorRT requires. nbOutputs is 1 or 2.
bool supportsCombination(int32_t pos, nvinfer1::PluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs);

//! Rows of X: the product of its leading dimensions (0 for an empty X).
int64_t tokenCount(nvinfer1::Dims const& x) noexcept;

//! The kernel problem for fully known input dims (call checkInputDims first).
gsmlp_problem makeProblem(nvinfer1::Dims const* dims, nvinfer1::DataType type, GatedSparseMLPParams const& params);

//! "[2,100,256]", for messages.
std::string dimsToString(nvinfer1::Dims const& dims);

} // namespace gsmlp::trt::gated_sparse_mlp

#endif // GSMLP_TRT_GATED_SPARSE_MLP_SHAPES_H
