#include "plan.h"

#include <algorithm>

#include "common/parallel.h"
#include "row_gemm.h"

namespace gsmlp::cpu {
namespace {

int64_t round_up(int64_t value, int64_t multiple) { return (value + multiple - 1) / multiple * multiple; }

// Appends `bytes` to the layout and returns the offset of the new 64-byte-aligned region.
size_t take(size_t& cursor, size_t bytes) {
  const size_t offset = static_cast<size_t>(round_up(static_cast<int64_t>(cursor), 64));
  cursor = offset + bytes;
  return offset;
}

}  // namespace

int resolve_threads(int requested) { return requested > 0 ? requested : hardware_threads(); }

Plan make_plan(const gsmlp_problem& p, bool gated, int threads) {
  Plan plan{};
  plan.d = p.d_model;
  plan.h = p.hidden;
  plan.block = p.block_size;
  plan.nb = (p.hidden + p.block_size - 1) / p.block_size;
  plan.rank = gated ? p.rank : 0;
  // Small blocks are merged into groups of >= 16 neurons so that a micro-tile's columns are never mostly
  // empty; a group's rows are the tokens with any of its blocks active, and inactive blocks are zeroed.
  plan.group = std::min(plan.h, p.block_size >= kPanelWidth ? p.block_size
                                                            : p.block_size * ((kPanelWidth + p.block_size - 1) / p.block_size));
  plan.num_groups = (plan.h + plan.group - 1) / plan.group;
  plan.ld_group = round_up(plan.group, kPanelWidth);
  plan.ld_d = round_up(plan.d, kPanelWidth);
  plan.ld_rank = round_up(std::max<int64_t>(plan.rank, 1), kPanelWidth);
  plan.ld_nb = round_up(plan.nb, kPanelWidth);
  plan.gated = gated;
  plan.fp16 = p.dtype == GSMLP_FP16;
  plan.threads = threads;

  size_t cursor = 0;
  const size_t f = sizeof(float);
  plan.header = take(cursor, sizeof(PackHeader));
  plan.w1p = take(cursor, plan.num_groups * plan.d * plan.ld_group * f);
  plan.b1f = take(cursor, plan.num_groups * plan.ld_group * f);
  plan.w2p = take(cursor, plan.num_groups * plan.ld_group * plan.ld_d * f);
  plan.b2f = take(cursor, plan.ld_d * f);
  plan.gdp = take(cursor, gated ? plan.d * plan.ld_rank * f : 0);
  plan.gup = take(cursor, gated ? plan.rank * plan.ld_nb * f : 0);
  plan.gbf = take(cursor, gated ? plan.ld_nb * f : 0);

  size_t t = 0;
  const int64_t c = kMaxChunkTokens;
  take(t, c * plan.ld_d * f);
  take(t, c * plan.ld_rank * f);
  take(t, c * plan.ld_nb * f);
  take(t, c * plan.nb);
  take(t, c * plan.ld_group * f);
  take(t, c * plan.ld_d * f);
  take(t, c * sizeof(float*));
  take(t, c * sizeof(float*));
  take(t, c * sizeof(int32_t));
  plan.thread_bytes = static_cast<size_t>(round_up(static_cast<int64_t>(t), 64));
  plan.per_thread = take(cursor, plan.thread_bytes * threads);
  plan.total = cursor + 64;  // slack to align a caller's unaligned base pointer
  return plan;
}

ThreadScratch thread_scratch(const Plan& plan, void* scratch, int thread) {
  char* base = static_cast<char*>(scratch) + plan.thread_bytes * thread;
  size_t t = 0;
  const int64_t c = kMaxChunkTokens;
  const size_t f = sizeof(float);
  ThreadScratch s{};
  s.x = reinterpret_cast<float*>(base + take(t, c * plan.ld_d * f));
  s.z = reinterpret_cast<float*>(base + take(t, c * plan.ld_rank * f));
  s.logits = reinterpret_cast<float*>(base + take(t, c * plan.ld_nb * f));
  s.active = reinterpret_cast<uint8_t*>(base + take(t, c * plan.nb));
  s.h = reinterpret_cast<float*>(base + take(t, c * plan.ld_group * f));
  s.acc = reinterpret_cast<float*>(base + take(t, c * plan.ld_d * f));
  s.a_rows = reinterpret_cast<const float**>(base + take(t, c * sizeof(float*)));
  s.c_rows = reinterpret_cast<float**>(base + take(t, c * sizeof(float*)));
  s.rows = reinterpret_cast<int32_t*>(base + take(t, c * sizeof(int32_t)));
  return s;
}

}  // namespace gsmlp::cpu
