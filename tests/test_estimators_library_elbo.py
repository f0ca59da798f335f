"""The hand-rolled Monte Carlo ELBO agrees with Pyro's and NumPyro's own Trace_ELBO for the same guide
parameters phi (each library's guide built by its backend's ``make_guide`` from phi), within 4 SE."""

from __future__ import annotations

import math

import jax
import pyro
import pytest
from pyro.infer import Trace_ELBO as PyroTraceELBO

from ppl_suite import registry
from ppl_suite.backends.numpyro import NumPyroBackend, as_jax
from ppl_suite.backends.numpyro import make_guide as numpyro_guide
from ppl_suite.backends.pyro import PyroBackend, as_torch
from ppl_suite.backends.pyro import make_guide as pyro_guide
from ppl_suite.estimators.elbo import elbo
from ppl_suite.problem import Problem
from ppl_suite.targets.numpyro_target import NumPyroTarget
from tests.test_estimators_support import continuous_models_with_oracle, imperfect_guide

MODELS = [m for m in continuous_models_with_oracle() if registry.implementation(m, "pyro") is not None]
N = 4000


@pytest.fixture(scope="module", params=MODELS)
def case(request):
    problem = Problem.build(request.param, data_seed=0)
    guide = imperfect_guide(problem)
    return problem, guide, elbo(NumPyroTarget(problem), guide, n=N, seed=0)


def test_numpyro_trace_elbo_agrees_with_handrolled_elbo(case):
    problem, guide, ours = case
    model = registry.implementation(problem.spec.name, "numpyro")
    theirs = NumPyroBackend._library_elbo(
        problem, "mean_field", model, numpyro_guide(problem, "mean_field", guide.params),
        as_jax(guide.params), N, jax.random.PRNGKey(1),
    )  # fmt: skip
    assert abs(theirs.value - ours.value) <= 4 * math.hypot(theirs.se, ours.se)


def test_pyro_trace_elbo_agrees_with_handrolled_elbo(case):
    problem, guide, ours = case
    model = registry.implementation(problem.spec.name, "pyro")
    pyro.get_param_store().clear()
    pyro.set_rng_seed(2)
    theirs = PyroBackend._library_elbo(
        model, pyro_guide(problem, "mean_field", guide.params), PyroTraceELBO,
        as_torch(problem.data), as_torch(problem.params), N,
    )  # fmt: skip
    pyro.get_param_store().clear()
    assert abs(theirs.value - ours.value) <= 4 * math.hypot(theirs.se, ours.se)
