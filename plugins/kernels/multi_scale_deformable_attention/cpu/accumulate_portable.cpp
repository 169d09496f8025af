// Portable C++ channel loop (the fallback on CPUs without AVX2/FMA/F16C) and the run-time choice.
#include "accumulate.h"

#include "common/cpu_isa.h"
#include "common/fp16.h"

namespace gsmlp::msda::cpu {
namespace {

template <typename T, typename Load>
void accumulate(const Corner* corners, int64_t count, const void* value, int64_t d, float* acc, Load load) {
  for (int64_t c = 0; c < d; ++c) acc[c] = 0.0f;
  const T* base = static_cast<const T*>(value);
  for (int64_t k = 0; k < count; ++k) {
    const T* row = base + corners[k].offset;
    const float w = corners[k].weight;
    for (int64_t c = 0; c < d; ++c) acc[c] += w * load(row[c]);
  }
}

}  // namespace

void accumulate_fp32_portable(const Corner* corners, int64_t count, const void* value, int64_t d, float* acc) {
  accumulate<float>(corners, count, value, d, acc, [](float v) { return v; });
}

void accumulate_fp16_portable(const Corner* corners, int64_t count, const void* value, int64_t d, float* acc) {
  accumulate<uint16_t>(corners, count, value, d, acc, [](uint16_t v) { return gsmlp::cpu::half_to_float(v); });
}

AccumulateFn best_accumulate(bool fp16) {
#if defined(GSMLP_HAVE_AVX512_TU)
  if (gsmlp::cpu::cpu_has_avx512()) return fp16 ? accumulate_fp16_avx512 : accumulate_fp32_avx512;
#endif
#if defined(GSMLP_HAVE_AVX2_TU)
  if (gsmlp::cpu::cpu_has_avx2_fma()) return fp16 ? accumulate_fp16_avx2 : accumulate_fp32_avx2;
#endif
  return fp16 ? accumulate_fp16_portable : accumulate_fp32_portable;
}

}  // namespace gsmlp::msda::cpu
