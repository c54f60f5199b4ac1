#!/usr/bin/env bash
# The oldest anthropic SDK evoagent declares (pyproject: anthropic>=0.64.0) runs the backend and agent tests.
# 0.64.0 is the first release whose Usage splits cache writes into 5-minute and 1-hour parts, which the
# cost of the default 1-hour cache lifetime needs; thinking, streaming and error bodies work there too.
set -euo pipefail
cd "$(dirname "$0")/.."
floor="$(sed -n 's/.*"anthropic>=\([0-9.]*\)".*/\1/p' pyproject.toml | head -1)"
venv="${ANTHROPIC_FLOOR_VENV:-/tmp/evoagent-anthropic-floor}"
[ -x "$venv/bin/python" ] || bash .ci/caller_venv.sh "$venv"  # sees this Python's packages, also from a venv
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "anthropic==$floor"
test "$("$venv/bin/python" -c 'import anthropic; print(anthropic.__version__)')" = "$floor"
PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" "$venv/bin/python" -m pytest -q -p no:cacheprovider \
    tests/integration/test_anthropic_backend.py tests/integration/test_agentic_operator.py
