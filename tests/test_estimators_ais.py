"""AIS and BDMC on every closed-form continuous model: forward AIS <= log p(x) <= reverse AIS.

One compiled runner per model serves the pilot, the forward and the reverse pass (``bdmc_bounds``).
Both bounds hold in expectation; each is checked within 4 of its own (delta-method) SE, and the
forward estimate, unbiased in p(x), must land within 4 SE of the exact log p(x).
"""

from __future__ import annotations

import numpy as np
import pytest

from ppl_suite import estimators
from ppl_suite.estimators.ais import AISConfig, geometric_schedule, sigmoid_schedule
from ppl_suite.estimators.bdmc import bdmc_bounds
from ppl_suite.problem import Problem
from tests.test_estimators_support import continuous_models_with_oracle

MODELS = continuous_models_with_oracle()
CONFIG = AISConfig(temperatures=1000, chains=64, leapfrog_steps=5)


@pytest.fixture(scope="module", params=MODELS)
def sandwich(request):
    problem = Problem.build(request.param, data_seed=0)
    exact = problem.exact()
    return exact.log_evidence, bdmc_bounds(problem, exact, CONFIG, seed=0)


def test_forward_ais_lands_within_4_se_of_log_evidence(sandwich):
    truth, result = sandwich
    print(f"AIS - exact = {(result.extras['lower'] - truth) / result.extras['lower_se']:.2f} SE")
    assert abs(result.extras["lower"] - truth) <= 4 * result.extras["lower_se"]


def test_bdmc_sandwiches_log_evidence(sandwich):
    truth, result = sandwich
    print(f"reverse - exact = {(result.value - truth) / result.se:.2f} SE, gap {result.extras['gap']:.3f}")
    assert result.extras["lower"] <= truth + 4 * result.extras["lower_se"]
    assert result.value >= truth - 4 * result.se
    # Grosse et al.'s mean-log-weight bounds are bounds in expectation too.
    assert result.extras["lower_mean_log_weight"] <= result.extras["lower"] + 1e-12
    assert result.extras["upper_mean_log_weight"] >= result.value - 1e-12


def test_ais_plugin_on_normal_normal_with_mala():
    problem = Problem.build("normal_normal", 0)
    exact = problem.exact()
    ais = estimators.get("ais", temperatures=300, chains=32, leapfrog_steps=1)
    estimate = ais.estimate(problem, None, exact, seed=1)
    assert abs(estimate.value - exact.log_evidence) <= 4 * estimate.se
    assert 0.3 < estimate.extras["acceptance"] < 0.95
    assert estimate.extras["transitions"] == 300 * 32


@pytest.mark.parametrize("schedule", [geometric_schedule, sigmoid_schedule])
def test_schedules_run_from_0_to_1_increasing(schedule):
    betas = schedule(50)
    assert betas[0] == 0 and betas[-1] == 1 and betas.size == 51 and np.all(np.diff(betas) > 0)


def test_gradient_estimators_skip_discrete_models_with_a_reason():
    from dataclasses import replace

    from ppl_suite.spec import Site

    problem = Problem.build("normal_normal", 0)
    spec = replace(problem.spec, sites=lambda params: (Site("k", support="integer", cardinality=3),))
    discrete = Problem(spec, problem.params, problem.data, 0)
    for name in ("ais", "bdmc", "laplace"):
        assert "discrete" in estimators.get(name).applies(discrete, problem.exact())
