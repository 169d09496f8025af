/* DETR-style decoding, the rule of gsmlp/model/decoding.py (tests hold the two equal), and its printout. */
#ifndef GSMLP_SAMPLE_DETECTIONS_H
#define GSMLP_SAMPLE_DETECTIONS_H

#include "metadata.h"

#include <cstdint>
#include <string>
#include <vector>

namespace gsmlp::sample
{

constexpr int64_t kTOP_K = 100; // candidates kept per image, as gsmlp.model.decoding.DEFAULT_TOP_K

struct Detection
{
    int64_t query;
    int64_t label;
    float score;
    float box[4]; // x0, y0, x1, y1 in pixels of the original image
};

//! logits [queries, classes], boxes [queries, 4] as (cx, cy, w, h) relative to the resized, unpadded image,
//! which is the original image scaled: times the original size they are original pixels. Softmax: each
//! query's best real class (the last class is "no object"); sigmoid: every (query, class) pair. The kTOP_K
//! best, highest score first (ties: lower query, then lower class), then those below scoreThreshold dropped.
std::vector<Detection> decodeDetections(float const* logits, float const* boxes, int64_t queries, int64_t classes,
    Activation activation, float scoreThreshold, int height, int width);

//! The header line and one line per detection, on stdout.
void printDetections(std::vector<Detection> const& detections, ModelMetadata const& metadata, float scoreThreshold,
    int imageHeight, int imageWidth);

//! What a sample prints about the model before its detections.
void printModel(std::string const& path, ModelMetadata const& metadata, std::string const& ranOn);

} // namespace gsmlp::sample

#endif // GSMLP_SAMPLE_DETECTIONS_H
