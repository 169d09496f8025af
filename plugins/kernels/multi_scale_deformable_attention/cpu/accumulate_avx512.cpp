// AVX-512F channel loop (this file alone is compiled with -mavx512f -mfma): up to 64 channels (four 16-float
// registers) accumulate in registers while the corners stream past once; AVX-512F converts fp16 rows.
#include <immintrin.h>

#include "accumulate.h"
#include "common/fp16.h"

namespace gsmlp::msda::cpu {
namespace {

inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
// The zero-masked form: GCC 12 warns that the plain _mm512_cvtph_ps reads an undefined register.
inline __m512 load16(const uint16_t* p) {
  return _mm512_maskz_cvtph_ps(0xffff, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline float load1(float v) { return v; }
inline float load1(uint16_t v) { return gsmlp::cpu::half_to_float(v); }

template <int V, typename T>
void block(const Corner* corners, int64_t count, const T* value, int64_t c0, float* acc) {
  __m512 sum[V];
  for (int v = 0; v < V; ++v) sum[v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < count; ++k) {
    const T* row = value + corners[k].offset + c0;
    const __m512 w = _mm512_set1_ps(corners[k].weight);
    for (int v = 0; v < V; ++v) sum[v] = _mm512_fmadd_ps(w, load16(row + 16 * v), sum[v]);
  }
  for (int v = 0; v < V; ++v) _mm512_storeu_ps(acc + c0 + 16 * v, sum[v]);
}

// The last d % 16 channels: fp32 with masked loads (masked lanes do not fault), fp16 one at a time.
void tail(const Corner* corners, int64_t count, const float* value, int64_t c0, int64_t d, float* acc) {
  if (c0 >= d) return;
  const __mmask16 mask = static_cast<__mmask16>((1u << (d - c0)) - 1u);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t k = 0; k < count; ++k)
    sum = _mm512_fmadd_ps(_mm512_set1_ps(corners[k].weight),
                          _mm512_maskz_loadu_ps(mask, value + corners[k].offset + c0), sum);
  _mm512_mask_storeu_ps(acc + c0, mask, sum);
}

void tail(const Corner* corners, int64_t count, const uint16_t* value, int64_t c0, int64_t d, float* acc) {
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
  for (; c0 + 64 <= d; c0 += 64) block<4>(corners, count, value, c0, acc);
  switch ((d - c0) / 16) {
    case 3: block<3>(corners, count, value, c0, acc); c0 += 48; break;
    case 2: block<2>(corners, count, value, c0, acc); c0 += 32; break;
    case 1: block<1>(corners, count, value, c0, acc); c0 += 16; break;
    default: break;
  }
  tail(corners, count, value, c0, d, acc);
}

}  // namespace

void accumulate_fp32_avx512(const Corner* corners, int64_t count, const void* value, int64_t d, float* acc) {
  accumulate<float>(corners, count, value, d, acc);
}

void accumulate_fp16_avx512(const Corner* corners, int64_t count, const void* value, int64_t d, float* acc) {
  accumulate<uint16_t>(corners, count, value, d, acc);
}

}  // namespace gsmlp::msda::cpu
