"""Throughput of the hand-rolled log p(x) estimators (a benchmark, not a test).

    .venv/bin/python benchmarks/bench_estimators.py [--model bayes_linreg] [--k 100000]

Reports, on the model's defaults (bayes_linreg if registered, else normal_normal):
- IWAE / importance sampling: guide draws + weights per second at K = 100 000 (one bound);
- the same weights through NumPyro's own machinery (``numpyro.infer.util.log_density`` vmapped and
  jitted over guide draws), as the library route;
- AIS: HMC transitions per second, 64 chains x 1000 temperatures (5 leapfrog steps), compile
  time reported apart from run time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests/

from numpyro.infer.util import log_density  # noqa: E402

import models  # noqa: E402
from ppl_suite import registry  # noqa: E402
from ppl_suite.estimators.ais import AISConfig, AISRun  # noqa: E402
from ppl_suite.estimators.importance import log_weights  # noqa: E402
from ppl_suite.estimators.target import Target  # noqa: E402
from ppl_suite.numerics import log_mean_exp  # noqa: E402
from ppl_suite.problem import Problem  # noqa: E402
from tests.test_estimators_support import imperfect_guide  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = "bayes_linreg" if "bayes_linreg" in models.names() else "normal_normal"
    parser.add_argument("--model", default=default)
    parser.add_argument("--k", type=int, default=100_000)
    parser.add_argument("--chains", type=int, default=64)
    parser.add_argument("--temperatures", type=int, default=1000)
    args = parser.parse_args()

    problem = Problem.build(args.model, 0)
    guide = imperfect_guide(problem)
    print(f"model {args.model} (defaults), jax {jax.__version__}, devices {jax.devices()}")

    log_weights(guide, 1000, seed=99)  # warm-up
    start = time.perf_counter()
    log_w = log_weights(guide, args.k, seed=0)
    seconds = time.perf_counter() - start
    print(f"IWAE K={args.k}: {args.k / seconds:,.0f} samples/s ({seconds:.2f} s), "
          f"bound {log_mean_exp(log_w):.4f} (exact {problem.exact().log_evidence:.4f})")  # fmt: skip

    model = registry.implementation(args.model, "numpyro")
    data = {k: jnp.asarray(v) for k, v in problem.data.items()}

    @jax.jit
    def library_weights(z):
        def one(zz):
            return log_density(model, (data, problem.params), {}, zz)[0]

        return jax.vmap(one)(z)

    z = {k: jnp.asarray(v) for k, v in guide.sample(1, args.k).items()}
    start = time.perf_counter()
    jax.block_until_ready(library_weights(z))
    compile_and_run = time.perf_counter() - start
    start = time.perf_counter()
    z = {k: jnp.asarray(v) for k, v in guide.sample(2, args.k).items()}
    lp = library_weights(z)
    log_w_lib = np.asarray(lp) - guide.log_density(z)
    seconds = time.perf_counter() - start
    print(f"NumPyro log_density (vmap+jit) + guide: {args.k / seconds:,.0f} samples/s "
          f"({seconds:.2f} s; first call incl. compile {compile_and_run:.2f} s), "
          f"bound {log_mean_exp(log_w_lib):.4f}")  # fmt: skip

    config = AISConfig(temperatures=args.temperatures, chains=args.chains)
    run = AISRun(Target(problem), config)
    key = jax.random.PRNGKey(0)
    start = time.perf_counter()
    schedule = run.schedule(key)  # pilot: compiles the runner and runs it once
    pilot = time.perf_counter() - start
    u0 = run.target.sample_prior(key, config.chains)
    start = time.perf_counter()
    log_w_ais, _, acceptance = run.run(schedule, u0, jax.random.PRNGKey(1))
    seconds = time.perf_counter() - start
    transitions = config.chains * (config.temperatures + 20)  # 20 warm-up transitions per chain
    print(f"AIS {config.chains} chains x {config.temperatures} temperatures, HMC {config.leapfrog_steps} "
          f"leapfrog: {transitions / seconds:,.0f} transitions/s ({seconds:.2f} s run; pilot incl. compile "
          f"{pilot:.2f} s), acceptance {acceptance.mean():.2f}, "
          f"log p(x) {log_mean_exp(log_w_ais):.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
