// The inner loop of the CPU kernel: one (query, head)'s corners applied to all D channels at once.
//
//   acc[c] = sum_k corners[k].weight * value[corners[k].offset + c]      for c < d
//
// Each corner's position and weight are computed once (forward_cpu.cpp) and then read for every channel, so
// the channels are a plain multiply-add over contiguous rows of `value`: AVX-512F, AVX2+FMA+F16C and portable
// implementations, chosen at run time (common/cpu_isa.h; GSMLP_CPU_ISA forces a lesser one).
#pragma once

#include <cstdint>

namespace gsmlp::msda::cpu {

struct Corner {
  int64_t offset;  // element offset of the corner's D channels in value
  float weight;    // bilinear corner weight x attention weight
};

// `value` is float (fp32) or uint16_t (fp16 bits); `acc` is d floats, written (not added to).
using AccumulateFn = void (*)(const Corner* corners, int64_t count, const void* value, int64_t d, float* acc);

void accumulate_fp32_portable(const Corner* corners, int64_t count, const void* value, int64_t d, float* acc);
void accumulate_fp16_portable(const Corner* corners, int64_t count, const void* value, int64_t d, float* acc);
void accumulate_fp32_avx2(const Corner* corners, int64_t count, const void* value, int64_t d, float* acc);
void accumulate_fp16_avx2(const Corner* corners, int64_t count, const void* value, int64_t d, float* acc);
void accumulate_fp32_avx512(const Corner* corners, int64_t count, const void* value, int64_t d, float* acc);
void accumulate_fp16_avx512(const Corner* corners, int64_t count, const void* value, int64_t d, float* acc);

// The best implementation for this CPU and dtype.
AccumulateFn best_accumulate(bool fp16);

}  // namespace gsmlp::msda::cpu
