// Packs the weights of one problem into the workspace regions named by its Plan.
#pragma once

#include <cstddef>

#include "gsmlp/gated_sparse_mlp.h"
#include "plan.h"

namespace gsmlp::cpu {

inline float* at(void* workspace, size_t offset) {
  return reinterpret_cast<float*>(static_cast<char*>(workspace) + offset);
}

// W1/b1 per group of blocks, W2 per group, b2, and (gated) the gate's two projections and bias.
void pack_weights(const Plan& p, const gsmlp_tensors& t, void* ws);

}  // namespace gsmlp::cpu
