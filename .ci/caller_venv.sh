#!/usr/bin/env bash
# Makes a venv at DIR that sees the packages of the Python that calls it (PYTHON, default `python`), its own first.
#
#   .ci/caller_venv.sh DIR
#
# `python -m venv --system-site-packages` run from inside a venv sees the *base* interpreter's packages,
# not the venv's (a torch installed in the calling venv would be missing). A .pth file in the new venv
# adds the caller's site-packages after the new venv's own, so a package installed there (e.g. an older
# triton) still comes first. Outside a venv the caller's site-packages are the system ones: the same result.
set -euo pipefail
DIR="$1"
PY="${PYTHON:-python}"
"$PY" -m venv --system-site-packages "$DIR"
SITE="$("$DIR/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
"$PY" -c 'import site; print("\n".join(site.getsitepackages()))' > "$SITE/evoagent-caller-site.pth"
