/* What every op's shape rules share (header-only C++17): an input's dimensions as a runtime describes them,
 * where -1 is unknown (while an engine or a session is built) and matches anything, and their text for
 * messages. Each op's rules are in their own header (gated_sparse_mlp_shapes.hpp, ...). */
#ifndef GSMLP_SHAPES_HPP
#define GSMLP_SHAPES_HPP

#include <cstdint>
#include <string>

namespace gsmlp::shapes
{

//! One input's dimensions, as the runtime describes them (not owned).
struct Shape
{
    int32_t rank;
    int64_t const* dims;
};

inline bool known(int64_t value)
{
    return value >= 0;
}

//! "[2,100,256]", for messages.
inline std::string toString(Shape const& shape)
{
    std::string text = "[";
    for (int32_t i = 0; i < shape.rank; ++i)
    {
        text += (i == 0 ? "" : ",") + std::to_string(shape.dims[i]);
    }
    return text + "]";
}

} // namespace gsmlp::shapes

#endif // GSMLP_SHAPES_HPP
