#include "detections.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace gsmlp::sample
{
namespace
{

struct Candidate
{
    float score;
    int64_t label;
    int64_t query;
};

std::vector<Candidate> candidates(float const* logits, int64_t queries, int64_t classes, Activation activation)
{
    std::vector<Candidate> all;
    for (int64_t q = 0; q < queries; ++q)
    {
        float const* row = logits + q * classes;
        if (activation == Activation::kSIGMOID)
        {
            for (int64_t c = 0; c < classes; ++c)
            {
                all.push_back({1.F / (1.F + std::exp(-row[c])), c, q});
            }
            continue;
        }
        // Softmax over every class including "no object", shifted by the max for stability.
        float const top = *std::max_element(row, row + classes);
        float sum = 0.F;
        for (int64_t c = 0; c < classes; ++c)
        {
            sum += std::exp(row[c] - top);
        }
        int64_t best = 0;
        for (int64_t c = 1; c < classes - 1; ++c)
        {
            best = row[c] > row[best] ? c : best;
        }
        all.push_back({std::exp(row[best] - top) / sum, best, q});
    }
    return all;
}

} // namespace

std::vector<Detection> decodeDetections(float const* logits, float const* boxes, int64_t queries, int64_t classes,
    Activation activation, float scoreThreshold, int height, int width)
{
    std::vector<Candidate> all = candidates(logits, queries, classes, activation);
    // Stable: equal scores keep (query, class) order, as numpy's stable argsort does in gsmlp.model.decoding.
    std::stable_sort(all.begin(), all.end(), [](Candidate const& a, Candidate const& b) { return a.score > b.score; });
    all.resize(std::min<size_t>(all.size(), static_cast<size_t>(kTOP_K)));
    std::vector<Detection> detections;
    float const w = static_cast<float>(width);
    float const h = static_cast<float>(height);
    for (Candidate const& c : all)
    {
        if (c.score < scoreThreshold)
        {
            continue;
        }
        float const* b = boxes + c.query * 4;
        float const halfW = 0.5F * b[2];
        float const halfH = 0.5F * b[3];
        detections.push_back({c.query, c.label, c.score, {(b[0] - halfW) * w, (b[1] - halfH) * h,
                                                             (b[0] + halfW) * w, (b[1] + halfH) * h}});
    }
    return detections;
}

void printModel(std::string const& path, ModelMetadata const& metadata, std::string const& ranOn)
{
    std::printf("model: %s (%s, %s, %s; exported by gsmlp %s); GatedSparseMLP ran on: %s\n", path.c_str(),
        metadata.family.c_str(), metadata.mode.c_str(), metadata.dtype.c_str(), metadata.gsmlpVersion.c_str(),
        metadata.mode == "dense" ? "none (dense file)" : ranOn.c_str());
}

void printDetections(std::vector<Detection> const& detections, ModelMetadata const& metadata, float scoreThreshold,
    int imageHeight, int imageWidth)
{
    std::printf("%zu detections with score >= %.2f (boxes in pixels of the %dx%d image)\n", detections.size(),
        static_cast<double>(scoreThreshold), imageWidth, imageHeight);
    // %.9g prints every float exactly: a caller comparing with another runtime sees no rounding of ours.
    for (Detection const& d : detections)
    {
        std::printf("query %3lld  label %3lld  score %.9g  box [%.9g, %.9g, %.9g, %.9g]  %s\n",
            static_cast<long long>(d.query), static_cast<long long>(d.label), static_cast<double>(d.score),
            static_cast<double>(d.box[0]), static_cast<double>(d.box[1]), static_cast<double>(d.box[2]),
            static_cast<double>(d.box[3]), metadata.labelName(d.label).c_str());
    }
}

} // namespace gsmlp::sample
