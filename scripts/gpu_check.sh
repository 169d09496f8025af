#!/usr/bin/env bash
# One prepared command that checks every CUDA piece of gsmlp on a lent GPU machine, within a time budget,
# and writes everything into one folder of at most 8 files. `scripts/gpu_check.sh --help` explains it;
# docs/VERIFICATION.md ("GPU check") says how to run it and what comes back.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPORT_PY="$REPO_ROOT/scripts/gpu_check_report.py"

usage() {
  cat <<'EOF'
usage: scripts/gpu_check.sh [--dry-run] [--python PYTHON] [--arch ARCH] [--budget SECONDS] [OUTDIR]

Checks gsmlp's CUDA pieces on a CUDA machine with its own torch (it installs no torch), in this order:
  env         nvidia-smi, nvcc, compute-sanitizer, cmake, ninja, python, torch and pip list -> env.txt
  setup       a throwaway venv layered over PYTHON's packages; the wheels in .whl/ installed into it
              (scripts/gpu_wheels.py makes them); gsmlp's dependencies listed against it
  build       pip install -e . without build isolation: the kernel library with CUDA for ARCH, plus
              gsmlp_cuda_selfcheck (torch-free), nvcc command lines in build.log
  selfcheck   gsmlp_cuda_selfcheck: both ops' CUDA kernels (GatedSparseMLP, MultiScaleDeformableAttention) called
              as the TensorRT plugins' enqueue calls them, against double-precision references
  cuda_tests  pytest tests/test_kernels_cuda.py (both torch ops on the GPU)
  bench_fp16  gsmlp bench ffn --device cuda --dtype fp16: both R50 shapes against torch's cuBLAS FFN
  memcheck    compute-sanitizer --tool memcheck on gsmlp_cuda_selfcheck (where the runtime supports it; it
              includes a MultiScaleDeformableAttention level table that must read nothing outside value)
  racecheck   compute-sanitizer --tool racecheck on the same
  bench_fp32  the benchmark in fp32
  ort_tests   the CPU ONNX Runtime op tests: every tests/test_ort_*.py present, and tests/test_export_op.py

Each step runs under `timeout` with the smaller of its own cap and what is left of the budget; a step that
finds under 10 s left is skipped and says so. summary.json is rewritten after every step, so a run cut
short still reports what it did.

Output (OUTDIR, default $OUT; it must be empty or new): summary.json, run.log, env.txt, build.log,
tests.log, sanitizer.log, bench_fp16.json, bench_fp32.json.

Options:
  --dry-run          on a machine without a GPU: check this script's logic. Runs env and setup for real,
                     configures the CUDA build with CMake (no compile), collects the pytest selections,
                     has `gsmlp bench ffn` parse the exact arguments (it must refuse for want of a GPU),
                     looks for compute-sanitizer, and writes the same summary.
  --python PYTHON    the interpreter whose packages (torch, onnxruntime, ...) are used (default python3;
                     on a dev machine: .venv/bin/python)
  --arch ARCH        CUDA architecture to build for (default: the GPU's compute capability, "90a" on a
                     Hopper GPU (H100, H200); "90a" in a dry run)
  --budget SECONDS   wall-time budget of the whole run, build included (default 480)

Exit status: 0 every step passed and every issue-16 target was met (a dry run: every check passed);
1 otherwise (summary.json says which); 2 bad usage.

Example (on the lent machine, from the repository root, wheels carried in .whl/):
  scripts/gpu_check.sh "$OUT"
EOF
}

die_usage() {
  echo "gpu_check.sh: $*" >&2
  echo "(scripts/gpu_check.sh --help explains the options)" >&2
  exit 2
}

DRY_RUN=0
BASE_PYTHON=python3
ARCH=""
BUDGET=480
OUTDIR="${OUT:-}"
while (($#)); do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --python) [[ $# -ge 2 ]] || die_usage "--python needs a value"; BASE_PYTHON=$2; shift ;;
    --arch) [[ $# -ge 2 ]] || die_usage "--arch needs a value"; ARCH=$2; shift ;;
    --budget) [[ $# -ge 2 ]] || die_usage "--budget needs a value"; BUDGET=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) die_usage "unknown option $1" ;;
    *) OUTDIR=$1 ;;
  esac
  shift
done

[[ -n "$OUTDIR" ]] || die_usage "give an output folder (or set OUT)"
if ! [[ "$BUDGET" =~ ^[0-9]+$ ]] || ((BUDGET < 20 || BUDGET > 3600)); then
  die_usage "--budget $BUDGET: give whole seconds from 20 to 3600"
fi
[[ -z "$ARCH" || "$ARCH" =~ ^[0-9]{2,3}[af]?$ ]] ||
  die_usage "--arch $ARCH: give a CUDA architecture such as 90a, 90 or 80"
BASE_PYTHON_PATH="$(command -v "$BASE_PYTHON" || true)"
[[ -n "$BASE_PYTHON_PATH" ]] || die_usage "--python $BASE_PYTHON: no such interpreter"
if [[ -e "$OUTDIR" && ! -d "$OUTDIR" ]]; then
  die_usage "output folder $OUTDIR exists and is not a folder"
fi
mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"
EXISTING="$(find "$OUTDIR" -mindepth 1 -maxdepth 1 -printf '%f ' | cut -c1-200)"
if [[ -n "$EXISTING" ]]; then
  die_usage "output folder $OUTDIR is not empty (${EXISTING% }): give an empty or new one"
fi
cd "$REPO_ROOT"

START=$(date +%s)
RESERVE_S=15  # kept back for the last summary
DEADLINE=$((START + BUDGET - RESERVE_S))
MIN_STEP_S=10
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gsmlp-gpu-check.XXXXXX")"
RUN_LOG="$OUTDIR/run.log"
MODE=run
((DRY_RUN)) && MODE=dry-run
COMMIT="$(git -C "$REPO_ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
: >"$WORK/steps.tsv"
touch "$RUN_LOG" "$OUTDIR/env.txt" "$OUTDIR/build.log" "$OUTDIR/tests.log" "$OUTDIR/sanitizer.log"

log() {
  printf '[gpu_check %4ds] %s\n' "$(($(date +%s) - START))" "$*" | tee -a "$RUN_LOG"
}

write_summary() {  # write_summary [--final]
  local arch_text=${ARCH:-unknown}
  if ! "$BASE_PYTHON_PATH" "$REPORT_PY" summary --work "$WORK" --out "$OUTDIR" --mode "$MODE" --started "$START" \
    --budget "$BUDGET" --arch "$arch_text" --commit "$COMMIT" "$@" 2>&1 | tee -a "$RUN_LOG"; then
    log "gpu_check_report.py could not write summary.json (the lines above say why); writing a minimal one"
    printf '{"tool": "scripts/gpu_check.sh", "mode": "%s", "overall": "fail", "error": "%s"}\n' "$MODE" \
      "gpu_check_report.py failed; the steps are in run.log" >"$OUTDIR/summary.json"
  fi
}

# record NAME STATUS DETAIL: one line of steps.tsv from the last run_step, then a fresh summary.json.
record() {
  local detail=${3//$'\t'/ }
  detail=${detail//$'\n'/ }
  local command=${STEP_COMMAND//$'\t'/ }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$STEP_RC" "$STEP_SECONDS" "$STEP_TIMEOUT" "$detail" \
    "${command//$'\n'/ }" >>"$WORK/steps.tsv"
  log "$1: $2${detail:+ - $detail}"
  write_summary
}

STEP_RC=""
STEP_SECONDS=""
STEP_TIMEOUT=""
STEP_COMMAND=""
# run_step NAME CAP LOGFILE COMMAND...: runs COMMAND under timeout (the smaller of CAP and what is left of
# the budget), appending its output to LOGFILE. Sets STEP_RC (-1: not started, no time left), STEP_SECONDS.
run_step() {
  local name=$1 cap=$2 logfile=$3
  shift 3
  local left=$((DEADLINE - $(date +%s)))
  STEP_TIMEOUT=$((cap < left ? cap : left))
  STEP_COMMAND="$*"
  STEP_SECONDS=0
  if ((STEP_TIMEOUT < MIN_STEP_S)); then
    STEP_RC=-1
    return 0
  fi
  log "$name: $* (timeout ${STEP_TIMEOUT}s)"
  printf '\n=== %s (timeout %ss): %s\n' "$name" "$STEP_TIMEOUT" "$*" >>"$logfile"
  local t0
  t0=$(date +%s)
  STEP_RC=0
  timeout --kill-after=5 "$STEP_TIMEOUT" "$@" >>"$logfile" 2>&1 || STEP_RC=$?
  STEP_SECONDS=$(($(date +%s) - t0))
  printf '=== %s: exit %s after %ss\n' "$name" "$STEP_RC" "$STEP_SECONDS" >>"$logfile"
}

# The status of the last run_step by exit code alone: pass, timeout, skipped or fail.
plain_status() {
  case "$STEP_RC" in
    0) echo pass ;;
    -1) echo skipped ;;
    124 | 137) echo timeout ;;
    *) echo fail ;;
  esac
}

# no_time NAME: record NAME as skipped for want of time, if the last run_step did not start.
no_time() {
  if [[ "$STEP_RC" == -1 ]]; then
    record "$1" skipped "no time left in the ${BUDGET}s budget"
    return 0
  fi
  return 1
}

# not_built NAME COMMAND: record NAME as skipped when the CUDA build failed (COMMAND did not run).
not_built() {
  ((BUILD_OK)) && return 1
  STEP_RC=-1 STEP_SECONDS=0 STEP_TIMEOUT="" STEP_COMMAND="$2"
  record "$1" skipped "no CUDA build"
  return 0
}

COMPLETED=0
# shellcheck disable=SC2329  # invoked by the EXIT trap
finish() {
  local rc=$?
  trap - EXIT INT TERM
  if ((!COMPLETED)); then
    STEP_RC=$rc STEP_SECONDS=0 STEP_TIMEOUT="" STEP_COMMAND="scripts/gpu_check.sh"
    record script fail "stopped early with exit $rc (an interrupt, or a bug of this script: run.log)"
  fi
  write_summary --final
  rm -rf "$WORK"
  if ((!COMPLETED)); then
    exit 1
  fi
  if "$BASE_PYTHON_PATH" - "$OUTDIR/summary.json" "$MODE" <<'EOF'; then exit 0; else exit 1; fi
import json, sys
report = json.load(open(sys.argv[1], encoding="utf-8"))
ok = report["overall"] == "pass" and (sys.argv[2] == "dry-run" or report["targets_met"] is True)
sys.exit(0 if ok else 1)
EOF
}
trap finish EXIT
trap 'log "interrupted"; exit 130' INT TERM

log "gsmlp GPU check, mode $MODE, budget ${BUDGET}s, output $OUTDIR, commit $COMMIT"

# ---------------------------------------------------------------- tools
find_nvcc() {
  local candidate
  for candidate in "$(command -v nvcc || true)" "${CUDA_HOME:-}/bin/nvcc" "${CUDA_PATH:-}/bin/nvcc" \
    /usr/local/cuda/bin/nvcc; do
    if [[ -n "$candidate" && -x "$candidate" ]]; then
      echo "$candidate"
      return 0
    fi
  done
  return 0
}
NVCC="$(find_nvcc)"
CUDA_BIN="${NVCC:+$(dirname "$NVCC")}"
find_sanitizer() {
  local candidate
  for candidate in "$(command -v compute-sanitizer || true)" "${CUDA_BIN:+$CUDA_BIN/compute-sanitizer}" \
    "${CUDA_BIN:+$CUDA_BIN/../compute-sanitizer/compute-sanitizer}" \
    /usr/local/cuda/compute-sanitizer/compute-sanitizer /usr/local/cuda/bin/compute-sanitizer; do
    if [[ -n "$candidate" && -x "$candidate" ]]; then
      echo "$candidate"
      return 0
    fi
  done
  return 0
}
SANITIZER="$(find_sanitizer)"
if [[ -n "$CUDA_BIN" ]]; then
  export PATH="$CUDA_BIN:$PATH"  # test_kernels_cuda.py asserts a CUDA build wherever nvcc is on PATH
fi

# ---------------------------------------------------------------- env
# shellcheck disable=SC2329  # run as `bash -c env_report` (exported)
env_report() {
  section() { printf '\n== %s\n' "$1"; }
  section "date (UTC)"; date -u
  section "uname -a"; uname -a
  section "nproc, memory"; nproc; free -g 2>/dev/null || true
  section "nvidia-smi"; timeout 15 nvidia-smi 2>&1 || echo "(nvidia-smi absent or failed)"
  section "nvidia-smi --query-gpu"
  timeout 15 nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit \
    --format=csv 2>&1 || echo "(nvidia-smi absent or failed)"
  section "nvcc ($NVCC)"; if [[ -n "$NVCC" ]]; then "$NVCC" --version; else echo "(no nvcc found)"; fi
  section "compute-sanitizer (${SANITIZER:-none})"
  if [[ -n "$SANITIZER" ]]; then timeout 10 "$SANITIZER" --version 2>&1 || true; else echo "(not found)"; fi
  section "cmake, ninja"; cmake --version 2>&1 | head -n 1 || echo "(no cmake)"; ninja --version 2>&1 || echo "(no ninja)"
  section "python ($BASE_PYTHON_PATH)"
  timeout 30 "$BASE_PYTHON_PATH" - "$WORK/machine.json" <<'EOF' 2>&1 || echo "(torch did not import)"
import json, platform, sys
import torch
facts = {"python": platform.python_version(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
         "cuda_available": torch.cuda.is_available()}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    facts.update(gpu=p.name, capability=f"{p.major}.{p.minor}", multiprocessors=p.multi_processor_count,
                 memory_gib=round(p.total_memory / 2**30, 1))
print(json.dumps(facts))
json.dump(facts, open(sys.argv[1], "w"))
EOF
  section "pip list"; timeout 20 "$BASE_PYTHON_PATH" -m pip list --format=freeze 2>&1 || echo "(pip list failed)"
  section "git"; git -C "$REPO_ROOT" rev-parse HEAD 2>&1 || echo "(no git metadata)"
  git -C "$REPO_ROOT" status --short 2>&1 | head -n 40 || true
}
# The env and setup steps are shell functions: they run in a child bash under timeout like every other step.
export NVCC SANITIZER BASE_PYTHON_PATH WORK REPO_ROOT REPORT_PY DRY_RUN
export -f env_report
run_step env 60 "$OUTDIR/env.txt" bash -c env_report
GPU_LINE="$(timeout 15 nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader 2>/dev/null | head -n 1 || true)"
if [[ -z "$ARCH" ]]; then
  if ((DRY_RUN)); then
    ARCH=90a
  elif [[ "$GPU_LINE" =~ ,\ *([0-9]+)\.([0-9]+) ]]; then
    ARCH="${BASH_REMATCH[1]}${BASH_REMATCH[2]}"
    [[ "$ARCH" == 90 ]] && ARCH=90a  # Hopper: arch-specific features (sm_90a), as the issue asks
  else
    ARCH=90a
    log "no GPU compute capability from nvidia-smi: building for sm_90a"
  fi
fi
if no_time env; then
  :
elif [[ "$STEP_RC" != 0 ]]; then
  record env "$(plain_status)" "the environment report did not finish (env.txt)"
elif ((DRY_RUN)); then
  record env pass "dry run: env.txt written; GPU: ${GPU_LINE:-none (expected without a GPU)}; nvcc ${NVCC:-absent}"
elif [[ -n "$GPU_LINE" ]] && grep -q '"cuda_available": true' "$WORK/machine.json" 2>/dev/null; then
  record env pass "GPU $GPU_LINE; building for sm_$ARCH; nvcc $NVCC; compute-sanitizer ${SANITIZER:-absent}"
else
  record env fail "no CUDA GPU visible (nvidia-smi: ${GPU_LINE:-nothing}; torch: $(cat "$WORK/machine.json" 2>/dev/null || echo 'did not import'))"
fi

# ---------------------------------------------------------------- setup
# A venv of our own whose site-packages come first, then every site folder of BASE_PYTHON (processed with
# their .pth files): the image's torch stays in use, and nothing is installed into the image's environment.
VENV="$WORK/venv"
VPY="$VENV/bin/python"
# shellcheck disable=SC2329  # run as `bash -c setup_venv` (exported)
setup_venv() {
  "$BASE_PYTHON_PATH" -m venv --without-pip "$VENV" || return 1
  local site
  site="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || return 1
  "$BASE_PYTHON_PATH" - "$site/_gsmlp_base_site.pth" <<'EOF' || return 1
import site, sys
folders = [p for p in site.getsitepackages() if p]
user = site.getusersitepackages() if site.ENABLE_USER_SITE else None
lines = [f"import site; site.addsitedir({p!r})" for p in folders + ([user] if user else [])]
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
print("layered over: " + ", ".join(folders))
EOF
  "$VPY" -c 'import pip, torch; print("venv python", __import__("sys").version.split()[0], "sees torch", torch.__version__)' || return 1
  shopt -s nullglob
  local wheels=("$REPO_ROOT"/.whl/*.whl)
  shopt -u nullglob
  if ((!${#wheels[@]})); then
    echo "no wheels in .whl/ (make them with: .venv/bin/python scripts/gpu_wheels.py, then carry .whl)"
  elif ((DRY_RUN)); then
    # This interpreter may not be the lent machine's CPython 3.12: judge the wheels by that machine's tags.
    echo "checking carried wheels (cp312 manylinux x86_64 tags, --target): ${wheels[*]##*/}"
    "$VPY" -m pip install --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/wheel-check" \
      --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      "${wheels[@]}" || return 1
  else
    if [[ -f "$REPO_ROOT/.whl/MANIFEST.txt" ]]; then cat "$REPO_ROOT/.whl/MANIFEST.txt"; fi
    echo "installing carried wheels: ${wheels[*]##*/}"
    "$VPY" -m pip install --no-index --no-deps --no-compile --no-cache-dir "${wheels[@]}" || return 1
  fi
  echo "gsmlp's dependencies as this venv sees them:"
  "$VPY" "$REPORT_PY" deps
}
export VENV VPY
export -f setup_venv
run_step setup 60 "$RUN_LOG" bash -c setup_venv
WHEEL_NOTE="$(grep -E '^(installing carried wheels|checking carried wheels|no wheels in)' "$RUN_LOG" | tail -n 1 || true)"
DEPS_NOTE="$(grep -E '^missing: ' "$RUN_LOG" | tail -n 1 || true)"
if no_time setup; then
  :
elif [[ "$STEP_RC" == 0 ]]; then
  record setup pass "$WHEEL_NOTE; $DEPS_NOTE"
else
  record setup "$(plain_status)" "exit $STEP_RC: the venv over $BASE_PYTHON_PATH or the wheel install failed (run.log)"
fi
SETUP_OK=$([[ "$STEP_RC" == 0 ]] && echo 1 || echo 0)

# ---------------------------------------------------------------- build
BUILD_DIR="build/gpu-check"
SELFCHECK="$REPO_ROOT/$BUILD_DIR/plugins/kernels/gsmlp_cuda_selfcheck"
CMAKE_DEFINES="GSMLP_CUDA_ARCHITECTURES=$ARCH;GSMLP_BUILD_CUDA_SELFCHECK=ON"
BUILD_OK=0
if [[ -z "$NVCC" ]]; then
  STEP_RC=-1 STEP_SECONDS=0 STEP_TIMEOUT="" STEP_COMMAND=""
  record build "$( ((DRY_RUN)) && echo skipped || echo fail)" "no nvcc found (PATH, \$CUDA_HOME/bin, /usr/local/cuda/bin)"
elif ((DRY_RUN)); then
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  run_step build 120 "$OUTDIR/build.log" cmake -S "$REPO_ROOT" -B "$WORK/cmake-dry" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER="$NVCC" -DGSMLP_CUDA_ARCHITECTURES="$ARCH" \
    -DGSMLP_BUILD_CUDA_SELFCHECK=ON
  if ! no_time build; then
    if [[ "$STEP_RC" == 0 ]] && grep -q "gsmlp_kernels: CUDA kernels for sm_$ARCH" "$OUTDIR/build.log" &&
      grep -q "gsmlp_cuda_selfcheck: built" "$OUTDIR/build.log"; then
      record build pass "dry run: CMake configured CUDA kernels for sm_$ARCH and gsmlp_cuda_selfcheck (not compiled); the run builds with: SKBUILD_CMAKE_DEFINE='$CMAKE_DEFINES' pip install --no-index --no-deps --no-build-isolation -e ."
    else
      record build "$(plain_status | sed s/pass/fail/)" "CMake did not configure CUDA kernels for sm_$ARCH with the self-check (build.log)"
    fi
  fi
elif ((SETUP_OK)); then
  run_step build 180 "$OUTDIR/build.log" env CUDACXX="$NVCC" SKBUILD_BUILD_DIR="$BUILD_DIR" \
    SKBUILD_CMAKE_DEFINE="$CMAKE_DEFINES" SKBUILD_BUILD_VERBOSE=true CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$VPY" -m pip install --no-index --no-deps --no-build-isolation --no-cache-dir -v -e "$REPO_ROOT"
  if ! no_time build; then
    if [[ "$STEP_RC" == 0 ]]; then
      built="$("$VPY" -c 'from gsmlp import kernels; print(int(kernels.cuda_built()))' 2>>"$OUTDIR/build.log" || echo error)"
      if [[ "$built" == 1 && -x "$SELFCHECK" ]]; then
        BUILD_OK=1
        record build pass "libgsmlp_kernels with CUDA for sm_$ARCH and gsmlp_cuda_selfcheck in $BUILD_DIR"
      else
        record build fail "pip install succeeded but the library has no CUDA kernels (cuda_built: $built) or $SELFCHECK is missing"
      fi
    else
      record build "$(plain_status)" "pip install -e . failed (build.log)"
    fi
  fi
else
  STEP_RC=-1 STEP_SECONDS=0 STEP_TIMEOUT="" STEP_COMMAND=""
  record build skipped "the setup step failed"
fi

# ---------------------------------------------------------------- selfcheck
STEP_RC=-1 STEP_SECONDS=0 STEP_TIMEOUT="" STEP_COMMAND="$SELFCHECK"
if ((DRY_RUN)); then
  record selfcheck skipped "dry run: built and run only by a real run (tests/test_cuda_selfcheck.py runs its --cpu mode)"
elif ((BUILD_OK)); then
  run_step selfcheck 30 "$OUTDIR/sanitizer.log" "$SELFCHECK"
  if ! no_time selfcheck; then
    case "$STEP_RC" in
      0) record selfcheck pass "$(grep -c '^ok ' "$OUTDIR/sanitizer.log") calls match the double-precision references ($(grep -c '^ok .* msda ' "$OUTDIR/sanitizer.log") of them MultiScaleDeformableAttention)" ;;
      3) record selfcheck fail "$(grep -m1 'no CUDA device' "$OUTDIR/sanitizer.log" | cut -c1-200)" ;;
      *) record selfcheck "$(plain_status)" "$(grep -c '^FAIL' "$OUTDIR/sanitizer.log") failing lines (sanitizer.log)" ;;
    esac
  fi
else
  record selfcheck skipped "no CUDA build"
fi

# ---------------------------------------------------------------- pytest
# pytest_step NAME CAP SKIPS FILES...: runs (or, in a dry run, collects) FILES; counts come from --junitxml.
# SKIPS=no-skips: a skipped test fails the step (on a GPU machine with the CUDA build none may skip).
pytest_step() {
  local name=$1 cap=$2 skips=$3
  shift 3
  if ((DRY_RUN)); then
    run_step "$name" "$cap" "$OUTDIR/tests.log" "$VPY" -m pytest --collect-only -q -p no:cacheprovider "$@"
    no_time "$name" && return 0
    local collected
    collected="$(grep -Eo '^[0-9]+ tests? collected' "$OUTDIR/tests.log" | tail -n 1 | grep -Eo '^[0-9]+' || echo 0)"
    if [[ "$STEP_RC" == 0 && "$collected" -gt 0 ]]; then
      record "$name" pass "dry run: collected $collected tests from $*${PYTEST_NOTE:+; $PYTEST_NOTE}"
    else
      record "$name" fail "collecting $* failed or found no test (exit $STEP_RC; tests.log)"
    fi
    return 0
  fi
  not_built "$name" "pytest $*" && return 0
  run_step "$name" "$cap" "$OUTDIR/tests.log" "$VPY" -m pytest -q -rA -p no:cacheprovider \
    --junitxml="$WORK/$name.xml" "$@"
  no_time "$name" && return 0
  local counts
  counts="$("$BASE_PYTHON_PATH" - "$WORK/$name.xml" <<'EOF' 2>/dev/null || echo "0 0 0 0"
import sys, xml.etree.ElementTree as ET
p = f = s = 0
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    if case.find("failure") is not None or case.find("error") is not None: f += 1
    elif case.find("skipped") is not None: s += 1
    else: p += 1
print(p, f, s)
EOF
)"
  local passed failed skipped
  read -r passed failed skipped <<<"$counts"
  local text="$passed passed, $failed failed, $skipped skipped${PYTEST_NOTE:+; $PYTEST_NOTE}"
  if [[ "$STEP_RC" == 0 && "$passed" -gt 0 && "$failed" == 0 && ("$skips" != no-skips || "$skipped" == 0) ]]; then
    record "$name" pass "$text"
  elif [[ "$STEP_RC" == 0 ]]; then
    record "$name" fail "$text: $([[ "$passed" == 0 ]] && echo 'no test ran' || echo 'a test was skipped') (reasons in summary.json)"
  else
    record "$name" "$(plain_status)" "$text (tests.log)"
  fi
}

PYTEST_NOTE=""
pytest_step cuda_tests 120 no-skips tests/test_kernels_cuda.py

# ---------------------------------------------------------------- benchmarks
# bench_step DTYPE: gsmlp bench ffn on both R50 shapes against torch's dense FFN (cuBLAS) in DTYPE.
bench_step() {
  local dtype=$1 name="bench_$1"
  local report="$OUTDIR/bench_$1.json"
  local args=(-m gsmlp bench ffn --device cuda --dtype "$dtype" --shapes "detr,deformable"
    --sparsity "0,0.5,0.8,0.9,0.95" --repeat 30 --warmup 5)
  local step_log="$WORK/$name.log"
  : >"$step_log"
  if ((DRY_RUN)); then
    # The exact arguments, reported to a scratch file: gsmlp must accept them and refuse only for want of a GPU.
    run_step "$name" 60 "$step_log" "$VPY" "${args[@]}" --report "$WORK/$name.json"
    cat "$step_log" >>"$RUN_LOG"
    no_time "$name" && return 0
    local refusal
    refusal="$(grep -m1 -E -e '--device cuda: ' "$step_log" | cut -c1-200 || true)"
    if [[ "$STEP_RC" == 1 && -n "$refusal" && ! -e "$WORK/$name.json" ]]; then
      record "$name" pass "dry run: gsmlp bench accepted the arguments and refused as expected: $refusal"
    else
      record "$name" fail "gsmlp bench ffn did not refuse with a '--device cuda:' message (exit $STEP_RC; run.log)"
    fi
    return 0
  fi
  not_built "$name" "gsmlp bench ffn --dtype $dtype" && return 0
  run_step "$name" 90 "$step_log" "$VPY" "${args[@]}" --report "$report"
  cat "$step_log" >>"$RUN_LOG"
  no_time "$name" && return 0
  if [[ "$STEP_RC" == 0 && -s "$report" ]]; then
    record "$name" pass "wrote bench_$dtype.json (ratios and targets in summary.json)"
  else
    record "$name" "$(plain_status | sed s/pass/fail/)" "gsmlp bench ffn --dtype $dtype failed: $(grep -E '^error' "$step_log" | tail -n 1 | cut -c1-200) (run.log)"
  fi
}
bench_step fp16

# ---------------------------------------------------------------- compute-sanitizer
# sanitizer_step TOOL CAP: gsmlp_cuda_selfcheck under compute-sanitizer --tool TOOL.
sanitizer_step() {
  local tool=$1 cap=$2
  local -a extra=()
  [[ "$tool" == memcheck ]] && extra=(--leak-check full)
  STEP_RC=-1 STEP_SECONDS=0 STEP_TIMEOUT="" STEP_COMMAND="compute-sanitizer --tool $tool ${extra[*]} --error-exitcode 86 gsmlp_cuda_selfcheck"
  if [[ -z "$SANITIZER" ]]; then
    record "$tool" "$( ((DRY_RUN)) && echo skipped || echo unsupported)" "compute-sanitizer not found (PATH, $CUDA_BIN, /usr/local/cuda)"
    return 0
  fi
  if ((DRY_RUN)); then
    record "$tool" skipped "dry run: would run $SANITIZER --tool $tool ${extra[*]} --error-exitcode 86 on gsmlp_cuda_selfcheck"
    return 0
  fi
  if ((!BUILD_OK)); then
    record "$tool" skipped "no CUDA build"
    return 0
  fi
  local tool_log="$WORK/$tool.log"
  : >"$tool_log"
  run_step "$tool" "$cap" "$tool_log" "$SANITIZER" --tool "$tool" "${extra[@]}" --error-exitcode 86 "$SELFCHECK"
  cat "$tool_log" >>"$OUTDIR/sanitizer.log"
  no_time "$tool" && return 0
  local summary_line
  summary_line="$(grep -m1 -E 'SUMMARY:' "$tool_log" | sed 's/^=* *//' | cut -c1-200 || true)"
  if grep -q -E 'Device not supported|not supported on this (device|platform)' "$tool_log"; then
    record "$tool" unsupported "this machine's runtime refuses compute-sanitizer: $(grep -m1 -E 'not supported' "$tool_log" | sed 's/^=* *//' | cut -c1-160)"
  elif [[ "$STEP_RC" == 0 ]] && grep -q '^PASS' "$tool_log" && grep -q -E 'SUMMARY: (.*[^0-9])?0 errors' "$tool_log"; then
    record "$tool" pass "$summary_line"
  else
    record "$tool" "$(plain_status | sed s/pass/fail/)" "exit $STEP_RC: ${summary_line:-no summary line} (sanitizer.log)"
  fi
}
sanitizer_step memcheck 60
sanitizer_step racecheck 90

bench_step fp32

# ---------------------------------------------------------------- ONNX Runtime (CPU) op tests
# Every tests/test_ort_*.py present (the ONNX Runtime custom-op library's tests), and the op's ONNX function
# body in ONNX Runtime (tests/test_export_op.py), with the image's CPU onnxruntime.
shopt -s nullglob
ORT_TESTS=(tests/test_ort_*.py)
shopt -u nullglob
if ((${#ORT_TESTS[@]})); then
  PYTEST_NOTE="custom-op library tests: ${ORT_TESTS[*]}"
else
  PYTEST_NOTE="no tests/test_ort_*.py in this checkout (no ONNX Runtime custom-op library yet): function-body tests only"
fi
log "ort_tests: $PYTEST_NOTE"
pytest_step ort_tests 90 skips-allowed "${ORT_TESTS[@]}" tests/test_export_op.py
PYTEST_NOTE=""

log "done in $(($(date +%s) - START))s"
COMPLETED=1
exit 0
