#include "detections.h"

#include <algorithm>
#include <cmath>

namespace gsmlp::sample
{

std::vector<Detection> decodeDetections(float const* logits, float const* boxes, int64_t queries, int64_t classes,
    bool sigmoid, float scoreThreshold, int height, int width)
{
    std::vector<Detection> detections;
    int64_t const realClasses = sigmoid ? classes : classes - 1;
    for (int64_t q = 0; q < queries; ++q)
    {
        float const* row = logits + q * classes;
        int64_t best = 0;
        for (int64_t c = 1; c < realClasses; ++c)
        {
            best = row[c] > row[best] ? c : best;
        }
        float score = 0.F;
        if (sigmoid)
        {
            score = 1.F / (1.F + std::exp(-row[best]));
        }
        else
        {
            // Softmax over all classes including "no object", shifted by the max for stability.
            float const top = *std::max_element(row, row + classes);
            float sum = 0.F;
            for (int64_t c = 0; c < classes; ++c)
            {
                sum += std::exp(row[c] - top);
            }
            score = std::exp(row[best] - top) / sum;
        }
        if (score < scoreThreshold)
        {
            continue;
        }
        float const* b = boxes + q * 4;
        Detection d{q, best, score, {(b[0] - 0.5F * b[2]) * static_cast<float>(width),
                                        (b[1] - 0.5F * b[3]) * static_cast<float>(height),
                                        (b[0] + 0.5F * b[2]) * static_cast<float>(width),
                                        (b[1] + 0.5F * b[3]) * static_cast<float>(height)}};
        detections.push_back(d);
    }
    std::sort(detections.begin(), detections.end(), [](Detection const& a, Detection const& b) { return a.score > b.score; });
    return detections;
}

} // namespace gsmlp::sample
