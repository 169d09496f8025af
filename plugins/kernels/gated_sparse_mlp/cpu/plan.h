// Sizes and workspace layout of one CPU forward call. Shared by gsmlp_cpu_workspace_size and
// gsmlp_cpu_forward, so the two can never disagree.
#pragma once

#include <cstddef>
#include <cstdint>

#include "gsmlp/gated_sparse_mlp.h"

namespace gsmlp::cpu {

// Tokens of one chunk: one thread computes a chunk start to end, so its rows of the output, its
// hidden activations and its accumulator stay in that core's L2 cache.
constexpr int64_t kMaxChunkTokens = 256;

struct Plan {
  int64_t d, h, block, nb, rank;
  int64_t group;       // hidden neurons computed together: a whole number of blocks, >= 16 columns
  int64_t num_groups;
  int64_t ld_group;    // group rounded up to the 16-column panel
  int64_t ld_d, ld_rank, ld_nb;
  bool gated, fp16;
  int threads;
  // Byte offsets into the workspace (each 64-byte aligned).
  // per_thread is also where the packed weights end: bytes [0, per_thread) are all that packing writes.
  size_t header, w1p, b1f, w2p, b2f, gdp, gup, gbf, per_thread, thread_bytes, total;
};

// Written at the start of the workspace by packing: which problem the packed weights belong to.
struct PackHeader {
  uint64_t magic;
  int64_t d, h, block, rank;
  int32_t dtype, gated;
};
constexpr uint64_t kPackMagic = 0x67736d6c70706b31ull;  // "gsmlppk1"

Plan make_plan(const gsmlp_problem& problem, bool gated, int threads);
int resolve_threads(int requested);

// Per-thread scratch, carved from the thread's slice of the workspace.
struct ThreadScratch {
  float* x;        // kMaxChunkTokens x ld_d: fp16 input converted to fp32
  float* z;        // kMaxChunkTokens x ld_rank: gate down-projection
  float* logits;   // kMaxChunkTokens x ld_nb
  uint8_t* active; // kMaxChunkTokens x nb
  float* h;        // kMaxChunkTokens x ld_group: one group's hidden activations
  float* acc;      // kMaxChunkTokens x ld_d: fp32 output accumulator
  const float** a_rows;
  float** c_rows;
  int32_t* rows;   // token indices (within the chunk) of one group
};

// `scratch`: the threads' region (workspace + plan.per_thread, or a caller's separate scratch, aligned).
ThreadScratch thread_scratch(const Plan& plan, void* scratch, int thread);

}  // namespace gsmlp::cpu
