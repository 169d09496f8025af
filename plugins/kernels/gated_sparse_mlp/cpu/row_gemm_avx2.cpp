// AVX2 + FMA micro-kernel (this file alone is compiled with -mavx2 -mfma -mf16c).
#include <immintrin.h>

#include "row_gemm.h"

namespace gsmlp::cpu {
namespace {

// Lane i of the mask is all ones where i < count (count clamped to 0..8).
inline __m256i lane_mask(int count) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), lanes);
}

struct Edge {
  __m256i lo, hi;
  bool full;
};

inline Edge edge_for(int cols) { return {lane_mask(cols), lane_mask(cols - 8), cols >= kPanelWidth}; }

inline __m256 load_part(const float* p, const Edge& e, bool high) {
  if (e.full) return _mm256_loadu_ps(p);
  return _mm256_maskload_ps(p, high ? e.hi : e.lo);
}

inline void store_part(float* p, __m256 v, const Edge& e, bool high) {
  if (e.full) {
    _mm256_storeu_ps(p, v);
  } else {
    _mm256_maskstore_ps(p, high ? e.hi : e.lo, v);
  }
}

// Accumulators are named variables, not arrays: with arrays GCC spills them to the stack every k step.
#define GSMLP_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)

// One R x 16 tile (R <= 6): c rows are written through `c` (stride-free row pointers), columns
// col0..col0+15. Rows at or past R are compiled out, so a tail of 1-5 rows does no wasted FMAs.
template <int R>
inline void tile(const RowGemmArgs& g, const float* const* a, float* const* c, int col0, const Edge& e) {
  const bool accumulate = g.flags & kAccumulate;
#define GSMLP_INIT(i)                                      \
  __m256 lo##i = _mm256_setzero_ps(), hi##i = lo##i;       \
  const float* a##i = a[(i) < R ? (i) : 0];                \
  if constexpr ((i) < R) {                                 \
    if (accumulate) {                                      \
      lo##i = load_part(c[i] + col0, e, false);            \
      hi##i = load_part(c[i] + col0 + 8, e, true);         \
    } else if (g.bias) {                                   \
      lo##i = load_part(g.bias + col0, e, false);          \
      hi##i = load_part(g.bias + col0 + 8, e, true);       \
    }                                                      \
  }
  GSMLP_ROWS(GSMLP_INIT)
#undef GSMLP_INIT
  const float* b = g.b + col0;
  const int ldb = g.ldb;
  const int k_end = g.k;
  for (int k = 0; k < k_end; ++k, b += ldb) {
    const __m256 b_lo = _mm256_load_ps(b);
    const __m256 b_hi = _mm256_load_ps(b + 8);
#define GSMLP_FMA(i)                                       \
  if constexpr ((i) < R) {                                 \
    const __m256 av = _mm256_broadcast_ss(a##i + k);       \
    lo##i = _mm256_fmadd_ps(av, b_lo, lo##i);              \
    hi##i = _mm256_fmadd_ps(av, b_hi, hi##i);              \
  }
    GSMLP_ROWS(GSMLP_FMA)
#undef GSMLP_FMA
  }
  const __m256 zero = _mm256_setzero_ps();
  const bool relu = g.flags & kRelu;
#define GSMLP_STORE(i)                                     \
  if constexpr ((i) < R) {                                 \
    if (relu) { /* max(0, v) returns v when v is NaN: relu keeps NaN */ \
      lo##i = _mm256_max_ps(zero, lo##i);                  \
      hi##i = _mm256_max_ps(zero, hi##i);                  \
    }                                                      \
    store_part(c[i] + col0, lo##i, e, false);              \
    store_part(c[i] + col0 + 8, hi##i, e, true);           \
  }
  GSMLP_ROWS(GSMLP_STORE)
#undef GSMLP_STORE
  (void)a0, (void)a1, (void)a2, (void)a3, (void)a4, (void)a5;  // rows past R never read theirs
}

void tail_tile(const RowGemmArgs& g, int row0, int rows, int col0, const Edge& e) {
  const float* const* a = g.a + row0;
  float* const* c = g.c + row0;
  switch (rows) {
    case 1: return tile<1>(g, a, c, col0, e);
    case 2: return tile<2>(g, a, c, col0, e);
    case 3: return tile<3>(g, a, c, col0, e);
    case 4: return tile<4>(g, a, c, col0, e);
    default: return tile<5>(g, a, c, col0, e);
  }
}

void rows_of_panel(const RowGemmArgs& g, int col0) {
  const Edge e = edge_for(g.n_cols - col0);
  int row = 0;
  for (; row + kTileRows <= g.m; row += kTileRows) tile<kTileRows>(g, g.a + row, g.c + row, col0, e);
  if (row < g.m) tail_tile(g, row, g.m - row, col0, e);
}

}  // namespace

void row_gemm_avx2(const RowGemmArgs& g) {
  // One 16-column panel of b (k x 16 floats) stays in L1 while all rows stream past it.
  for (int col0 = 0; col0 < g.n_cols; col0 += kPanelWidth) rows_of_panel(g, col0);
}

}  // namespace gsmlp::cpu
