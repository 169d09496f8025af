// AVX-512F micro-kernel (this file alone is compiled with -mavx512f -mfma).
//
// Why a second x86 kernel: on CPUs with full-width AVX-512 units (AMD Zen 5, Intel server cores) the AVX2
// kernel reaches only half the FMA peak, and ONNX Runtime's dense MatMul (MLAS) uses AVX-512 there, so a
// gated FFN was slower than ONNX Runtime's dense one at low sparsity. Same contract as row_gemm_avx2.cpp;
// a tile is R rows x 32 columns (two 16-float registers per row), two packed 16-column panels at once.
#include <immintrin.h>

#include "row_gemm.h"

namespace gsmlp::cpu {
namespace {

constexpr int kWideCols = 2 * kPanelWidth;
constexpr int kWideRows = 12;  // 12 x 2 accumulators + 2 loads + 1 broadcast of the 32 zmm registers

inline __mmask16 lanes_below(int count) {
  if (count <= 0) return 0;
  return count >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << count) - 1u);
}

// Masks of one 32-column tile: c columns that exist, and b columns inside the packed panel (ldb wide), so
// that the high half of the last tile never reads past the panel (masked lanes do not fault).
struct Edge {
  __mmask16 c_lo, c_hi, b_hi;
};

inline Edge edge_for(int cols, int panel_cols) {
  return {lanes_below(cols), lanes_below(cols - kPanelWidth), lanes_below(panel_cols - kPanelWidth)};
}

#define GSMLP_WIDE_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

// Accumulators are named variables, not arrays: with arrays the compiler spills them every k step.
template <int R>
inline void tile(const RowGemmArgs& g, const float* const* a, float* const* c, int col0, const Edge& e) {
  const bool accumulate = g.flags & kAccumulate;
#define GSMLP_INIT(i)                                                   \
  __m512 lo##i = _mm512_setzero_ps(), hi##i = lo##i;                    \
  const float* a##i = a[(i) < R ? (i) : 0];                             \
  if constexpr ((i) < R) {                                              \
    if (accumulate) {                                                   \
      lo##i = _mm512_maskz_loadu_ps(e.c_lo, c[i] + col0);               \
      hi##i = _mm512_maskz_loadu_ps(e.c_hi, c[i] + col0 + kPanelWidth); \
    } else if (g.bias) {                                                \
      lo##i = _mm512_maskz_loadu_ps(e.c_lo, g.bias + col0);             \
      hi##i = _mm512_maskz_loadu_ps(e.c_hi, g.bias + col0 + kPanelWidth); \
    }                                                                   \
  }
  GSMLP_WIDE_ROWS(GSMLP_INIT)
#undef GSMLP_INIT
  const float* b = g.b + col0;
  const int ldb = g.ldb;
  const int k_end = g.k;
  for (int k = 0; k < k_end; ++k, b += ldb) {
    const __m512 b_lo = _mm512_loadu_ps(b);  // inside the panel: ldb is a multiple of 16
    const __m512 b_hi = _mm512_maskz_loadu_ps(e.b_hi, b + kPanelWidth);
#define GSMLP_FMA(i)                                    \
  if constexpr ((i) < R) {                              \
    const __m512 av = _mm512_set1_ps(a##i[k]);          \
    lo##i = _mm512_fmadd_ps(av, b_lo, lo##i);           \
    hi##i = _mm512_fmadd_ps(av, b_hi, hi##i);           \
  }
    GSMLP_WIDE_ROWS(GSMLP_FMA)
#undef GSMLP_FMA
  }
  // The masked form of max: GCC 12's _mm512_max_ps passes an uninitialised register, which -Werror rejects.
  const __m512 zero = _mm512_setzero_ps();
  constexpr __mmask16 kAll = 0xffff;
  const bool relu = g.flags & kRelu;
#define GSMLP_STORE(i)                                               \
  if constexpr ((i) < R) {                                           \
    if (relu) { /* max(0, v) returns v when v is NaN: relu keeps NaN */ \
      lo##i = _mm512_mask_max_ps(lo##i, kAll, zero, lo##i);          \
      hi##i = _mm512_mask_max_ps(hi##i, kAll, zero, hi##i);          \
    }                                                                \
    _mm512_mask_storeu_ps(c[i] + col0, e.c_lo, lo##i);               \
    _mm512_mask_storeu_ps(c[i] + col0 + kPanelWidth, e.c_hi, hi##i); \
  }
  GSMLP_WIDE_ROWS(GSMLP_STORE)
#undef GSMLP_STORE
  (void)a0, (void)a1, (void)a2, (void)a3, (void)a4, (void)a5;  // rows past R never read theirs
  (void)a6, (void)a7, (void)a8, (void)a9, (void)a10, (void)a11;
}

template <int R>
void tail(const RowGemmArgs& g, int row0, int rows, int col0, const Edge& e) {
  if constexpr (R == 0) {
    (void)g, (void)row0, (void)rows, (void)col0, (void)e;
  } else if (rows == R) {
    tile<R>(g, g.a + row0, g.c + row0, col0, e);
  } else {
    tail<R - 1>(g, row0, rows, col0, e);
  }
}

void rows_of_tile(const RowGemmArgs& g, int col0) {
  const Edge e = edge_for(g.n_cols - col0, g.ldb - col0);
  int row = 0;
  for (; row + kWideRows <= g.m; row += kWideRows) tile<kWideRows>(g, g.a + row, g.c + row, col0, e);
  if (row < g.m) tail<kWideRows - 1>(g, row, g.m - row, col0, e);
}

}  // namespace

void row_gemm_avx512(const RowGemmArgs& g) {
  // One 32-column slice of b (k x 32 floats) stays in L1 while all rows stream past it.
  for (int col0 = 0; col0 < g.n_cols; col0 += kWideCols) rows_of_tile(g, col0);
}

}  // namespace gsmlp::cpu
