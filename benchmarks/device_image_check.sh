#!/usr/bin/env bash
# The device check's CPU flow on a copy of the GPU machine's Python stack: Python 3.12, torch 2.11.0
# (PyPI's build, +cu130, with its CUDA runtime packages: it runs on the CPU here), Triton 3.6.0,
# NumPy 2.5, and evoagent installed without extras (no anthropic, bm25s, pydantic or flash-attn).
# CI runs it beside the flow on its own Python: the GPU machine's versions break things that newer
# ones do not (Triton 3.6's interpreter under NumPy 2.5, its autotuner without a driver), and the
# flow must measure every configuration there or fail.
#
# The venv is made once and reused (about 5 GB, a few minutes to make):
#   EVOAGENT_DEVICE_IMAGE_ENV (default ~/.cache/evoagent/venv-device-image); DEVICE_IMAGE_PYTHON: a
#   python3.12 (default: python3.12 on PATH, else pyenv's newest 3.12).
#
#   benchmarks/device_image_check.sh        # OUT as for device_check.sh (default: a temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
ENV_DIR="${EVOAGENT_DEVICE_IMAGE_ENV:-$HOME/.cache/evoagent/venv-device-image}"
TORCH="2.11.0" TRITON="3.6.0" NUMPY_SERIES="2.5"

find_python() {  # the first python3.12 that runs (a pyenv shim on PATH may not)
  local root; root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
  local candidate
  for candidate in ${DEVICE_IMAGE_PYTHON:-} "$(command -v python3.12 || true)" \
      $(ls -d "$root"/versions/3.12.*/bin/python 2>/dev/null | sort -rV); do
    if [[ -n "$candidate" ]] && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
      echo "$candidate"; return
    fi
  done
}

matches() {
  "$ENV_DIR/bin/python" - <<EOF 2>/dev/null
import sys, numpy, torch, triton
ok = (sys.version_info[:2] == (3, 12) and torch.__version__.split("+")[0] == "$TORCH"
      and triton.__version__ == "$TRITON" and numpy.__version__.startswith("$NUMPY_SERIES."))
sys.exit(0 if ok else 1)
EOF
}

if ! matches; then
  PY312="$(find_python)"
  if [[ -z "$PY312" ]]; then
    echo "device_image_check.sh: no Python 3.12 found; set DEVICE_IMAGE_PYTHON to a python3.12" >&2
    exit 2
  fi
  echo "making $ENV_DIR ($("$PY312" --version), torch==$TORCH, triton==$TRITON, numpy==$NUMPY_SERIES.*)"
  rm -rf "$ENV_DIR"
  "$PY312" -m venv "$ENV_DIR"
  "$ENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check \
    "torch==$TORCH" "triton==$TRITON" "numpy==$NUMPY_SERIES.*"
fi
# This checkout, without extras (its dependencies are already there; nothing else is pulled in).
"$ENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check --no-build-isolation --no-deps "$PWD"
OUT="${OUT:-$(mktemp -d -t evoagent-device-image-XXXXXX)}" PYTHON="$ENV_DIR/bin/python" \
  exec bash benchmarks/device_check.sh "$@"
