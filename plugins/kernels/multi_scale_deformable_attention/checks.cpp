#include "checks.h"

#include "common/status.h"

namespace gsmlp::msda {
namespace {

int check_sizes(const gsmlp_msda_problem& p) {
  struct Size {
    const char* name;
    int64_t value, least;
  };
  const Size sizes[] = {{"batch", p.batch, 0},  {"value_len", p.value_len, 0}, {"heads", p.heads, 1},
                        {"head_dim", p.head_dim, 1}, {"levels", p.levels, 1},   {"queries", p.queries, 0},
                        {"points", p.points, 1}};
  for (const Size& s : sizes)
    if (s.value < s.least)
      return fail_fmt(GSMLP_INVALID_ARGUMENT, "%s is %lld; must be >= %lld", s.name, static_cast<long long>(s.value),
                      static_cast<long long>(s.least));
  if (p.dtype != GSMLP_FP32 && p.dtype != GSMLP_FP16)
    return fail_fmt(GSMLP_INVALID_ARGUMENT, "dtype is %d; must be GSMLP_FP32 (0) or GSMLP_FP16 (1)",
                    static_cast<int>(p.dtype));
  return GSMLP_OK;
}

}  // namespace

int check_arguments(const gsmlp_msda_problem* problem, const gsmlp_msda_tensors* tensors) {
  if (!problem || !tensors) return fail(GSMLP_INVALID_ARGUMENT, "problem and tensors must be non-NULL");
  if (const int status = check_sizes(*problem); status != GSMLP_OK) return status;
  if (!tensors->spatial_shapes || !tensors->level_start_index)
    return fail(GSMLP_INVALID_ARGUMENT, "spatial_shapes and level_start_index must be non-NULL");
  // An empty tensor has no storage: the others may be NULL when there is nothing to compute.
  if (rows(*problem) > 0 &&
      (!tensors->sampling_locations || !tensors->attention_weights || !tensors->output ||
       (problem->value_len > 0 && !tensors->value)))
    return fail(GSMLP_INVALID_ARGUMENT, "value, sampling_locations, attention_weights and output must be non-NULL");
  return GSMLP_OK;
}

int check_levels(const gsmlp_msda_problem& p, const int32_t* spatial_shapes, const int32_t* level_start_index) {
  int64_t total = 0;
  for (int64_t l = 0; l < p.levels; ++l) {
    const int64_t h = spatial_shapes[2 * l], w = spatial_shapes[2 * l + 1];
    if (h < 1 || w < 1)
      return fail_fmt(GSMLP_INVALID_ARGUMENT, "spatial_shapes[%lld] is (%lld, %lld); H and W must be >= 1",
                      static_cast<long long>(l), static_cast<long long>(h), static_cast<long long>(w));
    if (level_start_index[l] != total)
      return fail_fmt(GSMLP_INVALID_ARGUMENT,
                      "level_start_index[%lld] is %lld but the levels before it hold %lld rows (sum of H * W)",
                      static_cast<long long>(l), static_cast<long long>(level_start_index[l]),
                      static_cast<long long>(total));
    total += h * w;
  }
  if (total != p.value_len)
    return fail_fmt(GSMLP_INVALID_ARGUMENT, "value has S = %lld rows but the levels hold %lld (sum of H_l * W_l)",
                    static_cast<long long>(p.value_len), static_cast<long long>(total));
  return GSMLP_OK;
}

}  // namespace gsmlp::msda
