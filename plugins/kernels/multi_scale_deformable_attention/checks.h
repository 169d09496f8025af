// The MultiScaleDeformableAttention entry points' argument checks, shared by the CPU and CUDA kernels.
#pragma once

#include "gsmlp/multi_scale_deformable_attention.h"

namespace gsmlp::msda {

// The problem's sizes and the tensors' pointers against the contract: GSMLP_OK or a status with a message.
int check_arguments(const gsmlp_msda_problem* problem, const gsmlp_msda_tensors* tensors);

// Host level tables: H_l, W_l >= 1, start_l the running sum of H*W, value_len the total. The message names the
// level and both numbers (e.g. "value has S = 100 rows but the levels hold 13294 (sum of H_l * W_l)").
int check_levels(const gsmlp_msda_problem& problem, const int32_t* spatial_shapes, const int32_t* level_start_index);

// Output rows (n, q): nothing to compute where there are none.
inline int64_t rows(const gsmlp_msda_problem& p) { return p.batch * p.queries; }

}  // namespace gsmlp::msda
