#include "options.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace gsmlp::sample
{
namespace
{

void printUsage(Runner const& runner, std::FILE* to)
{
    std::fprintf(to,
        "usage: %s %s FILE --input RAW --height H --width W %s%s LIB%s\n"
        "       [--valid-height h --valid-width w] [--image-height H0 --image-width W0] [--score 0.5]\n"
        "%s"
        "  FILE    %s; its gsmlp metadata says how to decode the outputs (family, activation, labels)\n"
        "  LIB     %s\n"
        "  RAW     float32 [1,3,H,W] from `python -m gsmlp.runtime.prepare_image IMAGE RAW --model FILE`, which\n"
        "          prints this command line with every size (valid: the resized image inside the padding;\n"
        "          image: the original, whose pixels the boxes are printed in)\n"
        "  --score keep detections scoring at least this, in [0, 1], among the 100 best (default 0.5)\n"
        "Prints one line per detection: query, label, score, box [x0, y0, x1, y1], label name.\n",
        runner.program, runner.modelFlag, runner.libraryRequired ? "" : "[", runner.libraryFlag,
        runner.libraryRequired ? "" : "]", runner.extraUsage, runner.modelHelp, runner.libraryHelp);
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

bool parseScore(char const* text, float& value)
{
    char* end = nullptr;
    value = std::strtof(text, &end);
    return end != text && *end == '\0' && std::isfinite(value) && value >= 0.F && value <= 1.F;
}

// One flag and its value; false for an unknown flag or a bad value (both printed).
bool parseFlag(std::string const& flag, char const* value, Runner const& runner, Options& options, bool& known)
{
    known = true;
    std::string* text = flag == runner.modelFlag ? &options.model
        : flag == runner.libraryFlag             ? &options.library
        : flag == "--input"                      ? &options.input
        : (flag == "--metadata" && runner.takesMetadata) ? &options.metadata
                                                         : nullptr;
    if (text != nullptr)
    {
        *text = value;
        return true;
    }
    int* number = flag == "--height"                 ? &options.height
        : flag == "--width"                          ? &options.width
        : flag == "--valid-height"                   ? &options.validHeight
        : flag == "--valid-width"                    ? &options.validWidth
        : flag == "--image-height"                   ? &options.imageHeight
        : flag == "--image-width"                    ? &options.imageWidth
        : (flag == "--threads" && runner.takesThreads) ? &options.threads
                                                       : nullptr;
    if (number != nullptr)
    {
        return parseInt(value, *number);
    }
    if (flag == "--score")
    {
        return parseScore(value, options.scoreThreshold);
    }
    known = false;
    return false;
}

bool complete(Runner const& runner, Options& options)
{
    if (options.model.empty() || options.input.empty() || options.height == 0 || options.width == 0
        || (runner.libraryRequired && options.library.empty()))
    {
        std::fprintf(stderr, "error: %s, %s--input, --height and --width are required\n", runner.modelFlag,
            runner.libraryRequired ? (std::string(runner.libraryFlag) + ", ").c_str() : "");
        return false;
    }
    // Unpadded input by default; boxes in the pixels of the valid region unless the original size is given.
    options.validHeight = options.validHeight == 0 ? options.height : options.validHeight;
    options.validWidth = options.validWidth == 0 ? options.width : options.validWidth;
    options.imageHeight = options.imageHeight == 0 ? options.validHeight : options.imageHeight;
    options.imageWidth = options.imageWidth == 0 ? options.validWidth : options.imageWidth;
    if (options.validHeight > options.height || options.validWidth > options.width)
    {
        std::fprintf(stderr, "error: the valid region %dx%d must fit in --height x --width (%dx%d)\n",
            options.validHeight, options.validWidth, options.height, options.width);
        return false;
    }
    if (runner.takesMetadata && options.metadata.empty())
    {
        options.metadata = options.model + ".json";
    }
    return true;
}

} // namespace

Parsed parseOptions(int argc, char** argv, Runner const& runner, Options& options)
{
    for (int i = 1; i < argc; ++i)
    {
        std::string const flag = argv[i];
        if (flag == "-h" || flag == "--help")
        {
            printUsage(runner, stdout);
            return Parsed::kHELP;
        }
        if (i + 1 >= argc)
        {
            std::fprintf(stderr, "error: %s needs a value\n", flag.c_str());
            printUsage(runner, stderr);
            return Parsed::kERROR;
        }
        char const* value = argv[++i];
        bool known = false;
        if (!parseFlag(flag, value, runner, options, known))
        {
            if (known)
            {
                std::fprintf(stderr, "error: bad value for %s: %s (expected %s)\n", flag.c_str(), value,
                    flag == "--score" ? "a number in [0, 1]" : "a whole number from 1 to 100000");
            }
            else
            {
                std::fprintf(stderr, "error: unknown option %s\n", flag.c_str());
                printUsage(runner, stderr);
            }
            return Parsed::kERROR;
        }
    }
    if (!complete(runner, options))
    {
        printUsage(runner, stderr);
        return Parsed::kERROR;
    }
    return Parsed::kRUN;
}

} // namespace gsmlp::sample
