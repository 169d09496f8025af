// Status reporting and argument checks shared by the CPU and CUDA entry points.
#pragma once

#include "gsmlp/gated_sparse_mlp.h"

namespace gsmlp {

// Records `message` as the calling thread's last error and returns `status`, so that callers can
// write `return fail(GSMLP_INVALID_ARGUMENT, "...")`.
int fail(int status, const char* message);
int fail_fmt(int status, const char* format, ...) __attribute__((format(printf, 2, 3)));
void clear_error();

// Checks the problem and the tensors against the contract; returns GSMLP_OK or a status with a message.
int check_arguments(const gsmlp_problem* problem, const gsmlp_tensors* tensors);

inline bool has_gate(const gsmlp_tensors* tensors) { return tensors->gate_down_w != nullptr; }

inline int64_t num_blocks(const gsmlp_problem* problem) {
  return (problem->hidden + problem->block_size - 1) / problem->block_size;
}

}  // namespace gsmlp
