// The CPU code paths this CPU can run, decided once at run time. Every op's x86 micro-kernels sit in files
// of their own compiled with -mavx2 -mfma -mf16c or -mavx512f, and are called only where these say so, so the
// library still loads and runs (the portable path) on a CPU without AVX2. GSMLP_CPU_ISA=avx2 or =portable
// forces a lesser path, so that tests cover each one and benchmarks compare them.
#pragma once

namespace gsmlp::cpu {

bool cpu_has_avx2_fma();  // AVX2, FMA and F16C
bool cpu_has_avx512();    // AVX-512F with the OS saving its registers, and AVX2+FMA+F16C

}  // namespace gsmlp::cpu
