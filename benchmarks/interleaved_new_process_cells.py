"""NumPyro cells in a new process (a worker's first cells), two checkouts interleaved, wall and CPU s.

    python -m benchmarks.interleaved_new_process_cells BEFORE_TREE AFTER_TREE [--rounds 4]

A worker of a run, or of a check, fits its first cells in a process that has compiled nothing yet:
whatever a cell runs outside its compiled programs (an eager trace of the model, eager operations)
is paid there, once per model, even with the compilation cache warm. Each round runs both
checkouts' cells (CELLS, oracle models: no reference is built) in a new process
(``benchmarks.interleaved``), after a warm-up run of each that fills the compilation cache both
share; the time is that of the cells alone, after the imports. Each checkout's own code runs (its
folder is the working directory of the process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.interleaved import checkouts, interleave

CELLS = (
    ("bayes_linreg", "numpyro", "mean_field"),
    ("dirichlet_categorical", "numpyro", "conjugate"),
    ("ppca", "numpyro", "mean_field"),
    ("gamma_poisson", "numpyro", "mean_field"),
)

SCRIPT = """
import json, sys, time
from ppl_suite.numerics import setup
setup()
from ppl_suite.compilation_cache import enable_compilation_cache
enable_compilation_cache()
from ppl_suite.cell import Cell
from ppl_suite.execute import execute
wall, cpu = time.perf_counter(), time.process_time()
for model, backend, guide in json.loads(sys.argv[1]):
    row = execute(Cell(model, backend, guide)).row
    assert row["status"] == "ok", row["error"]
print(json.dumps([time.perf_counter() - wall, time.process_time() - cpu]))
"""


def cells_run(tree: Path, cache: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of CELLS in a new process running the checkout at ``tree``."""
    env = {**os.environ, "PPL_SUITE_XLA_CACHE": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(CELLS)],
        cwd=tree, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    wall, cpu = json.loads(done.stdout.splitlines()[-1])
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    trees, rounds = checkouts(__doc__.splitlines()[0], argv, rounds=4)
    with tempfile.TemporaryDirectory() as cache:  # shared: each one's programs kept by its warm-up
        interleave(trees, lambda name, tree: cells_run(tree, Path(cache)), rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
