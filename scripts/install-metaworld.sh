#!/usr/bin/env bash
# Install Meta-World (Yu et al., 2019) into its own virtual environment.
#
# Why a separate venv: metaworld 3.1.1 pins mujoco==3.3.0 and fails at reset on the
# project's mujoco 3.17 (which dm_control 1.0.50 needs), and it still calls np.in1d, which
# numpy 2.4 removed. The main process talks to this venv through a subprocess
# (src/metra/envs/metaworld.py runs src/metra/envs/metaworld_worker.py with its python).
#
# Usage: bash scripts/install-metaworld.sh [VENV_DIR]   (default: <repo>/.venv-metaworld)
#        PYTHON=python3.12 bash scripts/install-metaworld.sh   (interpreter for the venv)
# Idempotent: re-running keeps an existing venv and only installs what is missing.
# It never touches the main venv: pip is always run as "$VENV_DIR/bin/python -m pip".
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="${1:-$REPO_ROOT/.venv-metaworld}"
PYTHON="${PYTHON:-python3}"

# The working set, pinned. gymnasium's mujoco env module imports `packaging`, which
# metaworld does not declare; metaworld does not need dm_control. numpy < 2.4 (np.in1d).
PINS=(
    "metaworld==3.1.1"
    "mujoco==3.3.0"
    "gymnasium==1.4.0"
    "packaging==26.3"
    "numpy==2.3.5; python_version >= '3.11'"
    "numpy==2.2.6; python_version < '3.11'"
)

# Keep the caller's environment out of the new venv (an activated main venv, PYTHONPATH).
unset PYTHONPATH PYTHONHOME PIP_TARGET PIP_PREFIX PIP_USER

start=$(date +%s)
if [[ ! -x "$VENV_DIR/bin/python" ]]; then
    echo "creating venv $VENV_DIR with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV_DIR"
else
    echo "reusing venv $VENV_DIR"
fi

VPY="$VENV_DIR/bin/python"
"$VPY" -m pip install --disable-pip-version-check --quiet "${PINS[@]}"
"$VPY" -m pip check
# Smoke test: build one ML1 task and take a step, in the venv's own interpreter.
"$VPY" -I - <<'PY'
from importlib.metadata import version
import metaworld, numpy as np
b = metaworld.ML1("reach-v3", seed=0)
env = b.train_classes["reach-v3"]()
env.set_task(b.train_tasks[0])
env.reset()
env.step(np.zeros(4))
print("ok:", ", ".join(f"{p} {version(p)}" for p in ("metaworld", "mujoco", "gymnasium", "numpy")))
PY
echo "Meta-World venv ready in $(( $(date +%s) - start ))s: $VPY"
echo "(found automatically from a source checkout; else export METRA_METAWORLD_PYTHON=$VPY)"
