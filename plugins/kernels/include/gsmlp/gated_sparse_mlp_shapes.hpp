/* The GatedSparseMLP op's shape rules (docs/op_spec.md), header-only C++17, shared by the runtimes' bindings
 * (the ONNX Runtime op library and the TensorRT plugin) so that both check the same things and word the
 * same message: which input, which dimension, which value. A dimension of -1 is unknown (while an engine or a
 * session is built) and matches anything. */
#ifndef GSMLP_GATED_SPARSE_MLP_SHAPES_HPP
#define GSMLP_GATED_SPARSE_MLP_SHAPES_HPP

#include "gsmlp/shapes.hpp"

#include <cstdint>
#include <string>

namespace gsmlp::shapes
{

//! Input order of the ONNX node.
enum Input : int32_t
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

inline char const* inputName(int32_t index) noexcept
{
    static char const* const kNAMES[kNB_INPUTS] = {"X", "W1", "B1", "W2", "B2", "GateDown", "GateUp", "GateBias"};
    return index >= 0 && index < kNB_INPUTS ? kNAMES[index] : "(no such input)";
}

namespace detail
{

inline std::string checkRanks(Shape const* in)
{
    if (in[kX].rank < 1)
    {
        return "input X must have at least 1 dimension (tokens are all leading dimensions), got " + toString(in[kX]);
    }
    int32_t const expected[kNB_INPUTS] = {-1, 2, 1, 2, 1, 2, 2, 1};
    for (int32_t i = kW1; i < kNB_INPUTS; ++i)
    {
        if (in[i].rank != expected[i])
        {
            return std::string("input ") + inputName(i) + " must have " + std::to_string(expected[i]) + " dimension"
                + (expected[i] == 1 ? "" : "s") + ", got " + toString(in[i]);
        }
    }
    return "";
}

// d_model D, hidden H, rank R and the block count must agree wherever they appear.
inline std::string checkWidths(Shape const* in)
{
    struct Rule
    {
        char const* what;
        int32_t a, dimA, b, dimB; // dimA -1: X's last dimension
    };
    Rule const rules[] = {
        {"d_model", kX, -1, kW1, 1},
        {"d_model", kX, -1, kW2, 0},
        {"d_model", kX, -1, kB2, 0},
        {"d_model", kX, -1, kGATE_DOWN, 1},
        {"hidden", kW1, 0, kB1, 0},
        {"hidden", kW1, 0, kW2, 1},
        {"gate rank", kGATE_DOWN, 0, kGATE_UP, 1},
        {"number of blocks", kGATE_UP, 0, kGATE_BIAS, 0},
    };
    for (Rule const& rule : rules)
    {
        int32_t const dimA = rule.dimA < 0 ? in[rule.a].rank - 1 : rule.dimA;
        int64_t const a = in[rule.a].dims[dimA];
        int64_t const b = in[rule.b].dims[rule.dimB];
        if (known(a) && known(b) && a != b)
        {
            return std::string(rule.what) + ": " + inputName(rule.a) + ".shape[" + std::to_string(dimA)
                + "] = " + std::to_string(a) + " but " + inputName(rule.b) + ".shape[" + std::to_string(rule.dimB)
                + "] = " + std::to_string(b);
        }
    }
    return "";
}

inline std::string checkSizes(Shape const* in, int64_t blockSize)
{
    int64_t const d = in[kX].dims[in[kX].rank - 1];
    int64_t const h = in[kW1].dims[0];
    int64_t const r = in[kGATE_DOWN].dims[0];
    int64_t const nb = in[kGATE_UP].dims[0];
    if (known(d) && d < 1)
    {
        return "d_model (X's last dimension) must be >= 1, got " + std::to_string(d);
    }
    if (known(h) && h < 1)
    {
        return "hidden (W1.shape[0]) must be >= 1, got " + std::to_string(h);
    }
    if (known(r) && r < 1)
    {
        return "gate rank (GateDown.shape[0]) must be >= 1, got " + std::to_string(r);
    }
    int64_t const expected = known(h) ? (h + blockSize - 1) / blockSize : -1;
    if (known(h) && known(nb) && nb != expected)
    {
        return "GateUp.shape[0] = " + std::to_string(nb) + " blocks, but hidden " + std::to_string(h)
            + " with block_size " + std::to_string(blockSize) + " makes ceil(" + std::to_string(h) + "/"
            + std::to_string(blockSize) + ") = " + std::to_string(expected);
    }
    return "";
}

} // namespace detail

//! The 8 inputs' ranks and widths against each other, for block_size >= 1: "" or a message naming the input
//! and dimension at fault (e.g. "d_model: X.shape[2] = 256 but W1.shape[1] = 128").
inline std::string check(Shape const (&inputs)[kNB_INPUTS], int64_t blockSize)
{
    std::string error = detail::checkRanks(inputs);
    if (error.empty())
    {
        error = detail::checkWidths(inputs);
    }
    if (error.empty())
    {
        error = detail::checkSizes(inputs, blockSize);
    }
    return error;
}

//! Rows of X: the product of its leading dimensions (0 for an empty X).
inline int64_t tokenCount(Shape const& x) noexcept
{
    int64_t tokens = 1;
    for (int32_t i = 0; i + 1 < x.rank; ++i)
    {
        tokens *= x.dims[i];
    }
    return tokens;
}

} // namespace gsmlp::shapes

#endif // GSMLP_GATED_SPARSE_MLP_SHAPES_HPP
