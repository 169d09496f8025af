"""gsmlp.runtime.ort_session without the op library's own kernels: where the library is looked for, what
gsmlp says when it is not built, and that an install with the headers really built it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from gsmlp.cli import main
from gsmlp.errors import GsmlpError
from gsmlp.runtime import ort_session


def test_an_install_with_the_headers_built_the_library() -> None:
    # CI sets GSMLP_ONNXRUNTIME_INCLUDE (.ci/run): then the library must exist, or its tests would all skip.
    include = os.environ.get("GSMLP_ONNXRUNTIME_INCLUDE")
    if not include or not (Path(include) / "onnxruntime_c_api.h").is_file():
        pytest.skip("GSMLP_ONNXRUNTIME_INCLUDE does not name the ONNX Runtime C API headers here")
    assert ort_session.op_library() is not None, ort_session.why_no_library()


def test_the_environment_variable_names_another_library(tmp_path: Path, monkeypatch) -> None:
    installed = ort_session.op_library()
    if installed is None:
        pytest.skip(ort_session.why_no_library())
    library = tmp_path / ort_session.LIBRARY_NAME
    shutil.copyfile(installed, library)
    monkeypatch.setenv(ort_session.ENV_VAR, str(library))
    assert ort_session.library_candidates() == [library]
    assert ort_session.op_library() == library


@pytest.mark.parametrize("content", [None, b"", b"not a library\n", b"\x7fELF" + bytes(12) + b"\x02\x00"])
def test_a_named_library_is_used_or_refused_never_replaced(tmp_path: Path, monkeypatch, content) -> None:
    """Missing, empty, text, an ELF executable: refused naming the variable; the installed library is
    never used in its place."""
    library = tmp_path / "libmine.so"
    if content is not None:
        library.write_bytes(content)
    monkeypatch.setenv(ort_session.ENV_VAR, str(library))
    with pytest.raises(GsmlpError, match=f"GSMLP_ONNXRUNTIME_OPS_LIBRARY {library}"):
        ort_session.open_session(b"", op="auto")


def test_without_the_library_gsmlp_says_how_to_build_it(monkeypatch, capsys) -> None:
    monkeypatch.setattr(ort_session, "op_library", lambda: None)
    status = ort_session.library_status()
    assert "is not built" in status and "GSMLP_ONNXRUNTIME_INCLUDE" in status and "function body" in status
    assert main(["info", "--model", "detr-small"]) == 0
    assert "GSMLP_ONNXRUNTIME_INCLUDE" in capsys.readouterr().out


def test_info_names_the_built_library(capsys) -> None:
    library = ort_session.op_library()
    if library is None:
        pytest.skip(ort_session.why_no_library())
    assert main(["info", "--model", "detr-small"]) == 0
    assert f"gsmlp ONNX Runtime op library: {library}" in capsys.readouterr().out
