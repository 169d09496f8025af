/* The raw input file of `python -m gsmlp.runtime.prepare_image`, checked against the size it must have. */
#ifndef GSMLP_SAMPLE_RAW_INPUT_H
#define GSMLP_SAMPLE_RAW_INPUT_H

#include "options.h"

#include <cstdint>
#include <string>
#include <vector>

namespace gsmlp::sample
{

//! Reads the whole file. False (with a message on stderr) when it cannot be read.
bool readFile(std::string const& path, std::vector<char>& bytes);

//! The float32 [1,3,H,W] image of options.input; false (message on stderr) when its size is not that.
bool readRawImage(Options const& options, std::vector<float>& pixels);

//! pixel_mask [1,H,W] as 0/1 values: 1 on the valid (resized) region, 0 on the padding.
std::vector<int64_t> pixelMask(Options const& options);

} // namespace gsmlp::sample

#endif // GSMLP_SAMPLE_RAW_INPUT_H
