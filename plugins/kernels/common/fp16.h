// IEEE binary16 <-> fp32 (round to nearest even), for every op's fp16 data: scalars, and whole rows (F16C
// where the CPU has it, cpu_isa.h).
#pragma once

#include <cstdint>

namespace gsmlp::cpu {

float half_to_float(uint16_t h);
uint16_t float_to_half(float f);

void half_to_float_row(const uint16_t* src, float* dst, int64_t n);
void float_to_half_row(const float* src, uint16_t* dst, int64_t n);
void half_to_float_row_portable(const uint16_t* src, float* dst, int64_t n);
void float_to_half_row_portable(const float* src, uint16_t* dst, int64_t n);
void half_to_float_row_avx2(const uint16_t* src, float* dst, int64_t n);  // call only where cpu_has_avx2_fma()
void float_to_half_row_avx2(const float* src, uint16_t* dst, int64_t n);

}  // namespace gsmlp::cpu
