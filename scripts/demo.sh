#!/usr/bin/env bash
# Creates .venv, installs gsmlp, and runs the main job on the built-in model.
# Arguments go to `gsmlp demo`, e.g. ./scripts/demo.sh --out runs/demo --model deformable-detr-small
set -euo pipefail
source "$(dirname "$0")/setup_venv.sh"
gsmlp demo "$@"
