#!/usr/bin/env python3
"""Helpers of scripts/gpu_check.sh, standard library only (they must run even where gsmlp failed to build).

  gpu_check_report.py deps                      which of gsmlp's dependencies this Python has (a table)
  gpu_check_report.py summary --work W --out O  writes O/summary.json from the step records in W, prints it

summary.json holds every step (status, exit code, seconds, timeout, command, detail, pytest counts), the
nvcc flags of the build, the benchmark ratios and the targets of issue 16 with the measured values, and the
check of the output folder (at most 8 plain files with plain names: what comes back from a lent machine).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MAX_FILES = 8
NAME_OK = re.compile(r"[A-Za-z0-9._-]+")

# Issue 16's targets: (dtype, bench case name, target block sparsity, minimum speedup over torch's dense FFN).
TARGETS = [
    ("fp16", "deformable", 0.9, 2.5),
    ("fp16", "detr", 0.9, 1.5),
    ("fp16", "deformable", 0.0, 0.9),
    ("fp16", "detr", 0.0, 0.9),
]
SHAPE_TEXT = {"deformable": "Deformable-DETR-R50 20000 x 256 -> 1024", "detr": "DETR-R50 850 x 256 -> 2048"}


def deps() -> int:
    """One line per dependency of pyproject.toml: the version this Python has, or what is missing."""
    import tomllib
    from importlib import metadata

    data = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    requirements = list(data["build-system"]["requires"]) + list(data["project"]["dependencies"])
    try:
        from packaging.requirements import Requirement
    except ImportError:
        Requirement = None
    missing, unmet = [], []
    for text in requirements:
        name = re.split(r"[<>=!~;\[ ]", text, maxsplit=1)[0]
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            print(f"  {text:<28} missing")
            continue
        ok = "?"
        if Requirement is not None:
            ok = "ok" if Requirement(text).specifier.contains(version, prereleases=True) else "UNMET"
            if ok == "UNMET":
                unmet.append(f"{name} {version}")
        print(f"  {text:<28} {version:<14} {ok}")
    try:
        ort = metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:
        ort = None
    note = (
        f"; onnxruntime (CPU) {ort} stands in for onnxruntime-gpu"
        if ort and "onnxruntime-gpu" in missing
        else ""
    )
    print(f"missing: {', '.join(missing) or 'none'}; unmet: {', '.join(unmet) or 'none'}{note}")
    return 0


def read_steps(work: Path) -> list[dict]:
    steps = []
    path = work / "steps.tsv"
    if not path.is_file():
        return steps
    for line in path.read_text(encoding="utf-8").splitlines():
        name, status, rc, seconds, timeout, detail, command = (line.split("\t") + [""] * 7)[:7]
        step = {
            "name": name,
            "status": status,
            "rc": int(rc) if rc.lstrip("-").isdigit() else None,
            "seconds": int(seconds) if seconds.isdigit() else None,
            "timeout_s": int(timeout) if timeout.isdigit() else None,
            "detail": detail,
            "command": command,
        }
        junit = work / f"{name}.xml"
        if junit.is_file():
            step["tests"] = junit_counts(junit)
        steps.append(step)
    return steps


def junit_counts(path: Path) -> dict:
    """passed / failed / errors / skipped of a pytest --junitxml file, with the skip reasons."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        return {"error": f"{path.name}: {exc}"}
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    reasons: dict[str, int] = {}
    for case in root.iter("testcase"):
        if case.find("failure") is not None:
            counts["failed"] += 1
        elif case.find("error") is not None:
            counts["errors"] += 1
        elif (skipped := case.find("skipped")) is not None:
            counts["skipped"] += 1
            reason = (skipped.get("message") or "").strip()
            reasons[reason] = reasons.get(reason, 0) + 1
        else:
            counts["passed"] += 1
    counts["skip_reasons"] = reasons
    return counts


def bench_cases(out: Path, dtype: str) -> list[dict] | None:
    path = out / f"bench_{dtype}.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return [{"error": f"{path.name}: {exc}"}]
    keys = ("name", "tokens", "hidden", "target_sparsity", "sparsity", "dense_ms", "sparse_ms", "speedup")
    return [{k: case.get(k) for k in keys} for case in data.get("cases", [])]


def evaluate_targets(bench: dict[str, list[dict] | None]) -> list[dict]:
    results = []
    for dtype, shape, sparsity, minimum in TARGETS:
        entry = {
            "what": f"{dtype} speedup over torch dense at block sparsity {sparsity:g}, {SHAPE_TEXT[shape]}",
            "need": f">= {minimum}",
            "measured": None,
            "met": None,
        }
        for case in bench.get(dtype) or []:
            if case.get("name") == shape and case.get("target_sparsity") == sparsity:
                entry["measured"] = case.get("speedup")
                entry["met"] = case.get("speedup") is not None and case["speedup"] >= minimum
        results.append(entry)
    return results


def build_flags(out: Path) -> str | None:
    """The nvcc command line that compiled grouped_gemm.cu, from the verbose build log."""
    log = out / "build.log"
    if not log.is_file():
        return None
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if "nvcc" in line and "grouped_gemm.cu" in line and " -c " in line:
            return re.sub(r"^.*?(\S*nvcc\s)", r"\1", line).strip()
    return None


def check_out_folder(out: Path) -> dict:
    entries = sorted(out.iterdir()) if out.is_dir() else []
    problems = [f"{e.name}: not a plain file" for e in entries if not e.is_file() or e.is_symlink()]
    problems += [
        f"{e.name}: name has characters other than letters, digits, '.', '_', '-'"
        for e in entries
        if not NAME_OK.fullmatch(e.name)
    ]
    if len(entries) > MAX_FILES:
        problems.append(f"{len(entries)} entries; at most {MAX_FILES} files come back")
    return {"files": [e.name for e in entries], "ok": not problems, "problems": problems}


def overall(steps: list[dict], dry_run: bool) -> str:
    """fail: a step failed or timed out; incomplete: a step was cut for want of time or (a real run) did not
    run; pass otherwise. A dry run skips by design what needs a GPU, so its other skips do not count."""
    statuses = [s["status"] for s in steps]
    if not statuses or any(s in ("fail", "timeout") for s in statuses):
        return "fail"
    if any(s["status"] == "skipped" and s["detail"].startswith("no time left") for s in steps):
        return "incomplete"
    if not dry_run and any(s in ("skipped", "unsupported") for s in statuses):
        return "incomplete"
    return "pass"


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def summary(args: argparse.Namespace) -> int:
    work, out = Path(args.work), Path(args.out)
    steps = read_steps(work)
    dry_run = args.mode == "dry-run"
    bench = {dtype: bench_cases(out, dtype) for dtype in ("fp16", "fp32")}
    targets = evaluate_targets(bench)
    measured = [t["met"] for t in targets if t["met"] is not None]
    machine = {}
    if (work / "machine.json").is_file():
        try:
            machine = json.loads((work / "machine.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            machine = {"error": f"machine.json: {exc}"}
    now = datetime.now(UTC)
    report = {
        "tool": "scripts/gpu_check.sh",
        "mode": args.mode,
        "finished": args.final,
        "started_utc": datetime.fromtimestamp(args.started, UTC).isoformat(timespec="seconds"),
        "written_utc": now.isoformat(timespec="seconds"),
        "wall_s": round(now.timestamp() - args.started),
        "budget_s": args.budget,
        "arch": args.arch,
        "commit": args.commit,
        "machine": machine,
        "overall": overall(steps, dry_run),
        "targets_met": (all(measured) if len(measured) == len(targets) else None) if not dry_run else None,
        "steps": steps,
        "build_flags": build_flags(out),
        "bench": bench,
        "targets": targets,
    }
    folder = check_out_folder(out)
    folder["files"] = sorted(set(folder["files"]) | {"summary.json"})
    report["out_folder"] = folder
    if not folder["ok"]:
        report["overall"] = "fail"
    write_atomic(out / "summary.json", json.dumps(report, indent=2) + "\n")
    if args.final:
        print_report(report)
    return 0


def print_report(report: dict) -> None:
    print(
        f"gpu_check {report['mode']}: {report['overall'].upper()} in {report['wall_s']} s "
        f"(budget {report['budget_s']} s), arch sm_{report['arch']}"
    )
    for step in report["steps"]:
        tests = step.get("tests")
        counted = ""
        if tests and "passed" in tests:
            counted = (
                f" [{tests['passed']} passed, {tests['failed']} failed, {tests['errors']} errors, "
                f"{tests['skipped']} skipped]"
            )
        seconds = "" if step["seconds"] is None else f"{step['seconds']:>4d} s"
        print(f"  {step['name']:<12} {step['status']:<12} {seconds:>6}  {step['detail']}{counted}")
    for target in report["targets"]:
        if target["measured"] is not None:
            verdict = "met" if target["met"] else "MISSED"
            print(f"  target {target['what']}: {target['measured']}x (need {target['need']}) {verdict}")
    for dtype, cases in report["bench"].items():
        for case in cases or []:
            if "speedup" in case:
                print(
                    f"  bench {dtype} {case['name']:<10} sparsity {case['sparsity']:.3f}: dense "
                    f"{case['dense_ms']} ms, sparse {case['sparse_ms']} ms, {case['speedup']}x"
                )
    folder = report["out_folder"]
    print(
        f"  output folder: {len(folder['files'])} files ({', '.join(folder['files'])})"
        + ("" if folder["ok"] else f"; PROBLEMS: {'; '.join(folder['problems'])}")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("deps", help="which of gsmlp's dependencies this Python has")
    s = sub.add_parser("summary", help="write OUT/summary.json from the step records")
    s.add_argument(
        "--work", required=True, help="the run's work folder (steps.tsv, pytest XML, machine.json)"
    )
    s.add_argument("--out", required=True, help="the output folder")
    s.add_argument("--mode", choices=("run", "dry-run"), required=True)
    s.add_argument("--started", type=float, required=True, help="start time, seconds since the epoch")
    s.add_argument("--budget", type=int, required=True)
    s.add_argument("--arch", required=True)
    s.add_argument("--commit", default=None)
    s.add_argument("--final", action="store_true", help="the last write: also print the report")
    args = parser.parse_args(argv)
    return deps() if args.command == "deps" else summary(args)


if __name__ == "__main__":
    sys.exit(main())
