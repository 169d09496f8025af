/* Inputs, shapes and types of the GatedSparseMLP plugin (docs/op_spec.md), and their translation into the
 * kernel library's gsmlp_problem. Pure functions on TensorRT descriptors: no CUDA, no TensorRT library. */
#ifndef GSMLP_TRT_GATED_SPARSE_MLP_SHAPES_H
#define GSMLP_TRT_GATED_SPARSE_MLP_SHAPES_H

#include "gatedSparseMLPFields.h"
#include "gsmlp/gated_sparse_mlp.h"

#include <NvInferRuntime.h>

#include <cstdint>
#include <string>

namespace gsmlp::trt
{

//! Input order of the ONNX node. Output 0, Y, has X's shape and type; the optional output 1, BlockMask
//! (block_mask_output = 1), is kBOOL of X's leading shape by the number of blocks.
enum InputIndex : int32_t
{
    kX = 0,
    kW1 = 1,
    kB1 = 2,
    kW2 = 3,
    kB2 = 4,
    kGATE_DOWN = 5,
    kGATE_UP = 6,
    kGATE_BIAS = 7,
    kNB_INPUTS = 8
};
constexpr int32_t kMAX_OUTPUTS{2};
constexpr int32_t kBLOCK_MASK{1}; //!< the index of output BlockMask

//! Input names as in docs/op_spec.md, for messages.
char const* inputName(int32_t index) noexcept;

//! Checks the dimensions of the 8 inputs against each other. A dimension of -1 (unknown while building)
//! matches anything. Returns "" or a message naming the input and dimension at fault.
std::string checkInputDims(nvinfer1::Dims const* dims, int32_t nbInputs, int32_t blockSize);

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

} // namespace gsmlp::trt

#endif // GSMLP_TRT_GATED_SPARSE_MLP_SHAPES_H
