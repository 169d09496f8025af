// Portable C++ row GEMM: the fallback on CPUs without AVX2/FMA, and the run-time choice between the
// implementations.
#include "row_gemm.h"

namespace gsmlp::cpu {

void row_gemm_portable(const RowGemmArgs& g) {
  for (int i = 0; i < g.m; ++i) {
    float* c = g.c[i];
    const float* a = g.a[i];
    for (int n = 0; n < g.n_cols; ++n) {
      float acc = (g.flags & kAccumulate) ? c[n] : (g.bias ? g.bias[n] : 0.0f);
      for (int k = 0; k < g.k; ++k) acc += a[k] * g.b[static_cast<int64_t>(k) * g.ldb + n];
      // `acc > 0 || acc != acc` keeps NaN, as torch.relu does.
      if ((g.flags & kRelu) && !(acc > 0.0f) && acc == acc) acc = 0.0f;
      c[n] = acc;
    }
  }
}

RowGemmFn best_row_gemm() {
#if defined(GSMLP_HAVE_AVX512_TU)
  if (cpu_has_avx512()) return row_gemm_avx512;
#endif
#if defined(GSMLP_HAVE_AVX2_TU)
  if (cpu_has_avx2_fma()) return row_gemm_avx2;
#endif
  return row_gemm_portable;
}

}  // namespace gsmlp::cpu
