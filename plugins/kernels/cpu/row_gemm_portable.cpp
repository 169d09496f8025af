// Portable C++ row GEMM and fp16 conversion: the fallback on CPUs without AVX2/FMA/F16C, and the
// run-time dispatch between the two implementations.
#include <cstdlib>
#include <cstring>

#include "row_gemm.h"

namespace gsmlp::cpu {
namespace {
bool forced(const char* isa) {
  const char* wanted = std::getenv("GSMLP_CPU_ISA");
  return wanted && std::strcmp(wanted, isa) == 0;
}
bool forced_portable() { return forced("portable"); }
}  // namespace

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

bool cpu_has_avx2_fma() {
#if defined(__x86_64__) || defined(__i386__)
  // GSMLP_CPU_ISA=portable forces the fallback, so that tests cover it on AVX2 machines too.
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                                __builtin_cpu_supports("f16c") && !forced_portable();
  return supported;
#else
  return false;
#endif
}

bool cpu_has_avx512() {
#if defined(GSMLP_HAVE_AVX512_TU)
  // GSMLP_CPU_ISA=avx2 keeps the AVX2 kernel on AVX-512 machines (tests cover both; benchmarks compare).
  // __builtin_cpu_supports also checks that the OS saves the zmm registers (XCR0).
  static const bool supported = cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f") && !forced("avx2");
  return supported;
#else
  return false;
#endif
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

namespace {

float half_bits_to_float(uint16_t h) {
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

uint16_t float_to_half_bits(float f) {
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

}  // namespace

void half_to_float_row_portable(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = half_bits_to_float(src[i]);
}

void float_to_half_row_portable(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = float_to_half_bits(src[i]);
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
