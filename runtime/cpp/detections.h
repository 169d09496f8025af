/* DETR-style post-processing: per query, the best class, its score and the box in pixels. */
#ifndef GSMLP_TRT_SAMPLE_DETECTIONS_H
#define GSMLP_TRT_SAMPLE_DETECTIONS_H

#include <cstdint>
#include <vector>

namespace gsmlp::sample
{

struct Detection
{
    int64_t query;
    int64_t label;
    float score;
    float box[4]; // x0, y0, x1, y1 in pixels of the original image
};

//! logits [queries, classes], boxes [queries, 4] as (cx, cy, w, h) relative to the resized, unpadded image,
//! which is the original image scaled: times the original size they are original pixels. With softmax the
//! last class is "no object" (DETR) and is never reported; with sigmoid every class is real (Deformable DETR).
std::vector<Detection> decodeDetections(float const* logits, float const* boxes, int64_t queries, int64_t classes,
    bool sigmoid, float scoreThreshold, int height, int width);

} // namespace gsmlp::sample

#endif // GSMLP_TRT_SAMPLE_DETECTIONS_H
