"""The comparisons with a reference posterior (models without an oracle), checked on normal_normal
where the truth is known: the reference is exact posterior draws with the exact evidence, and the
guides are Gaussians N(m + delta s, (kappa s)^2) around the posterior N(m, s^2), so that

    KL(q || p)       = log(1 / kappa) + (kappa^2 + delta^2 - 1) / 2
    mean error       = delta,   sd error = kappa - 1
    W2(q, p)         = s sqrt(delta^2 + (1 - kappa)^2)

Every tolerance is a number of the estimate's own standard errors; the W2 check adds the floor,
which bounds the finite-sample bias of the empirical distance (triangle inequality)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import stats

from ppl_suite.calibrate import sd_interval
from ppl_suite.estimators.elbo import elbo
from ppl_suite.estimators.kl import kl_reference
from ppl_suite.estimators.posterior_moments import moment_errors
from ppl_suite.estimators.wasserstein import empirical_w2, wasserstein_to_reference
from ppl_suite.problem import Problem
from ppl_suite.targets.build import target_for
from ppl_suite.targets.reference_posterior import ReferencePosterior


@dataclass(frozen=True)
class ShiftedGaussian:
    """q(mu) = N(m + delta s, (kappa s)^2), a GuideDensity in NumPy."""

    loc: float
    scale: float
    samples_nothing: bool = False

    def sample(self, seed: int, n: int) -> dict[str, np.ndarray]:
        return {"mu": np.random.default_rng(seed).normal(self.loc, self.scale, n)}

    def log_q(self, latents: dict[str, np.ndarray]) -> np.ndarray:
        return stats.norm.logpdf(latents["mu"], self.loc, self.scale)

    def kl_to(self, factors):  # pragma: no cover - not used here
        return None


@pytest.fixture(scope="module")
def posterior():
    problem = Problem.build("normal_normal", 0, {})
    exact = problem.exact()
    m, s = float(exact.mean()["mu"]), float(np.sqrt(exact.covariance()[0, 0]))
    return problem, exact, m, s


def reference(exact, seed: int, n: int = 4000, se: float | None = 0.01) -> ReferencePosterior:
    draws = exact.sample(np.random.default_rng(seed), n)
    return ReferencePosterior(draws, float(n), exact.log_evidence, se, "" if se else "AIS unreliable: test")


def test_kl_by_reference_matches_the_closed_form(posterior):
    problem, exact, m, s = posterior
    delta, kappa = 0.5, 0.7
    guide = ShiftedGaussian(m + delta * s, kappa * s)
    truth = math.log(1 / kappa) + (kappa**2 + delta**2 - 1) / 2
    target = target_for(problem)
    estimate = kl_reference(elbo(target, guide, 20_000, seed=3), reference(exact, 0, se=0.02))
    assert estimate.reliability == "reliable"
    assert abs(estimate.value - truth) <= 4 * estimate.se
    assert estimate.se >= 0.02  # the reference's own error is carried


def test_kl_by_reference_is_unreliable_without_a_reliable_evidence(posterior):
    problem, exact, m, s = posterior
    estimate = kl_reference(
        elbo(target_for(problem), ShiftedGaussian(m, s), 1000), reference(exact, 0, se=None)
    )
    assert estimate.reliability == "unreliable" and "AIS unreliable" in estimate.diagnostic
    assert math.isnan(estimate.se)


@pytest.mark.parametrize(("delta", "kappa"), [(0.0, 1.0), (0.3, 0.7)])
def test_moment_errors_match_the_shift_and_the_scale(posterior, delta, kappa):
    problem, exact, m, s = posterior
    guide = ShiftedGaussian(m + delta * s, kappa * s)
    estimate = moment_errors(target_for(problem), guide, reference(exact, 1), n=20_000, seed=2)
    errors = estimate.extras["coordinates"]["mu"]
    assert abs(errors["mean_error"] - delta) <= 4 * errors["mean_error_se"]
    assert abs(errors["sd_error"] - (kappa - 1)) <= 4 * errors["sd_error_se"]
    assert estimate.value == errors["mean_error"] and estimate.extras["coordinate"] == "mu"


def test_moment_errors_standard_error_is_calibrated(posterior):
    """(mean error - delta) / SE over R independent references and guides: sd in the chi-square
    interval for R draws (99%)."""
    problem, exact, m, s = posterior
    delta, kappa, replicates = 0.3, 0.7, 40
    guide = ShiftedGaussian(m + delta * s, kappa * s)
    target = target_for(problem)
    z = []
    for r in range(replicates):
        estimate = moment_errors(target, guide, reference(exact, 100 + r, n=2000), n=2000, seed=r)
        z.append((estimate.extras["coordinates"]["mu"]["mean_error"] - delta) / estimate.se)
    low, high = sd_interval(replicates)
    assert low <= np.std(z, ddof=1) <= high


def test_empirical_w2_of_one_dimensional_samples_is_the_sorted_matching():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, (300, 1)), rng.normal(2, 0.5, (300, 1))
    sorted_pairs = np.sqrt(np.mean((np.sort(a[:, 0]) - np.sort(b[:, 0])) ** 2))
    assert empirical_w2(a, b) == pytest.approx(sorted_pairs, rel=1e-12)


@pytest.mark.parametrize(("delta", "kappa"), [(0.0, 1.0), (1.0, 0.5)])
def test_wasserstein_to_the_reference(posterior, delta, kappa):
    problem, exact, m, s = posterior
    guide = ShiftedGaussian(m + delta * s, kappa * s)
    estimate = wasserstein_to_reference(target_for(problem), guide, reference(exact, 2), m=500, batches=4)
    truth = s * math.hypot(delta, 1 - kappa)
    floor = estimate.extras["floor"]
    assert abs(estimate.value - truth) <= 4 * estimate.se + 2 * floor
    if delta == 0.0:  # q is the posterior: the distance is the floor's, within the two SEs
        assert abs(estimate.value - floor) <= 4 * math.hypot(estimate.se, estimate.extras["floor_se"])
    else:
        assert estimate.value - floor > 4 * math.hypot(estimate.se, estimate.extras["floor_se"])


def test_wasserstein_needs_enough_reference_draws(posterior):
    problem, exact, m, s = posterior
    with pytest.raises(ValueError, match="reference draws each after thinning"):
        wasserstein_to_reference(target_for(problem), ShiftedGaussian(m, s), reference(exact, 0, n=300))


def test_wasserstein_floor_holds_for_autocorrelated_reference_draws(posterior):
    """Reference draws from 4 AR(1) chains (rho 0.95) with the posterior as stationary law: thinned
    to their effective sample size, q = p reads at its floor (within the two SEs), where subsets of
    neighbouring draws would put the floor too low."""
    problem, exact, m, s = posterior
    rho, chains, length = 0.95, 4, 8000
    rng = np.random.default_rng(7)
    draws = np.empty((chains, length))
    draws[:, 0] = rng.normal(0, 1, chains)
    for t in range(1, length):
        draws[:, t] = rho * draws[:, t - 1] + np.sqrt(1 - rho**2) * rng.normal(0, 1, chains)
    ess = chains * length * (1 - rho) / (1 + rho)  # of an AR(1) chain
    ar = ReferencePosterior({"mu": m + s * draws.reshape(-1)}, ess, exact.log_evidence, 0.01, "")
    estimate = wasserstein_to_reference(target_for(problem), ShiftedGaussian(m, s), ar, batches=4, seed=3)
    assert estimate.extras["thinned_every"] == math.ceil(chains * length / ess)
    floor, floor_se = estimate.extras["floor"], estimate.extras["floor_se"]
    assert abs(estimate.value - floor) <= 4 * math.hypot(estimate.se, floor_se)


def test_a_reference_kl_below_zero_beyond_its_se_is_a_failed_check():
    """KL = log p(x)_AIS - ELBO can dip below 0 by noise, never beyond 4 of its SEs."""
    import pandas as pd

    from ppl_suite import checks, schema

    def row(kl: float, se: float) -> dict:
        return {schema.KEY: "m/b/g", schema.STATUS: schema.OK, schema.KL_METHOD: "reference",
                schema.KL: kl, schema.KL_SE: se}  # fmt: skip

    rows = pd.DataFrame([row(-0.1, 0.05), row(-0.5, 0.05), row(-0.5, math.nan)])
    (failure,) = checks.reference_kl_failures(rows)
    assert "-0.5 nats = -10.0 SE" in failure


def test_a_cell_without_a_buildable_reference_fails_with_the_reason(monkeypatch, tmp_path):
    """No oracle and no reference: nothing to measure the fit against, so the cell is failed (rerun
    next time), with the reference's error, instead of an ok row whose KL is NaN. The reference cache
    is empty (a stored reference is read without ``reference_for``)."""
    from ppl_suite import references, schema
    from ppl_suite.backends import SVIConfig
    from ppl_suite.cell import Cell
    from ppl_suite.execute import execute

    def gate_fails(problem, *args, **kwargs):
        raise references.ReferenceGateError("bulk ESS 12 < 1000")

    monkeypatch.setattr(references, "reference_for", gate_fails)
    monkeypatch.setenv("PPL_SUITE_REFERENCE_CACHE", str(tmp_path))
    cell = Cell("eight_schools_noncentered", "handrolled", "mean_field", svi=SVIConfig(steps=20))
    record = execute(cell)
    assert record.row[schema.STATUS] == schema.FAILED
    assert "no reference: ReferenceGateError: bulk ESS 12 < 1000" in record.row[schema.ERROR]
