"""AIS and BDMC: forward AIS <= log p(x) <= reverse AIS, the adaptive schedule, and the labels.

Both bounds hold in expectation; each is checked within 4 of its own (delta-method) SE. The
calibration of those SEs over many seeds is tests/test_ais_calibration.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from ppl_suite import estimators
from ppl_suite.estimators.ais import AISConfig, Annealer, forward_ais, stream_key
from ppl_suite.estimators.bdmc import INVERSION_SE, bdmc_bounds, sandwich
from ppl_suite.problem import Problem
from ppl_suite.targets.build import target_for
from tests.test_estimators_support import continuous_models_with_oracle

CONFIG = AISConfig(temperatures=4000, chains=64, leapfrog_steps=5)
FAST = ["normal_normal", "gamma_poisson"]  # real and positive supports; every other model: slow


@pytest.fixture(scope="module")
def normal_normal():
    problem = Problem.build("normal_normal", 0)
    return problem, Annealer(target_for(problem), CONFIG)


def sandwich_of(model: str):
    problem = Problem.build(model, data_seed=0)
    exact = problem.exact()
    return exact.log_evidence, bdmc_bounds(target_for(problem), exact, CONFIG, seed=0)


def check_sandwich(truth: float, result) -> None:
    x = result.extras
    lower_z, upper_z = (x["lower"] - truth) / x["lower_se"], (result.value - truth) / result.se
    print(f"lower {lower_z:+.2f} SE, upper {upper_z:+.2f} SE, T {x['temperatures']}, "
          f"ESS {x['lower_chain_ess']:.0f}/{x['chain_ess']:.0f}, {result.diagnostic}")  # fmt: skip
    assert result.reliability == "reliable", result.diagnostic
    assert abs(x["lower"] - truth) <= 4 * x["lower_se"]
    assert abs(result.value - truth) <= 4 * result.se
    assert x["lower_chain_ess"] >= 0.4 * CONFIG.chains and x["chain_ess"] >= 0.4 * CONFIG.chains


def test_bdmc_sandwiches_log_evidence(normal_normal):
    problem, annealer = normal_normal
    check_sandwich(problem.exact().log_evidence, sandwich(annealer, problem.exact(), 0))


def test_bdmc_sandwiches_log_evidence_on_a_positive_support():
    check_sandwich(*sandwich_of("gamma_poisson"))


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(set(continuous_models_with_oracle()) - set(FAST)))
def test_bdmc_sandwiches_log_evidence_of_every_continuous_model(model):
    check_sandwich(*sandwich_of(model))


def test_schedule_runs_from_0_to_1_within_the_maximum(normal_normal):
    _, annealer = normal_normal
    tuning = annealer.tune(stream_key(0, "test"))
    betas = tuning.schedule.betas
    assert betas[0] == 0 and betas[-1] == 1 and np.all(np.diff(betas) > 0)
    assert tuning.schedule.temperatures == tuning.check_temperatures[-1] <= CONFIG.temperatures
    assert tuning.check_ess[-1] >= CONFIG.target_ess_fraction * CONFIG.chains
    assert np.all(tuning.schedule.step_sizes > 0) and np.all(tuning.schedule.scales > 0)


def test_forward_ais_is_deterministic_and_independent_of_bdmc(normal_normal):
    problem, annealer = normal_normal
    first, again = forward_ais(annealer, 3), forward_ais(annealer, 3)
    assert first.value == again.value and first.se == again.se
    bdmc_forward = sandwich(annealer, problem.exact(), 3).extras["lower"]
    assert bdmc_forward != first.value  # its own stream: an independent run, not the same one twice


def test_too_few_temperatures_are_labelled_unreliable():
    """One temperature, for a posterior 20 times narrower than the prior: the weights degenerate."""
    target = target_for(Problem.build("normal_normal", 0))
    result = estimators.get("ais", temperatures=1).estimate(target, None, seed=0)
    assert result.extras["temperatures"] == 1
    assert result.reliability == "unreliable"
    assert result.diagnostic.startswith("chain ESS") and result.extras["chain_ess"] < 0.4 * CONFIG.chains
    assert result.diagnostic.endswith("the schedule is at its maximum of 1 temperatures")


class WidenedPosterior:
    """Draws of the exact posterior spread `factor` times wider about its mean: not posterior draws."""

    def __init__(self, exact, factor: float):
        self.exact, self.factor = exact, factor

    def sample(self, rng, n):
        draws, mean = self.exact.sample(rng, n), self.exact.mean()
        return {k: mean[k] + self.factor * (v - mean[k]) for k, v in draws.items()}


def test_an_inverted_sandwich_is_labelled_unreliable(normal_normal):
    """Reverse AIS from draws in the posterior's tails sees low likelihoods, so its "upper bound"
    falls below the forward bound; that must not pass as a reliable estimate."""
    problem, annealer = normal_normal
    result = sandwich(annealer, WidenedPosterior(problem.exact(), 8.0), seed=0)
    x = result.extras
    assert x["gap"] < -INVERSION_SE * x["gap_se"]
    assert result.reliability == "unreliable"
    assert f"sandwich inverted by {-x['gap']:.3g} nats" in result.diagnostic


def test_plugins_run_on_a_target_and_skip_discrete_models_with_a_reason():
    problem = Problem.build("normal_normal", 0)
    target = target_for(problem)
    bdmc = estimators.get("bdmc", temperatures=300, chains=32, leapfrog_steps=1)
    assert bdmc.applies(target, None) is None
    estimate = bdmc.estimate(target, None, seed=1)
    assert abs(estimate.value - problem.exact().log_evidence) <= 4 * estimate.se
    assert estimate.extras["chains"] == 32 and estimate.extras["temperatures"] <= 300
    discrete = target_for(Problem.build("gaussian_mixture", 0))
    for name in ("ais", "bdmc"):
        assert "discrete" in estimators.get(name).applies(discrete, None)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"target_ess_fraction": 1.0}, r"target_ess_fraction must lie in \(0, 1\)"),
        ({"target_accept": 0.0}, r"target_accept must lie in \(0, 1\)"),
        ({"pilot_chains": 1}, r"pilot_chains .* integer >= 2"),
    ],
)
def test_bad_settings_raise_a_clear_error(settings, match):
    with pytest.raises(ValueError, match=match):
        estimators.get("ais", **settings)
