// IEEE binary16 <-> fp32, round to nearest even: portable scalars and rows, and the choice of F16C rows.
#include "fp16.h"

#include <cstring>

#include "cpu_isa.h"

namespace gsmlp::cpu {

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // Inf / NaN
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    exponent = 113;
    while (!(mantissa & 0x400u)) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

uint16_t float_to_half(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return sign | 0x7e00u;          // NaN
  if (magnitude >= 0x477ff000u) return sign | 0x7c00u;         // overflow (after rounding) -> Inf
  if (magnitude < 0x33000001u) return sign;                    // below half the smallest subnormal
  int exponent = static_cast<int>(magnitude >> 23) - 127 + 15;
  uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
  int shift = 13;
  if (exponent <= 0) {  // subnormal half
    shift = 14 - exponent;
    exponent = 0;
  }
  uint32_t half_mantissa = mantissa >> shift;
  const uint32_t rest = mantissa & ((1u << shift) - 1u);
  const uint32_t halfway = 1u << (shift - 1);
  if (rest > halfway || (rest == halfway && (half_mantissa & 1u))) ++half_mantissa;  // nearest even
  if (exponent == 0) return sign | static_cast<uint16_t>(half_mantissa);
  // half_mantissa carries the implicit bit; a carry out of it bumps the exponent correctly.
  return sign | static_cast<uint16_t>(((static_cast<uint32_t>(exponent) << 10) + half_mantissa - 0x400u));
}

void half_to_float_row_portable(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = half_to_float(src[i]);
}

void float_to_half_row_portable(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = float_to_half(src[i]);
}

void half_to_float_row(const uint16_t* src, float* dst, int64_t n) {
#if defined(GSMLP_HAVE_AVX2_TU)
  if (cpu_has_avx2_fma()) return half_to_float_row_avx2(src, dst, n);
#endif
  half_to_float_row_portable(src, dst, n);
}

void float_to_half_row(const float* src, uint16_t* dst, int64_t n) {
#if defined(GSMLP_HAVE_AVX2_TU)
  if (cpu_has_avx2_fma()) return float_to_half_row_avx2(src, dst, n);
#endif
  float_to_half_row_portable(src, dst, n);
}

}  // namespace gsmlp::cpu
