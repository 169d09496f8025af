// AVX2 + FMA + F16C channel loop (this file alone is compiled with -mavx2 -mfma -mf16c): up to 32 channels
// (four 8-float registers) accumulate in registers while the corners stream past once.
#include <immintrin.h>

#include "accumulate.h"
#include "common/fp16.h"

namespace gsmlp::msda::cpu {
namespace {

inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline float load1(float v) { return v; }
inline float load1(uint16_t v) { return gsmlp::cpu::half_to_float(v); }

// Channels [c0, c0 + 8V) of every corner.
template <int V, typename T>
void block(const Corner* corners, int64_t count, const T* value, int64_t c0, float* acc) {
  __m256 sum[V];
  for (int v = 0; v < V; ++v) sum[v] = _mm256_setzero_ps();
  for (int64_t k = 0; k < count; ++k) {
    const T* row = value + corners[k].offset + c0;
    const __m256 w = _mm256_set1_ps(corners[k].weight);
    for (int v = 0; v < V; ++v) sum[v] = _mm256_fmadd_ps(w, load8(row + 8 * v), sum[v]);
  }
  for (int v = 0; v < V; ++v) _mm256_storeu_ps(acc + c0 + 8 * v, sum[v]);
}

// The last d % 8 channels, one at a time (a row may end at the end of value: no wider load).
template <typename T>
void tail(const Corner* corners, int64_t count, const T* value, int64_t c0, int64_t d, float* acc) {
  for (int64_t c = c0; c < d; ++c) {
    float sum = 0.0f;
    for (int64_t k = 0; k < count; ++k) sum += corners[k].weight * load1(value[corners[k].offset + c]);
    acc[c] = sum;
  }
}

template <typename T>
void accumulate(const Corner* corners, int64_t count, const void* data, int64_t d, float* acc) {
  const T* value = static_cast<const T*>(data);
  int64_t c0 = 0;
  for (; c0 + 32 <= d; c0 += 32) block<4>(corners, count, value, c0, acc);
  switch ((d - c0) / 8) {
    case 3: block<3>(corners, count, value, c0, acc); c0 += 24; break;
    case 2: block<2>(corners, count, value, c0, acc); c0 += 16; break;
    case 1: block<1>(corners, count, value, c0, acc); c0 += 8; break;
    default: break;
  }
  tail(corners, count, value, c0, d, acc);
}

}  // namespace

void accumulate_fp32_avx2(const Corner* corners, int64_t count, const void* value, int64_t d, float* acc) {
  accumulate<float>(corners, count, value, d, acc);
}

void accumulate_fp16_avx2(const Corner* corners, int64_t count, const void* value, int64_t d, float* acc) {
  accumulate<uint16_t>(corners, count, value, d, acc);
}

}  // namespace gsmlp::msda::cpu
