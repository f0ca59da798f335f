"""The Pyro backend's library ELBO of a guide (``PyroBackend._library_elbo``: Pyro's ``Trace_ELBO``,
eval_particles // 500 batches of 500 vectorized particles) against the same batches through Pyro's
compiled ``JitTrace_ELBO.loss_and_surrogate_loss`` (-loss per batch; traced once, its compiling call
made under a forked torch generator and discarded, so both draw the same numbers), one torch thread,
under ``torch.no_grad``. The two alternate, ROUNDS times each, on the family's initial parameters;
the least CPU milliseconds of each count. Also prints the compiled value minus today's (0: same draws,
same arithmetic).

    python -m benchmarks.pyro_library_elbo [MODEL:FAMILY ...]
        # one line per pair: MODEL:FAMILY eager_ms compiled_ms value_difference se_difference
"""

from __future__ import annotations

import sys
import time

from ppl_suite.numerics import setup

setup()  # float64, one thread: as in the suite's workers

import numpy as np  # noqa: E402
import pyro  # noqa: E402
import torch  # noqa: E402
from pyro.infer import JitTrace_ELBO, Trace_ELBO  # noqa: E402

from ppl_suite import guides, registry  # noqa: E402
from ppl_suite.backends.base import SVIConfig  # noqa: E402
from ppl_suite.backends.pyro import ELBO_EVAL_BATCH, PyroBackend, as_torch, make_guide  # noqa: E402
from ppl_suite.backends.pyro_draws import check_draws  # noqa: E402
from ppl_suite.problem import Problem  # noqa: E402

PAIRS, ROUNDS = ("bayes_linreg:mean_field", "ppca:mean_field", "normal_normal:mean_field"), 3


def compiled_library_elbo(model, guide, data, params, draws, batches: int) -> tuple[float, float]:
    """(value, se) from the batch means of JitTrace_ELBO's loss, as ``_library_elbo`` forms them."""
    tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    fixed = {k: v for k, v in data.items() if k not in tensors}

    def bound_model(tensors):
        return model({**fixed, **tensors}, params)

    def bound_guide(tensors):
        return guide({**fixed, **tensors}, params)

    elbo = JitTrace_ELBO(num_particles=ELBO_EVAL_BATCH, ignore_jit_warnings=True, **draws.elbo_options())
    with torch.no_grad():
        with torch.random.fork_rng(devices=[]):  # the trace's own runs draw from a copy
            elbo.loss_and_surrogate_loss(bound_model, bound_guide, tensors)
        losses = [elbo.loss_and_surrogate_loss(bound_model, bound_guide, tensors)[0] for _ in range(batches)]
    means = -torch.stack(losses).numpy()
    return float(means.mean()), float(means.std(ddof=1) / np.sqrt(batches))


def main(pairs: list[str]) -> None:
    pyro.enable_validation(False)
    n = SVIConfig.eval_particles
    for pair in pairs:
        name, family = pair.split(":")
        problem = Problem.build(name, data_seed=0)
        model = registry.implementation(name, "pyro")
        data, params = as_torch(problem.data), as_torch(problem.params)
        draws = check_draws(model, data, params)
        phi = guides.get(family).init_params(problem.sites, problem.data, problem.params)
        cpu = {"eager": [], "compiled": []}
        for round_ in range(ROUNDS):
            found = {}
            for how in cpu:
                pyro.get_param_store().clear()
                guide = make_guide(problem, family, phi)
                torch.manual_seed(round_)
                start = time.process_time()
                if how == "eager":
                    estimate = PyroBackend._library_elbo(model, guide, Trace_ELBO, data, params, n, draws)
                    found[how] = (estimate.value, estimate.se)
                else:
                    batches = n // ELBO_EVAL_BATCH
                    found[how] = compiled_library_elbo(model, guide, data, params, draws, batches)
                cpu[how].append(time.process_time() - start)
        value_diff, se_diff = (c - e for c, e in zip(found["compiled"], found["eager"], strict=True))
        eager_ms, compiled_ms = (1e3 * min(cpu[how]) for how in ("eager", "compiled"))
        print(f"{pair} {eager_ms:.1f} {compiled_ms:.1f} {value_diff:.3g} {se_diff:.3g}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or list(PAIRS))
