#include "checks.h"

#include "common/status.h"

namespace gsmlp {

static int check_problem(const gsmlp_problem* p) {
  if (p->tokens < 0) return fail_fmt(GSMLP_INVALID_ARGUMENT, "tokens is %lld; must be >= 0", (long long)p->tokens);
  if (p->d_model < 1) return fail_fmt(GSMLP_INVALID_ARGUMENT, "d_model is %lld; must be >= 1", (long long)p->d_model);
  if (p->hidden < 1) return fail_fmt(GSMLP_INVALID_ARGUMENT, "hidden is %lld; must be >= 1", (long long)p->hidden);
  if (p->block_size < 1)
    return fail_fmt(GSMLP_INVALID_ARGUMENT, "block_size is %lld; must be >= 1", (long long)p->block_size);
  if (p->dtype != GSMLP_FP32 && p->dtype != GSMLP_FP16)
    return fail_fmt(GSMLP_INVALID_ARGUMENT, "dtype is %d; must be GSMLP_FP32 (0) or GSMLP_FP16 (1)", (int)p->dtype);
  return GSMLP_OK;
}

static int check_tensors(const gsmlp_problem* p, const gsmlp_tensors* t) {
  if (!t->w1 || !t->b1 || !t->w2 || !t->b2) return fail(GSMLP_INVALID_ARGUMENT, "w1, b1, w2 and b2 must be non-NULL");
  // An empty tensor has no storage: x and y may be NULL when there are no tokens.
  if (p->tokens > 0 && (!t->x || !t->y)) return fail(GSMLP_INVALID_ARGUMENT, "x and y must be non-NULL");
  if (t->x_row_stride < p->d_model)
    return fail_fmt(GSMLP_INVALID_ARGUMENT, "x_row_stride is %lld; must be >= d_model (%lld)",
                    (long long)t->x_row_stride, (long long)p->d_model);
  if (has_gate(t)) {
    if (!t->gate_up_w || !t->gate_up_b)
      return fail(GSMLP_INVALID_ARGUMENT, "gate_down_w is set but gate_up_w or gate_up_b is NULL");
    if (p->rank < 1)
      return fail_fmt(GSMLP_INVALID_ARGUMENT, "rank is %lld; a gate needs rank >= 1", (long long)p->rank);
  }
  return GSMLP_OK;
}

int check_arguments(const gsmlp_problem* problem, const gsmlp_tensors* tensors) {
  if (!problem || !tensors) return fail(GSMLP_INVALID_ARGUMENT, "problem and tensors must be non-NULL");
  int status = check_problem(problem);
  return status != GSMLP_OK ? status : check_tensors(problem, tensors);
}

}  // namespace gsmlp
