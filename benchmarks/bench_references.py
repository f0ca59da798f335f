"""Wall time of building NUTS references (targets on 2 cores: eight schools < 60 s, logistic
regression < 3 min) and of a cached call (< 1 s) in this process and through the command line (a
fresh process: ``ppl-suite reference MODEL --json``), in a fresh reference cache of its own.

    .venv/bin/python benchmarks/bench_references.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ppl_suite.compilation_cache import enable_compilation_cache
from ppl_suite.numerics import setup
from ppl_suite.references.cache import VARIABLE

MODELS = {"eight_schools_noncentered": 60.0, "logistic_regression": 180.0}
CACHED_TARGET = 1.0


def command_seconds(model: str, cache: Path) -> float:
    """Wall time of ``ppl-suite reference MODEL --json`` in a fresh process reading ``cache``."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "ppl_suite.cli", "reference", model, "--json"],
        env={**os.environ, VARIABLE: str(cache)},
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def main() -> None:
    setup()
    enable_compilation_cache()
    from ppl_suite.problem import Problem
    from ppl_suite.references import reference_for

    cache = Path(tempfile.mkdtemp(prefix="ppl-suite-bench-references-"))
    for model, target in MODELS.items():
        problem = Problem.build(model, 0)
        start = time.perf_counter()
        built = reference_for(problem, cache_dir=cache)
        first = time.perf_counter() - start
        start = time.perf_counter()
        reference_for(problem, cache_dir=cache)
        cached = time.perf_counter() - start
        print(
            f"{model}: built in {first:.1f} s (target {target:g} s; "
            f"NUTS {built.summary['nuts_seconds']:.1f} s, "
            f"evidence {built.summary['evidence_seconds']:.1f} s), cached call {cached:.3f} s in process, "
            f"{command_seconds(model, cache):.2f} s by the command (target {CACHED_TARGET:g} s)"
        )


if __name__ == "__main__":
    main()
