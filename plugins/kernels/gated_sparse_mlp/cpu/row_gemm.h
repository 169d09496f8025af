// The one compute primitive of the CPU kernel: a GEMM whose A rows are gathered through pointers.
//
//   c[i][n] (+)= bias[n] + sum_k a[i][k] * b[k * ldb + n]      for i < m, n < n_cols
//
// `b` is a packed K x ldb panel (ldb a multiple of 16, zero beyond n_cols), so the micro-kernel reads
// it with aligned full-width loads. A rows and C rows are reached through pointer arrays: gathering the
// active tokens costs no copy. Three implementations are chosen at run time: AVX-512F, AVX2+FMA and
// portable C++ (GSMLP_CPU_ISA=avx2 or =portable forces a lesser one, for tests and comparisons).
#pragma once

#include <cstdint>

#include "common/cpu_isa.h"
#include "common/fp16.h"

namespace gsmlp::cpu {

constexpr int kPanelWidth = 16;  // columns of one micro-tile: two 8-float AVX registers
constexpr int kTileRows = 6;     // rows of one micro-tile: 6 x 2 accumulators + 2 loads + 1 broadcast

enum RowGemmFlags : unsigned {
  kAccumulate = 1u,  // c += a*b instead of c = a*b (+ bias)
  kRelu = 2u,        // c = max(0, c); NaN stays NaN as in torch.relu
};

struct RowGemmArgs {
  int m;                 // rows
  int k;                 // reduction length
  int n_cols;            // valid columns
  const float* const* a; // m row pointers, each k floats
  const float* b;        // packed panel, k x ldb
  int ldb;
  const float* bias;     // n_cols floats or nullptr (ignored with kAccumulate)
  float* const* c;       // m row pointers, each n_cols floats
  unsigned flags;
};

using RowGemmFn = void (*)(const RowGemmArgs&);

void row_gemm_portable(const RowGemmArgs& args);
void row_gemm_avx2(const RowGemmArgs& args);    // call only where cpu_has_avx2_fma()
void row_gemm_avx512(const RowGemmArgs& args);  // call only where cpu_has_avx512()

// The best row GEMM for this CPU.
RowGemmFn best_row_gemm();

}  // namespace gsmlp::cpu
