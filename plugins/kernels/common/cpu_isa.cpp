#include "cpu_isa.h"

#include <cstdlib>
#include <cstring>

#include "gsmlp/common.h"

namespace gsmlp::cpu {
namespace {
bool forced(const char* isa) {
  const char* wanted = std::getenv("GSMLP_CPU_ISA");
  return wanted && std::strcmp(wanted, isa) == 0;
}
}  // namespace

bool cpu_has_avx2_fma() {
#if defined(GSMLP_HAVE_AVX2_TU)
  // GSMLP_CPU_ISA=portable forces the fallback, so that tests cover it on AVX2 machines too.
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                                __builtin_cpu_supports("f16c") && !forced("portable");
  return supported;
#else
  return false;
#endif
}

bool cpu_has_avx512() {
#if defined(GSMLP_HAVE_AVX512_TU)
  // GSMLP_CPU_ISA=avx2 keeps the AVX2 kernels on AVX-512 machines (tests cover both; benchmarks compare).
  // __builtin_cpu_supports also checks that the OS saves the zmm registers (XCR0).
  static const bool supported = cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f") && !forced("avx2");
  return supported;
#else
  return false;
#endif
}

}  // namespace gsmlp::cpu

extern "C" const char* gsmlp_cpu_isa(void) {
  if (gsmlp::cpu::cpu_has_avx512()) return "avx512f";
  if (gsmlp::cpu::cpu_has_avx2_fma()) return "avx2-fma";
  return "portable";
}
