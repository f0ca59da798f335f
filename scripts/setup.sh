#!/usr/bin/env bash
# Creates .venv (Python 3.11+) and installs ppl-suite with the pinned CPU stack of constraints.txt.
# PPL_SUITE_OWN_TORCH=1 keeps the torch already installed in .venv (e.g. a CUDA build) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
[ -x .venv/bin/python ] || "$python" -m venv .venv
constraints=constraints.txt
if [ "${PPL_SUITE_OWN_TORCH:-0}" = 1 ]; then
  constraints=$(mktemp)
  grep -v '^torch==' constraints.txt >"$constraints"
fi
.venv/bin/python -m pip install --quiet --upgrade-strategy only-if-needed -c "$constraints" -e ".[${1:-test}]"
