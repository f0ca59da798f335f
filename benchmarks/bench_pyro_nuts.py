"""NUTS on the battery's varying-intercept model given only in Pyro (``benchmarks/pyro_only_models.py``)
with its torch density eager (Pyro traces the model on every call, the path before
``targets.torch_compiled``) and compiled, one after the other in one process, same seed and short
settings: seconds each and whether the two runs drew the same chains (the densities are equal, so
the chains should be identical).

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/bench_pyro_nuts.py [ITERATIONS]
"""

from __future__ import annotations

import sys

import numpy as np

from benchmarks.pyro_only_models import varying_intercept
from ppl_suite.numerics import setup
from ppl_suite.references import NUTSSettings, nuts
from ppl_suite.targets.pyro_target import PyroTarget


def main(arguments: list[str]) -> int:
    setup(own_process=True)
    half = int(arguments[0]) // 2 if arguments else 200
    settings = NUTSSettings(chains=4, warmup=half, draws=half, max_draws=half)
    problem = varying_intercept("pyro")
    runs = {}
    for label, defaults in (("eager", (None, False, ())), ("compiled", (None, True, ()))):
        PyroTarget.__init__.__defaults__ = defaults  # reference, compiled, non_centered
        runs[label] = nuts.run(problem, settings, extend=False)
        print(f"{label}: {runs[label].seconds:.1f} s for 4 chains x {2 * half} iterations", flush=True)
    same = all(np.array_equal(runs["eager"].draws[k], runs["compiled"].draws[k]) for k in runs["eager"].draws)
    ratio = runs["eager"].seconds / runs["compiled"].seconds
    print(f"speed-up {ratio:.1f}x; identical draws: {same}; compiled density: {runs['compiled'].density}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
