"""Throughput of importance sampling: guide draws and log weights per second, one core (a benchmark,
not a test).

    .venv/bin/python benchmarks/bench_estimators.py [--model bayes_linreg] [--n 100000] [--repeats 3]

On the model's defaults (bayes_linreg if registered, else normal_normal), with a mean-field guide
near the posterior, times ``estimators.draws.guide_draws`` (torch guide draws and log q, plus
log p(x, z)) through two Targets in one run:

- before: the NumPy oracle's log joint (``OracleTarget``, the route of earlier versions);
- after: the NumPyro model compiled and vectorized (``NumPyroTarget``, the pipeline's route);

each after a warm-up call (compilation reported apart), best of ``--repeats``, and their ratio.
Both routes' weights are compared (max |difference|).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests/

from ppl_suite.numerics import setup

setup()  # float64, one thread for XLA and torch: one core

import jax  # noqa: E402
import numpy as np  # noqa: E402

import models  # noqa: E402
from ppl_suite.estimators.draws import guide_draws  # noqa: E402
from ppl_suite.problem import Problem  # noqa: E402
from ppl_suite.targets.numpyro_target import NumPyroTarget  # noqa: E402
from ppl_suite.targets.oracle_target import OracleTarget  # noqa: E402
from tests.test_estimators_support import imperfect_guide  # noqa: E402


def samples_per_second(target, guide, n: int, repeats: int) -> tuple[float, float, np.ndarray]:
    """(best samples/s over ``repeats`` runs of n draws, seconds of the warm-up call, the log weights)."""
    start = time.perf_counter()
    guide_draws(target, guide, n, seed=99)  # warm-up: compiles the NumPyro program for this batch shape
    warm_up = time.perf_counter() - start
    best, log_w = np.inf, None
    for repeat in range(repeats):
        start = time.perf_counter()
        draws = guide_draws(target, guide, n, seed=repeat)
        best = min(best, time.perf_counter() - start)
        log_w = draws.log_w if log_w is None else log_w
    return n / best, warm_up, log_w


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = "bayes_linreg" if "bayes_linreg" in models.names() else "normal_normal"
    parser.add_argument("--model", default=default)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    problem = Problem.build(args.model, 0)
    guide = imperfect_guide(problem)
    print(f"model {args.model} (defaults), n = {args.n}, jax {jax.__version__}, one thread")
    before, warm_before, log_w_before = samples_per_second(OracleTarget(problem), guide, args.n, args.repeats)
    print(
        f"before (NumPy oracle log joint):       {before:>10,.0f} samples/s (first call {warm_before:.2f} s)"
    )
    after, warm_after, log_w_after = samples_per_second(NumPyroTarget(problem), guide, args.n, args.repeats)
    print(f"after (NumPyro target, jit + vmap):    {after:>10,.0f} samples/s (first call {warm_after:.2f} s)")
    print(f"ratio after / before: {after / before:.1f}x; "
          f"max |log w difference| {np.abs(log_w_after - log_w_before).max():.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
