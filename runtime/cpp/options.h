/* The command line both samples share (gsmlp_trt_sample, gsmlp_ort_sample): one parser, one usage text. */
#ifndef GSMLP_SAMPLE_OPTIONS_H
#define GSMLP_SAMPLE_OPTIONS_H

#include <string>

namespace gsmlp::sample
{

//! What differs between the samples: their name, the model and library flags, and their own options.
struct Runner
{
    char const* program;        // "gsmlp_ort_sample"
    char const* modelFlag;      // "--onnx"
    char const* modelHelp;      // "an ONNX file of `gsmlp export`"
    char const* libraryFlag;    // "--ops-lib"
    char const* libraryHelp;    // what the library is
    bool libraryRequired;       // TensorRT needs its plugin; ONNX Runtime can inline the function bodies
    char const* extraUsage;     // the runner's own options, one usage line each (or "")
    bool takesThreads;          // --threads N (ONNX Runtime)
    bool takesMetadata;         // --metadata FILE (TensorRT: the engine's JSON, default ENGINE.json)
};

struct Options
{
    std::string model;           // the ONNX file or the engine
    std::string library;         // the gsmlp op library or the TensorRT plugin
    std::string metadata;        // the engine's JSON (TensorRT; default: ENGINE.json)
    std::string input;           // raw float32 [1,3,H,W], as written by `python -m gsmlp.runtime.prepare_image`
    int height{0};               // the (padded) network input
    int width{0};
    int validHeight{0};          // the resized image inside it; pixel_mask is 1 there, 0 in the padding
    int validWidth{0};
    int imageHeight{0};          // the original image, for boxes in its pixels
    int imageWidth{0};
    float scoreThreshold{0.5F};
    int threads{0};              // ONNX Runtime intra-op threads; 0: its default
};

enum class Parsed
{
    kRUN,   // options complete: run
    kHELP,  // --help was printed: exit 0
    kERROR  // a mistake was printed with the usage: exit 2
};

Parsed parseOptions(int argc, char** argv, Runner const& runner, Options& options);

} // namespace gsmlp::sample

#endif // GSMLP_SAMPLE_OPTIONS_H
