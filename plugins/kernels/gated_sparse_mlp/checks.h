// The GatedSparseMLP entry points' argument checks, shared by the CPU and CUDA kernels.
#pragma once

#include "gsmlp/gated_sparse_mlp.h"

namespace gsmlp {

// Checks the problem and the tensors against the contract; returns GSMLP_OK or a status with a message.
int check_arguments(const gsmlp_problem* problem, const gsmlp_tensors* tensors);

inline bool has_gate(const gsmlp_tensors* tensors) { return tensors->gate_down_w != nullptr; }

inline int64_t num_blocks(const gsmlp_problem* problem) {
  return (problem->hidden + problem->block_size - 1) / problem->block_size;
}

}  // namespace gsmlp
