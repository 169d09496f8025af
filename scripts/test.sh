#!/usr/bin/env bash
# Creates .venv, installs gsmlp with its test tools, and runs the test suite.
# Extra arguments go to pytest, e.g. ./scripts/test.sh -k parity -x
set -euo pipefail
GSMLP_EXTRAS="[dev]" source "$(dirname "$0")/setup_venv.sh"
python -m pytest "$@"
