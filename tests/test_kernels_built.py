"""Where a C++ compiler is present, the install must have built and loaded the compiled libraries.

Without this test a failed build would turn every kernel test into a skip ("no kernel library") and the
suite would still pass.
"""

from __future__ import annotations

import shutil

import pytest

from gsmlp import kernels

COMPILERS = ("c++", "g++", "clang++")
compiler = next((shutil.which(name) for name in COMPILERS if shutil.which(name)), None)


@pytest.mark.skipif(compiler is None, reason="no C++ compiler here: gsmlp installs without its kernels")
def test_the_kernel_library_was_built_and_loads() -> None:
    assert kernels.available(), f"{compiler} is here, yet {kernels.why_not_loaded()}"
    assert kernels.cpu_isa() in ("avx512f", "avx2-fma", "portable")
