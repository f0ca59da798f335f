#!/usr/bin/env bash
# Sets up .venv and runs the test suite, one pytest-xdist worker per core (at most 4), each test file
# in one worker (its module fixtures computed once). PPL_SUITE_TEST_WORKERS=0 runs it in one process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
cores=$(.venv/bin/python -c "import os; print(min(len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count(), 4))")
.venv/bin/python -m pytest -q -n "${PPL_SUITE_TEST_WORKERS:-$cores}" --dist loadfile "$@"
