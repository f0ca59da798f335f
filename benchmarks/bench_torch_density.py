"""Milliseconds per callback of a Pyro-only model's unconstrained density through the torch bridge
(``targets.torch_density``): eager (Pyro traces the model and torch walks its backward pass in Python
on every call, the path before ``targets.torch_compiled``) against compiled (each batch shape recorded
once and replayed), for NUTS' callback (value and gradient of log p(x, u)) and AIS' (both parts and
their gradients), at several batch sizes (chains), on the battery's 10-latent varying-intercept model
(``benchmarks/pyro_only_models.py``). Also checks the two paths give the same numbers, the compiled
one replayed (after the timed calls) at a point of the recorded shape it has not met.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/bench_torch_density.py
"""

from __future__ import annotations

import sys
import time

import jax
import numpy as np

from benchmarks.pyro_only_models import varying_intercept
from ppl_suite.numerics import setup
from ppl_suite.targets.pyro_target import PyroTarget

BATCHES = (1, 4, 16, 64, 256)
CALLS = 40


def per_call_ms(function, u: jax.Array) -> float:
    """Median wall time of one call over CALLS calls, after warm calls (compilation, recording)."""
    for _ in range(3):
        jax.block_until_ready(function(u))
    times = []
    for _ in range(CALLS):
        start = time.perf_counter()
        jax.block_until_ready(function(u))
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def functions(target: PyroTarget) -> dict[str, object]:
    return {
        "NUTS: value_and_grad(log_joint_u)": jax.jit(jax.vmap(jax.value_and_grad(target.log_joint_u))),
        "AIS: vjp of prior_and_likelihood": jax.jit(
            jax.vmap(jax.value_and_grad(lambda u: sum(target.prior_and_likelihood(u)), has_aux=False))
        ),
    }


def _recorded(target: PyroTarget, shape: tuple[int, ...]) -> bool:
    """Whether one of ``target``'s torch evaluations replays a recording of ``shape``."""
    return any(shape in evaluation._recorded for evaluation in target._density.evaluations)


def main() -> int:
    setup(own_process=True)
    problem = varying_intercept("pyro")
    eager, compiled = PyroTarget(problem, compiled=False), PyroTarget(problem)
    print(f"model {problem.spec.name}: d = {compiled.dim}, draws path {compiled.draws_path}")
    worst = 0.0
    for label in functions(eager):
        print(f"\n{label}\n  batch   eager ms   compiled ms   ratio   max |difference|")
        for n in BATCHES:
            u = jax.random.normal(jax.random.PRNGKey(n), (n, compiled.dim)) * 0.8
            slow, fast = functions(eager)[label], functions(compiled)[label]
            t_slow, t_fast = per_call_ms(slow, u), per_call_ms(fast, u)
            # after the timed calls the shape is recorded: compare the replay, at a point it has not met
            if compiled.density_path != "compiled" or not _recorded(compiled, (n, compiled.dim)):
                print(f"  {n:5d}: not replayed ({compiled.density_path}): nothing compiled to compare")
                return 1
            v = jax.random.normal(jax.random.PRNGKey(n + len(BATCHES)), u.shape) * 0.8
            difference = max(
                float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
                for x, y in zip(jax.tree.leaves(slow(v)), jax.tree.leaves(fast(v)), strict=True)
            )
            worst = max(worst, difference)
            print(f"  {n:5d}   {t_slow:8.3f}   {t_fast:11.3f}   {t_slow / t_fast:5.1f}x   {difference:.1e}")
    print(f"\ncompiled target's density path: {compiled.density_path}; eager: {eager.density_path}")
    return 0 if worst <= 1e-12 and compiled.density_path == "compiled" else 1


if __name__ == "__main__":
    sys.exit(main())
