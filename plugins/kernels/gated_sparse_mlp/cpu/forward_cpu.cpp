// CPU GatedSparseMLP: pack the weights into the workspace, then let each thread run token chunks:
// gate -> per group of blocks, gather the chunk's tokens that need it -> fc1+ReLU -> fc2 accumulate.
// Why this shape (and not per-token gathers or shared-mask token tiles) is measured in docs/PERFORMANCE.md.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "../checks.h"
#include "common/parallel.h"
#include "common/status.h"
#include "pack.h"
#include "plan.h"
#include "row_gemm.h"

namespace gsmlp::cpu {
namespace {

struct Chunk {
  int64_t first, count;
};

class ChunkRunner {
 public:
  ChunkRunner(const Plan& p, const gsmlp_problem& prob, const gsmlp_tensors& t, const void* ws, void* scratch,
              int thread)
      : p_(p), prob_(prob), t_(t), ws_(const_cast<void*>(ws)), s_(thread_scratch(p, scratch, thread)),
        gemm_(best_row_gemm()) {}

  void run(Chunk chunk) {
    chunk_ = chunk;
    load_rows();
    if (p_.gated) compute_gate();
    init_accumulator();
    for (int64_t g = 0; g < p_.num_groups; ++g) run_group(g);
    store_output();
  }

 private:
  const float* x_row(int64_t i) const { return x_rows_[i]; }

  void load_rows() {
    for (int64_t i = 0; i < chunk_.count; ++i) {
      const int64_t token = chunk_.first + i;
      if (p_.fp16) {
        const auto* src = static_cast<const uint16_t*>(t_.x) + token * t_.x_row_stride;
        half_to_float_row(src, s_.x + i * p_.ld_d, p_.d);
        x_rows_[i] = s_.x + i * p_.ld_d;
      } else {
        x_rows_[i] = static_cast<const float*>(t_.x) + token * t_.x_row_stride;
      }
    }
  }

  void gemm(int64_t m, int64_t k, const float* b, int64_t ldb, int64_t n, const float* bias, unsigned flags) {
    gemm_({static_cast<int>(m), static_cast<int>(k), static_cast<int>(n), s_.a_rows, b, static_cast<int>(ldb),
           bias, s_.c_rows, flags});
  }

  void compute_gate() {
    const int64_t c = chunk_.count;
    for (int64_t i = 0; i < c; ++i) {
      s_.a_rows[i] = x_row(i);
      s_.c_rows[i] = s_.z + i * p_.ld_rank;
    }
    gemm(c, p_.d, at(ws_, p_.gdp), p_.ld_rank, p_.rank, nullptr, 0);
    for (int64_t i = 0; i < c; ++i) {
      s_.a_rows[i] = s_.z + i * p_.ld_rank;
      s_.c_rows[i] = s_.logits + i * p_.ld_nb;
    }
    gemm(c, p_.rank, at(ws_, p_.gup), p_.ld_nb, p_.nb, at(ws_, p_.gbf), 0);
    for (int64_t i = 0; i < c; ++i) {
      const float* logits = s_.logits + i * p_.ld_nb;
      // The contract's rule: NaN logits keep their block active.
      for (int64_t j = 0; j < p_.nb; ++j) s_.active[i * p_.nb + j] = !(logits[j] <= prob_.threshold);
    }
  }

  void init_accumulator() {
    const float* b2 = at(ws_, p_.b2f);
    for (int64_t i = 0; i < chunk_.count; ++i) std::memcpy(s_.acc + i * p_.ld_d, b2, p_.ld_d * sizeof(float));
  }

  bool block_active(int64_t i, int64_t j) const { return !p_.gated || s_.active[i * p_.nb + j]; }

  // Tokens of the chunk with any block of group g active, into s_.rows; returns how many.
  int64_t gather_rows(int64_t first_block, int64_t end_block) {
    int64_t n = 0;
    for (int64_t i = 0; i < chunk_.count; ++i) {
      bool any = false;
      for (int64_t j = first_block; j < end_block && !any; ++j) any = block_active(i, j);
      if (any) s_.rows[n++] = static_cast<int32_t>(i);
    }
    return n;
  }

  // Select, not multiply: neurons of inactive blocks become exactly 0 even if they hold NaN/Inf.
  void zero_inactive_blocks(int64_t rows, int64_t g, int64_t first_block, int64_t end_block) {
    for (int64_t r = 0; r < rows; ++r) {
      float* h = s_.h + r * p_.ld_group;
      for (int64_t j = first_block; j < end_block; ++j) {
        if (block_active(s_.rows[r], j)) continue;
        const int64_t lo = j * p_.block - g * p_.group;
        const int64_t hi = std::min((j + 1) * p_.block, p_.h) - g * p_.group;
        std::fill(h + lo, h + hi, 0.0f);
      }
    }
  }

  void run_group(int64_t g) {
    const int64_t first_block = g * p_.group / p_.block;
    const int64_t end_block = std::min(p_.nb, (g * p_.group + p_.group + p_.block - 1) / p_.block);
    const int64_t rows = gather_rows(first_block, end_block);
    if (rows == 0) return;
    const int64_t cols = std::min(p_.group, p_.h - g * p_.group);
    for (int64_t r = 0; r < rows; ++r) {
      s_.a_rows[r] = x_row(s_.rows[r]);
      s_.c_rows[r] = s_.h + r * p_.ld_group;
    }
    gemm(rows, p_.d, at(ws_, p_.w1p) + g * p_.d * p_.ld_group, p_.ld_group, cols, at(ws_, p_.b1f) + g * p_.ld_group,
         kRelu);
    if (p_.gated && end_block - first_block > 1) zero_inactive_blocks(rows, g, first_block, end_block);
    for (int64_t r = 0; r < rows; ++r) {
      s_.a_rows[r] = s_.h + r * p_.ld_group;
      s_.c_rows[r] = s_.acc + s_.rows[r] * p_.ld_d;
    }
    // k = cols: padded h columns are never read, so they cannot inject NaN (Inf * 0) into y.
    gemm(rows, cols, at(ws_, p_.w2p) + g * p_.ld_group * p_.ld_d, p_.ld_d, p_.d, nullptr, kAccumulate);
  }

  void store_output() {
    for (int64_t i = 0; i < chunk_.count; ++i) {
      const int64_t token = chunk_.first + i;
      const float* acc = s_.acc + i * p_.ld_d;
      if (p_.fp16) {
        float_to_half_row(acc, static_cast<uint16_t*>(t_.y) + token * p_.d, p_.d);
      } else {
        std::memcpy(static_cast<float*>(t_.y) + token * p_.d, acc, p_.d * sizeof(float));
      }
      if (t_.active_blocks) {
        int32_t count = 0;
        for (int64_t j = 0; j < p_.nb; ++j) count += block_active(i, j);
        t_.active_blocks[token] = count;
      }
      if (t_.block_mask) {
        uint8_t* mask = t_.block_mask + token * p_.nb;
        for (int64_t j = 0; j < p_.nb; ++j) mask[j] = block_active(i, j) ? 1 : 0;
      }
    }
  }

  const Plan& p_;
  const gsmlp_problem& prob_;
  const gsmlp_tensors& t_;
  void* ws_;  // the packed weights: only read (const_cast because the packing helpers are shared)
  ThreadScratch s_;
  RowGemmFn gemm_;
  Chunk chunk_{};
  const float* x_rows_[kMaxChunkTokens];
};

// The chunk cap: kMaxChunkTokens, the bucketed kernel. An experiment build may lower it with the compile
// definition GSMLP_CPU_CHUNK_TOKENS (benchmarks/cpu_algorithms.py: 1 token per chunk is the per-token gather);
// the production library reads no setting for it.
#ifndef GSMLP_CPU_CHUNK_TOKENS
#define GSMLP_CPU_CHUNK_TOKENS 256
#endif
static_assert(GSMLP_CPU_CHUNK_TOKENS >= 1 && GSMLP_CPU_CHUNK_TOKENS <= kMaxChunkTokens,
              "GSMLP_CPU_CHUNK_TOKENS must lie in 1..kMaxChunkTokens");
constexpr int64_t kChunkCap = GSMLP_CPU_CHUNK_TOKENS;

void run_chunks(const Plan& p, const gsmlp_problem& prob, const gsmlp_tensors& t, const void* ws, void* scratch,
                const gsmlp_parallel* host) {
  // Equal chunks, a multiple of the thread count, each <= the chunk cap.
  const int64_t cap = kChunkCap;
  int64_t chunks = std::max<int64_t>(p.threads, (prob.tokens + cap - 1) / cap);
  chunks = (chunks + p.threads - 1) / p.threads * p.threads;
  const int64_t size = (prob.tokens + chunks - 1) / chunks;
  chunks = (prob.tokens + size - 1) / size;
  parallel_for(chunks, p.threads, host, [&](int64_t c, int worker) {
    ChunkRunner runner(p, prob, t, ws, scratch, worker);
    const int64_t first = c * size;
    runner.run({first, std::min(size, prob.tokens - first)});
  });
}

void* align64(const void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  return reinterpret_cast<void*>((address + 63) & ~static_cast<uintptr_t>(63));
}

char* thread_region(const Plan& plan, void* ws) { return static_cast<char*>(ws) + plan.per_thread; }

}  // namespace
}  // namespace gsmlp::cpu

extern "C" {

size_t gsmlp_cpu_workspace_size(const gsmlp_problem* problem, int num_threads) {
  if (!problem || problem->d_model < 1 || problem->hidden < 1 || problem->block_size < 1) return 0;
  const bool gated = problem->rank > 0;
  return gsmlp::cpu::make_plan(*problem, gated, gsmlp::cpu::resolve_threads(num_threads)).total;
}

namespace {

size_t packed_bytes(const gsmlp::cpu::Plan& plan) { return plan.per_thread + 64; }  // + slack to align the base
size_t scratch_bytes(const gsmlp::cpu::Plan& plan) { return plan.thread_bytes * plan.threads + 64; }

// Validates arguments and the workspace; on success `plan` and `ws` (aligned) describe the call.
// `needed`: how much of the plan the call uses (the whole workspace, or only the packed weights).
int prepare(const gsmlp_problem* problem, const gsmlp_tensors* tensors, const void* workspace, size_t bytes,
            int num_threads, gsmlp::cpu::Plan& plan, void*& ws, size_t (*needed)(const gsmlp::cpu::Plan&)) {
  using namespace gsmlp;
  clear_error();
  if (const int status = check_arguments(problem, tensors); status != GSMLP_OK) return status;
  plan = cpu::make_plan(*problem, has_gate(tensors), cpu::resolve_threads(num_threads));
  if (!workspace || bytes < needed(plan))
    return fail_fmt(GSMLP_WORKSPACE_TOO_SMALL, "workspace has %zu bytes; this problem needs %zu", bytes,
                    needed(plan));
  ws = cpu::align64(workspace);
  return GSMLP_OK;
}

size_t whole(const gsmlp::cpu::Plan& plan) { return plan.total; }

// The packing written by gsmlp_cpu_pack_weights for this very problem, or an error saying there is none.
int check_packed(const gsmlp_problem& problem, const gsmlp::cpu::Plan& plan, const void* ws);

gsmlp::cpu::PackHeader header_for(const gsmlp_problem& p, const gsmlp::cpu::Plan& plan) {
  return {gsmlp::cpu::kPackMagic, p.d_model, p.hidden, p.block_size, plan.rank, static_cast<int32_t>(p.dtype),
          plan.gated ? 1 : 0};
}

int check_packed(const gsmlp_problem& problem, const gsmlp::cpu::Plan& plan, const void* ws) {
  const gsmlp::cpu::PackHeader expected = header_for(problem, plan);
  if (std::memcmp(static_cast<const char*>(ws) + plan.header, &expected, sizeof expected) != 0)
    return gsmlp::fail(GSMLP_INVALID_ARGUMENT,
                       "the workspace holds no weights packed for this problem: call gsmlp_cpu_pack_weights first");
  return GSMLP_OK;
}

}  // namespace

int gsmlp_cpu_pack_weights(const gsmlp_problem* problem, const gsmlp_tensors* tensors, void* workspace,
                           size_t workspace_bytes, int num_threads) {
  gsmlp::cpu::Plan plan;
  void* ws = nullptr;
  if (const int s = prepare(problem, tensors, workspace, workspace_bytes, num_threads, plan, ws, packed_bytes);
      s != GSMLP_OK)
    return s;
  gsmlp::cpu::pack_weights(plan, *tensors, ws);
  const gsmlp::cpu::PackHeader header = header_for(*problem, plan);
  std::memcpy(static_cast<char*>(ws) + plan.header, &header, sizeof header);
  return GSMLP_OK;
}

int gsmlp_cpu_forward_prepacked(const gsmlp_problem* problem, const gsmlp_tensors* tensors, void* workspace,
                                size_t workspace_bytes, int num_threads) {
  gsmlp::cpu::Plan plan;
  void* ws = nullptr;
  if (const int s = prepare(problem, tensors, workspace, workspace_bytes, num_threads, plan, ws, whole); s != GSMLP_OK)
    return s;
  if (const int s = check_packed(*problem, plan, ws); s != GSMLP_OK) return s;
  if (problem->tokens > 0)
    gsmlp::cpu::run_chunks(plan, *problem, *tensors, ws, gsmlp::cpu::thread_region(plan, ws), nullptr);
  return GSMLP_OK;
}

size_t gsmlp_cpu_packed_size(const gsmlp_problem* problem) {
  if (!problem || problem->d_model < 1 || problem->hidden < 1 || problem->block_size < 1) return 0;
  return packed_bytes(gsmlp::cpu::make_plan(*problem, problem->rank > 0, 1));
}

size_t gsmlp_cpu_scratch_size(const gsmlp_problem* problem, int workers) {
  if (!problem || problem->d_model < 1 || problem->hidden < 1 || problem->block_size < 1) return 0;
  const int threads = gsmlp::cpu::resolve_threads(workers);
  return scratch_bytes(gsmlp::cpu::make_plan(*problem, problem->rank > 0, threads));
}

int gsmlp_cpu_run_packed(const gsmlp_problem* problem, const gsmlp_tensors* tensors, const void* packed,
                         size_t packed_size, void* scratch, size_t scratch_size, int workers,
                         const gsmlp_parallel* parallel) {
  gsmlp::cpu::Plan plan;
  void* ws = nullptr;
  if (const int s = prepare(problem, tensors, packed, packed_size, workers, plan, ws, packed_bytes); s != GSMLP_OK)
    return s;
  if (const int s = check_packed(*problem, plan, ws); s != GSMLP_OK) return s;
  if (problem->tokens == 0) return GSMLP_OK;
  if (!scratch || scratch_size < scratch_bytes(plan))
    return gsmlp::fail_fmt(GSMLP_WORKSPACE_TOO_SMALL, "scratch has %zu bytes; %d workers need %zu", scratch_size,
                           plan.threads, scratch_bytes(plan));
  gsmlp::cpu::run_chunks(plan, *problem, *tensors, ws, gsmlp::cpu::align64(scratch), parallel);
  return GSMLP_OK;
}

int gsmlp_cpu_forward(const gsmlp_problem* problem, const gsmlp_tensors* tensors, void* workspace,
                      size_t workspace_bytes, int num_threads) {
  gsmlp::cpu::Plan plan;
  void* ws = nullptr;
  if (const int s = prepare(problem, tensors, workspace, workspace_bytes, num_threads, plan, ws, whole); s != GSMLP_OK)
    return s;
  if (problem->tokens == 0) return GSMLP_OK;
  gsmlp::cpu::pack_weights(plan, *tensors, ws);
  gsmlp::cpu::run_chunks(plan, *problem, *tensors, ws, gsmlp::cpu::thread_region(plan, ws), nullptr);
  return GSMLP_OK;
}

}  // extern "C"
