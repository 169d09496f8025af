#include "options.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace gsmlp::sample
{
namespace
{

void printUsage()
{
    std::fprintf(stderr,
        "usage: gsmlp_trt_sample --plugin LIB --engine ENGINE --input RAW --height H --width W\n"
        "                        [--valid-height h --valid-width w] [--image-height H0 --image-width W0]\n"
        "                        [--score 0.5] [--activation softmax|sigmoid]\n"
        "  LIB     libgsmlp_trt_plugin.so (loaded with IPluginRegistry::loadLibrary)\n"
        "  ENGINE  an engine from `gsmlp build`\n"
        "  RAW     float32 [1,3,H,W] from `python -m gsmlp.runtime.prepare_image IMAGE RAW`, which prints\n"
        "          every size option (valid: the resized image inside the padding; image: the original)\n"
        "  --activation softmax for DETR (default), sigmoid for Deformable DETR\n");
}

bool parseInt(char const* text, int& value)
{
    char* end = nullptr;
    long const parsed = std::strtol(text, &end, 10);
    if (end == text || *end != '\0' || parsed < 1 || parsed > 100000)
    {
        return false;
    }
    value = static_cast<int>(parsed);
    return true;
}

} // namespace

bool parseOptions(int argc, char** argv, Options& options)
{
    for (int i = 1; i < argc; ++i)
    {
        std::string const flag = argv[i];
        if (flag == "-h" || flag == "--help")
        {
            printUsage();
            return false;
        }
        if (i + 1 >= argc)
        {
            std::fprintf(stderr, "error: %s needs a value\n", flag.c_str());
            printUsage();
            return false;
        }
        char const* value = argv[++i];
        bool ok = true;
        if (flag == "--plugin")
        {
            options.pluginLib = value;
        }
        else if (flag == "--engine")
        {
            options.engine = value;
        }
        else if (flag == "--input")
        {
            options.input = value;
        }
        else if (flag == "--height")
        {
            ok = parseInt(value, options.height);
        }
        else if (flag == "--width")
        {
            ok = parseInt(value, options.width);
        }
        else if (flag == "--valid-height")
        {
            ok = parseInt(value, options.validHeight);
        }
        else if (flag == "--valid-width")
        {
            ok = parseInt(value, options.validWidth);
        }
        else if (flag == "--image-height")
        {
            ok = parseInt(value, options.imageHeight);
        }
        else if (flag == "--image-width")
        {
            ok = parseInt(value, options.imageWidth);
        }
        else if (flag == "--score")
        {
            char* end = nullptr;
            options.scoreThreshold = std::strtof(value, &end);
            ok = end != value && *end == '\0';
        }
        else if (flag == "--activation")
        {
            ok = std::strcmp(value, "softmax") == 0 || std::strcmp(value, "sigmoid") == 0;
            options.sigmoid = std::strcmp(value, "sigmoid") == 0;
        }
        else
        {
            std::fprintf(stderr, "error: unknown option %s\n", flag.c_str());
            printUsage();
            return false;
        }
        if (!ok)
        {
            std::fprintf(stderr, "error: bad value for %s: %s\n", flag.c_str(), value);
            return false;
        }
    }
    if (options.pluginLib.empty() || options.engine.empty() || options.input.empty() || options.height == 0
        || options.width == 0)
    {
        std::fprintf(stderr, "error: --plugin, --engine, --input, --height and --width are required\n");
        printUsage();
        return false;
    }
    // Unpadded input by default; boxes in the pixels of the valid region unless the original size is given.
    options.validHeight = options.validHeight == 0 ? options.height : options.validHeight;
    options.validWidth = options.validWidth == 0 ? options.width : options.validWidth;
    options.imageHeight = options.imageHeight == 0 ? options.validHeight : options.imageHeight;
    options.imageWidth = options.imageWidth == 0 ? options.validWidth : options.imageWidth;
    if (options.validHeight > options.height || options.validWidth > options.width)
    {
        std::fprintf(stderr, "error: the valid region must fit in --height x --width\n");
        return false;
    }
    return true;
}

} // namespace gsmlp::sample
