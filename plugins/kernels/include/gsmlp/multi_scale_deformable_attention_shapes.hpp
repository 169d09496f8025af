/* The MultiScaleDeformableAttention op's shape rules (docs/op_spec.md), header-only C++17, shared by the
 * runtimes' bindings (the ONNX Runtime op library and the TensorRT plugin) so that both check the same things
 * and word the same message: which size, which input and dimension, which values. A dimension of -1 is unknown
 * (while an engine or a session is built) and matches anything. The level tables' values (S = sum H_l * W_l)
 * are the kernel library's to check, where they are on the host. */
#ifndef GSMLP_MULTI_SCALE_DEFORMABLE_ATTENTION_SHAPES_HPP
#define GSMLP_MULTI_SCALE_DEFORMABLE_ATTENTION_SHAPES_HPP

#include "gsmlp/shapes.hpp"

#include <cstdint>
#include <string>

namespace gsmlp::shapes::msda
{

//! Input order of the ONNX node.
enum Input : int32_t
{
    kVALUE = 0,              //!< [N, S, M, D]
    kSPATIAL_SHAPES = 1,     //!< [L, 2], int32
    kLEVEL_START_INDEX = 2,  //!< [L], int32
    kSAMPLING_LOCATIONS = 3, //!< [N, Lq, M, L, P, 2]
    kATTENTION_WEIGHTS = 4,  //!< [N, Lq, M, L, P]
    kNB_INPUTS = 5
};

inline char const* inputName(int32_t index) noexcept
{
    static char const* const kNAMES[kNB_INPUTS]
        = {"value", "spatial_shapes", "level_start_index", "sampling_locations", "attention_weights"};
    return index >= 0 && index < kNB_INPUTS ? kNAMES[index] : "(no such input)";
}

namespace detail
{

inline std::string checkRanks(Shape const* in)
{
    int32_t const expected[kNB_INPUTS] = {4, 2, 1, 6, 5};
    for (int32_t i = 0; i < kNB_INPUTS; ++i)
    {
        if (in[i].rank != expected[i])
        {
            return std::string("input ") + inputName(i) + " must have " + std::to_string(expected[i]) + " dimension"
                + (expected[i] == 1 ? "" : "s") + ", got " + toString(in[i]);
        }
    }
    return "";
}

// Every size that appears in two inputs must agree: N, M, L, Lq, P, and the two pairs (H, W) and (x, y).
inline std::string checkAgreement(Shape const* in)
{
    struct Rule
    {
        char const* what;
        int32_t a, dimA, b, dimB; // b -1: a constant, dimB
    };
    Rule const rules[] = {
        {"batch N", kVALUE, 0, kSAMPLING_LOCATIONS, 0},
        {"batch N", kVALUE, 0, kATTENTION_WEIGHTS, 0},
        {"heads M", kVALUE, 2, kSAMPLING_LOCATIONS, 2},
        {"heads M", kVALUE, 2, kATTENTION_WEIGHTS, 2},
        {"levels L", kSPATIAL_SHAPES, 0, kLEVEL_START_INDEX, 0},
        {"levels L", kSPATIAL_SHAPES, 0, kSAMPLING_LOCATIONS, 3},
        {"levels L", kSPATIAL_SHAPES, 0, kATTENTION_WEIGHTS, 3},
        {"queries Lq", kSAMPLING_LOCATIONS, 1, kATTENTION_WEIGHTS, 1},
        {"points P", kSAMPLING_LOCATIONS, 4, kATTENTION_WEIGHTS, 4},
        {"(H, W) per level", kSPATIAL_SHAPES, 1, -1, 2},
        {"(x, y) per sample", kSAMPLING_LOCATIONS, 5, -1, 2},
    };
    for (Rule const& rule : rules)
    {
        int64_t const a = in[rule.a].dims[rule.dimA];
        int64_t const b = rule.b < 0 ? rule.dimB : in[rule.b].dims[rule.dimB];
        if (known(a) && known(b) && a != b)
        {
            std::string const where = std::string(inputName(rule.a)) + ".shape[" + std::to_string(rule.dimA) + "] = "
                + std::to_string(a);
            return std::string(rule.what) + ": " + where + " but "
                + (rule.b < 0 ? "it must be " + std::to_string(b)
                              : std::string(inputName(rule.b)) + ".shape[" + std::to_string(rule.dimB)
                                  + "] = " + std::to_string(b));
        }
    }
    return "";
}

inline std::string checkSizes(Shape const* in)
{
    struct Size
    {
        char const* what;
        int32_t input, dim;
    };
    Size const sizes[] = {{"heads M", kVALUE, 2}, {"head_dim D", kVALUE, 3}, {"levels L", kSPATIAL_SHAPES, 0},
        {"points P", kSAMPLING_LOCATIONS, 4}};
    for (Size const& size : sizes)
    {
        int64_t const value = in[size.input].dims[size.dim];
        if (known(value) && value < 1)
        {
            return std::string(size.what) + " (" + inputName(size.input) + ".shape[" + std::to_string(size.dim)
                + "]) must be >= 1, got " + std::to_string(value);
        }
    }
    return "";
}

} // namespace detail

//! The 5 inputs' ranks and sizes against each other: "" or a message naming the size, inputs and dimensions at
//! fault (e.g. "heads M: value.shape[2] = 8 but sampling_locations.shape[2] = 4").
inline std::string check(Shape const (&inputs)[kNB_INPUTS])
{
    std::string error = detail::checkRanks(inputs);
    if (error.empty())
    {
        error = detail::checkAgreement(inputs);
    }
    if (error.empty())
    {
        error = detail::checkSizes(inputs);
    }
    return error;
}

//! The output's dims [N, Lq, M * D] of checked inputs; -1 where a factor is unknown.
struct OutputDims
{
    int64_t batch, queries, channels;
};

inline OutputDims outputDims(Shape const (&inputs)[kNB_INPUTS]) noexcept
{
    int64_t const m = inputs[kVALUE].dims[2], d = inputs[kVALUE].dims[3];
    return {inputs[kVALUE].dims[0], inputs[kSAMPLING_LOCATIONS].dims[1], known(m) && known(d) ? m * d : -1};
}

} // namespace gsmlp::shapes::msda

#endif // GSMLP_MULTI_SCALE_DEFORMABLE_ATTENTION_SHAPES_HPP
