#!/usr/bin/env bash
# Sets up .venv and runs the default comparison; arguments go to `ppl-suite run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
.venv/bin/ppl-suite run "$@"
