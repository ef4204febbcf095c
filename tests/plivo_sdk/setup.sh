#!/usr/bin/env bash
# Creates the virtual environment the Plivo SDK compatibility test runs in
# (tests/blackbox/plivo_sdk.rs): Plivo's own Python package, pinned, in tests/plivo_sdk/.venv
# (or the directory given as the first argument).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:-$here/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
"$venv/bin/python" -c 'import importlib.metadata as m, plivo; print("plivo", m.version("plivo"), "ready")'
