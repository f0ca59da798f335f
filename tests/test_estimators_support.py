"""Shared set-up for the estimator tests (no tests here): models to run on and cheap guides.

A guide is built by hand from the oracle, no fitting: mean-field Normal in unconstrained space with
the posterior's unconstrained mean shifted by SHIFT standard deviations and its standard deviations
inflated by INFLATE. It is deliberately imperfect (KL > 0, so every route has something to measure)
and wider than the posterior, so importance weights keep a finite variance.
"""

from __future__ import annotations

import numpy as np

import models
from ppl_suite import registry
from ppl_suite.problem import Problem
from ppl_suite.targets.fitted_guide import FittedGuide
from ppl_suite.targets.numpyro_target import NumPyroTarget

SHIFT = 0.1
INFLATE = 1.3
MOMENT_DRAWS = 4000


def continuous_models_with_oracle() -> list[str]:
    """Registered models with an oracle, only continuous latents and a NumPyro implementation."""
    out = []
    for name in models.names():
        spec = models.get(name)
        if spec.oracle is None or registry.implementation(name, "numpyro") is None:
            continue
        if any(site.support == "integer" for site in spec.sites(spec.defaults)):
            continue
        out.append(name)
    return out


def imperfect_guide(problem: Problem, seed: int = 0) -> FittedGuide:
    """Mean-field guide from the posterior's unconstrained moments, shifted and inflated."""
    exact = problem.exact()
    target = NumPyroTarget(problem)
    u = target.unconstrain(exact.sample(np.random.default_rng(seed), MOMENT_DRAWS))
    loc, scale = u.mean(axis=0), u.std(axis=0, ddof=1)
    phi, offset = {}, 0
    for site, shape, start, stop in target.layout:
        phi[f"{site.name}.loc"] = (loc[start:stop] + SHIFT * scale[start:stop]).reshape(shape)
        phi[f"{site.name}.log_scale"] = np.log(INFLATE * scale[start:stop]).reshape(shape)
        offset = stop
    assert offset == target.dim
    return FittedGuide(problem, "mean_field", phi)
