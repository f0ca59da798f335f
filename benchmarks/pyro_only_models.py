"""The battery's varying-intercept regression (``tests/battery/varying_intercept_pyro.py``, its data
and default sizes) registered twice: as a model that exists only in Pyro (its reference runs through
the torch bridge, ``targets.pyro_target``) and as its NumPyro twin only (the compiled route), so the
two references can be timed and compared."""

from __future__ import annotations

import numpy as np
import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as dist

from ppl_suite import registry
from ppl_suite.problem import Problem
from ppl_suite.spec import ModelSpec, Site

rng = np.random.default_rng(3)
N_GROUPS, N = 6, 60
GROUP = rng.integers(0, N_GROUPS, N)
X = rng.normal(size=N)
Y = 1.0 + 0.5 * X + rng.normal(0.0, 0.7, N_GROUPS)[GROUP] + rng.normal(size=N)
DATA = {"x": X, "group": GROUP, "y": Y}
SITES = (
    Site("mu_a"),
    Site("sigma_a", (), "positive"),
    Site("b"),
    Site("a", (N_GROUPS,)),
    Site("sigma", (), "positive"),
)
PYRO_NAME, NUMPYRO_NAME = "varying_intercept_pyro_only", "varying_intercept_numpyro_only"


def pyro_model(data, params):
    """As the battery writes it: a[group] indexes the intercepts from the left (one draw at a time)."""
    mu_a = pyro.sample("mu_a", dist.Normal(0.0, 5.0))
    sigma_a = pyro.sample("sigma_a", dist.HalfNormal(2.0))
    b = pyro.sample("b", dist.Normal(0.0, 5.0))
    with pyro.plate("groups", N_GROUPS):
        a = pyro.sample("a", dist.Normal(mu_a, sigma_a))
    sigma = pyro.sample("sigma", dist.HalfNormal(2.0))
    with pyro.plate("data", len(data["x"])):
        pyro.sample("y", dist.Normal(a[data["group"]] + b * data["x"], sigma), obs=data["y"])


def numpyro_model(data, params):
    mu_a = numpyro.sample("mu_a", ndist.Normal(0.0, 5.0))
    sigma_a = numpyro.sample("sigma_a", ndist.HalfNormal(2.0))
    b = numpyro.sample("b", ndist.Normal(0.0, 5.0))
    with numpyro.plate("groups", N_GROUPS):
        a = numpyro.sample("a", ndist.Normal(mu_a, sigma_a))
    sigma = numpyro.sample("sigma", ndist.HalfNormal(2.0))
    with numpyro.plate("data", len(data["x"])):
        numpyro.sample("y", ndist.Normal(a[data["group"]] + b * data["x"], sigma), obs=data["y"])


def _spec(name: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        description="the battery's varying-intercept regression",
        defaults={},
        sites=lambda params: SITES,
        generate_data=lambda rng, params: dict(DATA),
        guides=("mean_field",),
        problem_size=lambda params: 3 * N + sum(s.size for s in SITES),
        fixed_data=True,
    )


def varying_intercept(library: str) -> Problem:
    """The model registered with only its ``library`` ("pyro" or "numpyro") implementation."""
    if library == "pyro":
        registry.register(_spec(PYRO_NAME), pyro_model=pyro_model, replace=True)
        return Problem.build(PYRO_NAME, 0)
    registry.register(_spec(NUMPYRO_NAME), numpyro_model=numpyro_model, replace=True)
    return Problem.build(NUMPYRO_NAME, 0)
