#!/usr/bin/env bash
# The compile path under Triton 3.6.0, the GPU machine's version (this machine's own Triton is newer):
# the check stage (legality scan, AOT compile for sm_90a and sm_100a, static report) on every seed.
#
# The environment is a venv that sees this machine's packages (torch, numpy, networkx) and holds its
# own triton==3.6.0, which comes first on its path. It is made once and reused:
#   EVOAGENT_TRITON_ENV (default ~/.cache/evoagent/venv-triton-3.6.0); TRITON_VERSION to try another.
#
#   benchmarks/triton36_check.sh [--seed FILE ...]
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="${TRITON_VERSION:-3.6.0}"
ENV_DIR="${EVOAGENT_TRITON_ENV:-$HOME/.cache/evoagent/venv-triton-$VERSION}"
PY="${PYTHON:-python}"

if ! "$ENV_DIR/bin/python" -c "import triton, sys; sys.exit(triton.__version__ != '$VERSION')" 2>/dev/null; then
  echo "making $ENV_DIR (triton==$VERSION)"
  rm -rf "$ENV_DIR"
  PYTHON="$PY" bash .ci/caller_venv.sh "$ENV_DIR"  # sees this Python's packages, also from inside a venv
  "$ENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "triton==$VERSION"
fi
export PYTHONPATH="$PWD/src"
EVOAGENT_CACHE_DIR="$(mktemp -d -t evoagent-cache-XXXXXX)"  # a fresh static-report cache: compile for real
export EVOAGENT_CACHE_DIR
trap 'rm -rf "$EVOAGENT_CACHE_DIR"' EXIT
"$ENV_DIR/bin/python" benchmarks/device_steps.py compile --arch sm_90a --arch sm_100a --expect-triton "$VERSION" "$@"
