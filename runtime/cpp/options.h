/* Command line of gsmlp_trt_sample. */
#ifndef GSMLP_TRT_SAMPLE_OPTIONS_H
#define GSMLP_TRT_SAMPLE_OPTIONS_H

#include <string>

namespace gsmlp::sample
{

struct Options
{
    std::string pluginLib;
    std::string engine;
    std::string input;           // raw float32 [1,3,H,W], as written by `python -m gsmlp.runtime.prepare_image`
    int height{0};               // the (padded) network input
    int width{0};
    int validHeight{0};          // the resized image inside it; pixel_mask is 1 there, 0 in the padding
    int validWidth{0};
    int imageHeight{0};          // the original image, for boxes in its pixels
    int imageWidth{0};
    float scoreThreshold{0.5F};
    bool sigmoid{false};         // Deformable DETR scores classes with sigmoid, DETR with softmax + "no object"
};

//! Parses argv; on a mistake prints what is wrong and the usage, and returns false.
bool parseOptions(int argc, char** argv, Options& options);

} // namespace gsmlp::sample

#endif // GSMLP_TRT_SAMPLE_OPTIONS_H
