/* gsmlp_engine_metadata: print what gsmlp_trt_sample reads from an engine's JSON, or why it refuses it.
 *   gsmlp_engine_metadata ENGINE.json
 * Needs no TensorRT: it is how the sample's metadata path is tested on machines without one. */
#include "metadata.h"

#include <cstdio>
#include <string>

int main(int argc, char** argv)
{
    if (argc != 2)
    {
        std::fprintf(stderr, "usage: gsmlp_engine_metadata ENGINE.json\n");
        return 2;
    }
    std::string const path = argv[1];
    gsmlp::sample::MetadataProps props;
    gsmlp::sample::ModelMetadata metadata;
    std::string error;
    if (!gsmlp::sample::readEngineMetadataProps(path, props, error)
        || !gsmlp::sample::readMetadata(props, path, metadata, error))
    {
        std::fprintf(stderr, "error: %s\n", error.c_str());
        return 1;
    }
    std::printf("family %s\nmode %s\ndtype %s\ngsmlp %s\nactivation %s\n", metadata.family.c_str(),
        metadata.mode.c_str(), metadata.dtype.c_str(), metadata.gsmlpVersion.c_str(),
        metadata.activation == gsmlp::sample::Activation::kSIGMOID ? "sigmoid" : "softmax");
    for (size_t i = 0; i < metadata.labels.size(); ++i)
    {
        std::printf("label %zu %s\n", i, metadata.labelName(static_cast<int64_t>(i)).c_str());
    }
    return 0;
}
