"""Calibration: the acceptance intervals are those of standard normal z's, a correct SE passes and a
halved one fails, the guides are the posterior with its spread scaled, and the command writes one row
per model x estimator x regime."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ppl_suite import calibrate, cli, estimators
from ppl_suite.estimate import Estimate
from ppl_suite.matrix import ConfigError
from ppl_suite.problem import Problem
from ppl_suite.targets.build import target_for
from ppl_suite.targets.exact_guide import gaussian_family, gaussian_guide

R = 40
REQUIRED = ["model", "estimator", "regime", "replicates", "z_mean", "z_sd", "frac_abs_z_gt_2",
            "frac_abs_z_gt_3", "khat", "verdict"]  # fmt: skip
FAST = {  # the production estimators at smaller sample sizes: each SE is still the one to check
    "elbo": estimators.get("elbo", n=2000),
    "kl_monte_carlo": estimators.get("kl_monte_carlo", n=2000),
    "kl_identity": estimators.get("kl_identity", n=2000),
    "importance": estimators.get("importance", n=4000, ks=(1, 10, 100)),
    "iwae": estimators.get("iwae", k=100, repeats=40),  # the same 4000 weights as importance
}
LIBRARIES = list(calibrate.LIBRARY_ESTIMATORS.values())
CASES = [
    (model, regime, name)
    for model in ("normal_normal", "bayes_linreg")
    for regime in ("exact", "slightly_off")
    for name in [*FAST, *(e.name for e in LIBRARIES if model == "normal_normal")]
]
# each row is two checks; at this level the whole set of rows fails by chance with probability 1%
FAMILY_LEVEL = 1 - 0.01 / (2 * len(CASES))


@functools.cache
def rows(model: str, libraries: bool) -> dict[tuple[str, str], dict]:
    """The calibration rows of ``model``'s regimes in CASES at R replicates, computed once, for the
    suite's estimators or the libraries' ELBOs."""
    problem = calibrate.calibration_problem(model)
    target = target_for(problem)
    chosen = LIBRARIES if libraries else list(FAST.values())
    out = {}
    for regime in calibrate.regimes(problem)[:2]:
        for row in calibrate.calibrate_regime(target, regime, chosen, range(R), FAMILY_LEVEL):
            out[regime.name, row["estimator"]] = row
    return out


def test_sd_and_mean_intervals_hold_99_percent_of_standard_normal_samples():
    """Of 20 000 samples of R standard normal draws, 99% have their sd (and, apart, their mean) in
    the intervals, within 4 binomial SE."""
    z = np.random.default_rng(0).standard_normal((20_000, R))
    low, high = calibrate.sd_interval(R)
    sd = z.std(axis=1, ddof=1)
    se = 4 * math.sqrt(0.99 * 0.01 / len(z))
    assert abs(np.mean((low <= sd) & (sd <= high)) - 0.99) < se
    assert abs(np.mean(np.abs(z.mean(axis=1)) <= calibrate.mean_limit(R)) - 0.99) < se
    assert low == pytest.approx(math.sqrt(stats.chi2.ppf(0.005, R - 1) / (R - 1)))


def test_verdict_passes_standard_normal_z_and_fails_when_the_se_is_halved():
    z = np.random.default_rng(1).standard_normal(R)
    assert calibrate.calibration_verdict(z) == "ok"
    halved = calibrate.calibration_verdict(2 * z)  # (estimate - exact) / (SE / 2)
    assert calibrate.failed(halved) and "z_sd" in halved
    doubled = calibrate.calibration_verdict(z / 2)  # an SE twice too large fails too
    assert calibrate.failed(doubled) and "z_sd" in doubled
    assert calibrate.failed(calibrate.calibration_verdict(z + 1))  # biased
    # a lower bound may sit below its exact value, never above; an upper bound the other way round
    assert calibrate.calibration_verdict(z - 1, "lower_bound") == "ok"
    assert calibrate.failed(calibrate.calibration_verdict(z + 1, "lower_bound"))
    assert calibrate.failed(calibrate.calibration_verdict(z - 1, "upper_bound"))


@pytest.mark.parametrize(("model", "regime", "name"), CASES)
def test_standard_errors_are_calibrated_or_labelled(model, regime, name):
    row = rows(model, name in calibrate.LIBRARY_ESTIMATORS)[regime, name]
    assert row["replicates"] == R
    assert (
        row["verdict"] == "ok"
        or row["verdict"].startswith("unreliable (labelled")
        or row["verdict"].startswith("rounding-limited")  # q = p: checked against the rounding floor
    ), row


@dataclasses.dataclass(frozen=True)
class HalvedSE:
    """A planted error: the ELBO with its standard error halved."""

    name = "elbo_se_halved"
    quantity = "elbo"
    kind = "unbiased"
    uses_guide = True

    def applies(self, target, guide):
        return estimators.get("elbo").applies(target, guide)

    def estimate(self, target, guide, seed, cache=None) -> Estimate:
        right = estimators.get("elbo", n=2000).estimate(target, guide, seed, cache)
        return dataclasses.replace(right, se=right.se / 2)


def test_a_halved_standard_error_fails_calibration():
    problem = calibrate.calibration_problem("normal_normal")
    slightly_off = calibrate.regimes(problem)[1]
    chosen = [FAST["elbo"], HalvedSE()]
    right, halved = calibrate.calibrate_regime(
        target_for(problem), slightly_off, chosen, range(R), FAMILY_LEVEL
    )
    assert right["verdict"] == "ok"
    assert halved["verdict"].startswith("fail: z_sd") and halved["z_sd"] == pytest.approx(2 * right["z_sd"])


def test_badly_off_guide_has_khat_above_07_and_importance_is_labelled_unreliable():
    problem = calibrate.calibration_problem("normal_normal")
    badly_off = calibrate.regimes(problem)[2]
    importance = estimators.get("importance")  # the production sample size: k-hat's threshold is 0.7
    (row,) = calibrate.calibrate_regime(target_for(problem), badly_off, [importance], range(5))
    assert row["khat"] > 0.7
    assert (
        row["fraction_unreliable"] == 1.0 and row["verdict"] == "unreliable (labelled in 100% of replicates)"
    )
    assert math.isfinite(row["z_sd"])  # the z statistics are still shown


@pytest.mark.parametrize("model", ["bayes_linreg", "ppca"])
def test_regime_guides_are_the_posterior_with_its_spread_scaled(model):
    """log q(z) = log N(z; m, s^2 S) for the exact posterior N(m, S); the closed-form KL of the
    guide's library agrees with the calibration's d/2 (s^2 - 1 - 2 log s) to rounding."""
    problem = calibrate.calibration_problem(model)
    exact = problem.exact()
    mean = np.concatenate([np.ravel(exact.mean()[s.name]) for s in problem.sites])
    for regime, scale in zip(calibrate.regimes(problem), calibrate.REGIMES.values(), strict=True):
        z = regime.guide.sample(0, 50)
        flat = np.concatenate([z[s.name].reshape(50, -1) for s in problem.sites], axis=1)
        expected = stats.multivariate_normal(mean, scale**2 * exact.covariance()).logpdf(flat)
        np.testing.assert_allclose(regime.guide.log_q(z), expected, rtol=1e-12)
        kl = estimators.get("kl_analytic").estimate(target_for(problem), regime.guide, 0)
        assert abs(kl.value - regime.exact["kl_to_posterior"]) <= calibrate.EXACT_TOLERANCE * regime.kl_floor


def test_ppca_is_calibrated_at_its_maximum_likelihood_theta():
    """At theta_ML the oracle's log p(X) is the closed-form maximum, W has orthogonal columns and the
    mean-field family holds the posterior."""
    from models.ppca.posterior import maximum_likelihood

    problem = calibrate.calibration_problem("ppca")
    ml = maximum_likelihood(problem.data["x"], 2)
    assert problem.exact().log_evidence == pytest.approx(ml.log_likelihood, abs=1e-9)
    assert gaussian_family(problem) == "mean_field"
    assert gaussian_family(Problem.build("bayes_linreg", 0)) == "full_rank"
    assert gaussian_family(Problem.build("beta_bernoulli", 0)) is None
    with pytest.raises(ValueError, match="cannot hold"):
        gaussian_guide(Problem.build("bayes_linreg", 0), "mean_field")


def _args(**overrides) -> argparse.Namespace:
    args = cli.parser().parse_args(["calibrate"])
    return argparse.Namespace(**{**vars(args), **overrides})


def test_command_writes_one_row_per_model_estimator_regime(tmp_path, capsys):
    args = _args(models=["normal_normal"], estimators=["elbo", "psis", "laplace", "numpyro_trace_elbo"],
                 replicates=3, out=str(tmp_path))  # fmt: skip
    code = args.handler(args)
    table = pd.read_csv(tmp_path / "calibration.csv")
    assert list(table.columns[: len(REQUIRED)]) == REQUIRED
    keys = list(zip(table["model"], table["estimator"], table["regime"], strict=True))
    guided = {
        ("normal_normal", e, r) for e in ("elbo", "psis", "numpyro_trace_elbo") for r in calibrate.REGIMES
    }
    assert len(keys) == len(set(keys)) and set(keys) == guided | {("normal_normal", "laplace", "none")}
    assert (table["replicates"] == 3).all()
    assert (tmp_path / "calibration.png").stat().st_size > 0
    assert code == (calibrate.EXIT_FAILED if table["verdict"].map(calibrate.failed).any() else 0)
    assert "numpyro_trace_elbo" in capsys.readouterr().out


def test_bad_arguments_are_one_message_each():
    args = _args(models=["nope", "beta_bernoulli"], estimators=["bogus"], replicates=1)
    with pytest.raises(ConfigError) as error:
        calibrate.validate(args)
    problems = error.value.problems
    assert len(problems) == 3
    assert "'nope', 'beta_bernoulli'" in problems[0] and "normal_normal" in problems[0]
    assert "'bogus'" in problems[1] and "pyro_trace_elbo" in problems[1]
    assert "--replicates" in problems[2]


@pytest.mark.parametrize("library", list(calibrate.LIBRARY_ESTIMATORS))
def test_library_elbos_of_a_fixed_guide_depend_on_the_seed_alone(library):
    problem = calibrate.calibration_problem("normal_normal")
    target, guide = target_for(problem), calibrate.regimes(problem)[1].guide
    estimator = calibrate.LIBRARY_ESTIMATORS[library]
    first, again, other = (estimator.estimate(target, guide, seed) for seed in (0, 0, 1))
    assert (first.value, first.se) == (again.value, again.se) and first.value != other.value


def test_a_rounding_limited_estimate_off_beyond_its_floors_fails():
    """Replicates that spread less than their rounding floor (q = p) are judged against the floor: a
    constant error of 1e-10 nats with a floor of 1e-14 is a failure, 1e-14 is not."""
    regime = calibrate.Regime("exact", None, {"elbo": -10.0}, math.nan)
    estimator = estimators.get("elbo")

    def verdict(error: float) -> str:
        results = [Estimate(-10.0 + error, 1e-16, extras={"rounding_floor": 1e-14}) for _ in range(R)]
        return str(calibrate.summarize(estimator, regime, results)["verdict"])

    assert verdict(1e-14).startswith("rounding-limited")
    assert calibrate.failed(verdict(1e-10))
