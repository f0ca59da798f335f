"""Pyro SVI steps per second: the suite's Pyro backend against a raw Pyro loop of the same model and
guide (the mean-field family rendered in Pyro, ``JitTrace_ELBO`` with the same particles, torch's
fused Adam), one torch thread, in steps per CPU second (the thread's CPU time: less disturbed by a
shared machine than wall time; the suite's loop by its own timing with the CPU clock swapped in),
each timed after its first (compiling) step; for normal_normal and a
plated model (eight_schools_noncentered). The two loops alternate, ROUNDS times each, and the best
rate of each counts. With ``--first-step``, the first step's CPU seconds instead: the suite's in its
first round (for the first model, the process's first fit, which pays the recording's one-off
imports) and its least over the later rounds
(``Fit.compile_seconds``: Pyro's trace, the whole step's recording and its checks), and the raw loop's
least (Pyro's trace).

    python -m benchmarks.pyro_steps [STEPS]     # one line per model: MODEL suite_rate raw_rate
    python -m benchmarks.pyro_steps [STEPS] --first-step
                                    # one line per model: MODEL suite_first suite_first_later raw_first
"""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace

from ppl_suite.numerics import setup

setup()  # float64, one thread: as in the suite's workers

import pyro  # noqa: E402
import torch  # noqa: E402
from pyro.infer import JitTrace_ELBO  # noqa: E402

from ppl_suite import backends, guides, registry  # noqa: E402
from ppl_suite.backends import pyro as pyro_backend  # noqa: E402
from ppl_suite.backends.base import ADAM_BETAS, ADAM_EPS, SVIConfig  # noqa: E402
from ppl_suite.backends.pyro import as_torch, make_guide  # noqa: E402
from ppl_suite.problem import Problem  # noqa: E402

MODELS, GUIDE, ROUNDS = ("normal_normal", "eight_schools_noncentered"), "mean_field", 3


def suite_rate(problem: Problem, config: SVIConfig) -> tuple[float, float]:
    """Steps per CPU second of the backend's loop and its first step's CPU seconds: its own timing of
    the steps after the first (``Fit.run_seconds``) and of the first (``Fit.compile_seconds``), taken
    with the thread's CPU clock instead of the wall clock."""
    wall_clock = pyro_backend.time
    pyro_backend.time = SimpleNamespace(perf_counter=time.thread_time)
    try:
        fit = backends.get("pyro").fit(problem, GUIDE, config, seed=0)
    finally:
        pyro_backend.time = wall_clock
    return fit.timed_steps / fit.run_seconds, fit.compile_seconds


def raw_rate(problem: Problem, config: SVIConfig) -> tuple[float, float]:
    """The plain Pyro loop: loss_and_grads, Adam step, zero the gradients; steps per CPU second after
    the first, and the first's CPU seconds."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    model = registry.implementation(problem.spec.name, "pyro")
    phi0 = guides.get(GUIDE).init_params(problem.sites, problem.data, problem.params)
    guide = make_guide(problem, GUIDE, phi0)
    data, params = as_torch(problem.data), as_torch(problem.params)
    elbo = JitTrace_ELBO(num_particles=config.particles, vectorize_particles=True, ignore_jit_warnings=True)

    def traced_model(data):
        return model(data, params)

    def traced_guide(data):
        return guide(data, params)

    tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    first = time.thread_time()
    elbo.loss_and_grads(traced_model, traced_guide, tensors)  # compiles, creates the parameters
    parameters = [value for _, value in pyro.get_param_store().named_parameters()]
    optimizer = torch.optim.Adam(parameters, lr=config.lr, betas=ADAM_BETAS, eps=ADAM_EPS, fused=True)
    optimizer.step()
    optimizer.zero_grad()
    start = time.thread_time()
    first = start - first
    for _ in range(config.steps - 1):
        elbo.loss_and_grads(traced_model, traced_guide, tensors)
        optimizer.step()
        optimizer.zero_grad()
    return (config.steps - 1) / (time.thread_time() - start), first


def main() -> None:
    arguments = [argument for argument in sys.argv[1:] if argument != "--first-step"]
    steps = int(arguments[0]) if arguments else 3000
    config = SVIConfig(steps=steps, eval_particles=1000)
    for model in MODELS:
        problem = Problem.build(model, 0)
        rounds = [(suite_rate(problem, config), raw_rate(problem, config)) for _ in range(ROUNDS)]
        suite, raw = [r[0] for r in rounds], [r[1] for r in rounds]
        if "--first-step" in sys.argv:
            later, raw_first = min(s[1] for s in suite[1:]), min(r[1] for r in raw)
            print(f"{model} {suite[0][1]:.3f} {later:.3f} {raw_first:.3f}", flush=True)
        else:
            print(f"{model} {max(s[0] for s in suite):.3f} {max(r[0] for r in raw):.3f}", flush=True)


if __name__ == "__main__":
    main()
