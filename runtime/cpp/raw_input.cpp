#include "raw_input.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

namespace gsmlp::sample
{

bool readFile(std::string const& path, std::vector<char>& bytes)
{
    std::ifstream file(path, std::ios::binary);
    if (!file)
    {
        return false;
    }
    bytes.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
    return true;
}

bool readRawImage(Options const& options, std::vector<float>& pixels)
{
    std::vector<char> bytes;
    if (!readFile(options.input, bytes))
    {
        std::fprintf(stderr, "error: cannot read --input %s\n", options.input.c_str());
        return false;
    }
    int64_t const count = int64_t{3} * options.height * options.width;
    if (static_cast<int64_t>(bytes.size()) != count * 4)
    {
        std::fprintf(stderr,
            "error: --input %s holds %zu bytes, but float32 [1,3,%d,%d] (--height %d --width %d) is %lld bytes: "
            "give the sizes `python -m gsmlp.runtime.prepare_image` printed when it wrote the file\n",
            options.input.c_str(), bytes.size(), options.height, options.width, options.height, options.width,
            static_cast<long long>(count * 4));
        return false;
    }
    pixels.resize(static_cast<size_t>(count));
    std::memcpy(pixels.data(), bytes.data(), bytes.size());
    return true;
}

std::vector<int64_t> pixelMask(Options const& options)
{
    std::vector<int64_t> mask(static_cast<size_t>(options.height) * options.width, 0);
    for (int y = 0; y < options.validHeight; ++y)
    {
        std::fill_n(mask.begin() + static_cast<int64_t>(y) * options.width, options.validWidth, int64_t{1});
    }
    return mask;
}

} // namespace gsmlp::sample
