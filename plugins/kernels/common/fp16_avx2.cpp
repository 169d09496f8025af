// F16C rows of fp16 <-> fp32 (this file alone is compiled with -mavx2 -mfma -mf16c).
#include <immintrin.h>

#include "fp16.h"

namespace gsmlp::cpu {

void half_to_float_row_avx2(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  half_to_float_row_portable(src + i, dst + i, n - i);
}

void float_to_half_row_avx2(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
  float_to_half_row_portable(src + i, dst + i, n - i);
}

}  // namespace gsmlp::cpu
