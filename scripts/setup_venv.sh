# Sourced by test.sh and demo.sh: create .venv if needed, install gsmlp into it, and activate it.
# GSMLP_TORCH overrides the torch requirement (default: the CPU build torch==2.13.0, installed first so
# that the package's own `torch>=2.4` never pulls a multi-GB CUDA wheel). On a GPU machine, e.g.:
#   GSMLP_TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu130" ./scripts/test.sh
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
if [ ! -x .venv/bin/python ]; then
  echo "[gsmlp] creating .venv"
  python3 -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
# pip -q still warns once per package about a configured local index folder that is absent: drop those.
pip_quiet() {
  local status
  set +e
  python -m pip install --disable-pip-version-check -q "$@" 2>&1 | grep -v "is ignored: it is neither a file nor a directory"
  status=${PIPESTATUS[0]}
  set -e
  return "$status"
}
if ! python -c "import torch" 2>/dev/null; then
  echo "[gsmlp] installing ${GSMLP_TORCH:-torch==2.13.0}"
  # shellcheck disable=SC2086
  pip_quiet ${GSMLP_TORCH:-torch==2.13.0}
fi
echo "[gsmlp] installing gsmlp in editable mode (builds the kernel library with CMake)"
# Editable, so that a change to the sources needs no reinstall. A plain install (`pip install .`) runs the
# tests as well: the root conftest.py keeps the source folder `gsmlp/` from shadowing it.
pip_quiet -e "$repo_root${GSMLP_EXTRAS:-}"
python -c "import gsmlp, torch" || { echo "[gsmlp] installation failed" >&2; exit 1; }
