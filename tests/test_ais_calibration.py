"""Calibration of AIS and BDMC: over R seeds, z = (estimate - exact log p(x)) / SE of the estimates
labelled reliable must look like R draws of N(0, 1).

For R independent N(0, 1) draws, each at 99 %:
    (R - 1) z_sd^2 ~ chi2(R - 1)  =>  chi2.ppf(0.005, R - 1) <= (R - 1) z_sd^2 <= chi2.ppf(0.995, R - 1)
    z_mean ~ N(0, 1 / R)          =>  |z_mean| <= norm.ppf(0.995) / sqrt(R)
A regime whose SE cannot be trusted must be labelled unreliable instead; so that the check is not
vacuous, at least MIN_RELIABLE of the runs must be labelled reliable.

Fast: normal_normal (d = 1) BDMC, both passes; bayes_linreg (d = 10, n = 100) forward AIS.
Measured over more seeds by benchmarks/bench_ais.py.
Slow: bayes_linreg at its defaults and ppca at its maximum-likelihood theta (d = 60), BDMC, larger R.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scipy import stats

from models.ppca.posterior import maximum_likelihood
from ppl_suite.estimators.ais import AISConfig, Annealer, forward_ais
from ppl_suite.estimators.bdmc import sandwich
from ppl_suite.problem import Problem
from ppl_suite.targets.build import target_for

LEVEL = 0.99
MIN_RELIABLE = 2 / 3


def ppca_at_maximum_likelihood(data_seed: int = 0) -> Problem:
    """ppca at the closed-form maximum-likelihood theta = (W, mu, sigma) of its data (Tipping, Bishop)."""
    problem = Problem.build("ppca", data_seed)
    ml = maximum_likelihood(problem.data["x"], np.shape(problem.params["W"])[1])
    return problem.with_params({"W": ml.W, "mu": ml.mu, "log_sigma": float(np.log(ml.sigma))})


def z_sd_interval(replicates: int, level: float = LEVEL) -> tuple[float, float]:
    """Where the sd (ddof 1) of ``replicates`` N(0, 1) draws falls with probability ``level``."""
    dof = replicates - 1
    tail = (1.0 - level) / 2
    return float(np.sqrt(stats.chi2.ppf(tail, dof) / dof)), float(
        np.sqrt(stats.chi2.ppf(1 - tail, dof) / dof)
    )


def z_mean_bound(replicates: int, level: float = LEVEL) -> float:
    """|mean| of ``replicates`` N(0, 1) draws stays below this with probability ``level``."""
    return float(stats.norm.ppf(0.5 + level / 2) / np.sqrt(replicates))


@dataclass(frozen=True)
class Calibration:
    """z of the reliable runs among ``runs``."""

    z: np.ndarray
    runs: int

    @classmethod
    def of(cls, values: list[float], ses: list[float], reliable: list[bool], truth: float) -> Calibration:
        keep = np.asarray(reliable)
        z = (np.asarray(values)[keep] - truth) / np.asarray(ses)[keep]
        return cls(z, len(values))

    def check(self, what: str) -> None:
        low, high = z_sd_interval(self.z.size)
        z_sd, z_mean = float(np.std(self.z, ddof=1)), float(np.mean(self.z))
        print(
            f"{what}: {self.z.size} of {self.runs} reliable, z_mean {z_mean:+.2f} "
            f"(|.| <= {z_mean_bound(self.z.size):.2f}), z_sd {z_sd:.2f} in [{low:.2f}, {high:.2f}]"
        )
        assert self.z.size >= MIN_RELIABLE * self.runs
        assert low <= z_sd <= high
        assert abs(z_mean) <= z_mean_bound(self.z.size)


def bdmc_calibration(problem: Problem, config: AISConfig, replicates: int) -> dict[str, Calibration]:
    exact = problem.exact()
    annealer = Annealer(target_for(problem), config)
    runs = [sandwich(annealer, exact, seed) for seed in range(replicates)]
    lower = [r.extras["lower"] for r in runs], [r.extras["lower_se"] for r in runs]
    upper = [r.value for r in runs], [r.se for r in runs]
    return {
        "forward": Calibration.of(
            *lower, [not r.extras["lower_unreliable_reason"] for r in runs], exact.log_evidence
        ),
        "reverse": Calibration.of(
            *upper, [not r.extras["unreliable_reason"] for r in runs], exact.log_evidence
        ),
    }


def ais_calibration(problem: Problem, config: AISConfig, replicates: int) -> Calibration:
    annealer = Annealer(target_for(problem), config)
    runs = [forward_ais(annealer, seed) for seed in range(replicates)]
    return Calibration.of(
        [r.value for r in runs], [r.se for r in runs], [r.reliability == "reliable" for r in runs],
        problem.exact().log_evidence,
    )  # fmt: skip


def test_acceptance_interval_holds_its_level():
    """The z_sd interval contains the sd of R simulated N(0, 1) draws about LEVEL of the time."""
    rng = np.random.default_rng(0)
    low, high = z_sd_interval(30)
    sds = rng.standard_normal((20_000, 30)).std(axis=1, ddof=1)
    inside = np.mean((sds >= low) & (sds <= high))
    assert abs(inside - LEVEL) <= 4 * np.sqrt(LEVEL * (1 - LEVEL) / sds.size)


def test_bdmc_on_normal_normal_is_calibrated():
    result = bdmc_calibration(Problem.build("normal_normal", 0), AISConfig(chains=64), replicates=30)
    for name, calibration in result.items():
        calibration.check(f"normal_normal {name}")


def test_forward_ais_on_bayes_linreg_is_calibrated():
    """At a lower ESS target than the default (fewer temperatures, so that the test is fast)."""
    problem = Problem.build("bayes_linreg", 0, {"n": 100})
    config = AISConfig(chains=64, target_ess_fraction=0.6)
    ais_calibration(problem, config, replicates=20).check("bayes_linreg (n = 100) forward")


@pytest.mark.slow
@pytest.mark.parametrize(
    "problem",
    [Problem.build("bayes_linreg", 0), ppca_at_maximum_likelihood(0)],
    ids=["bayes_linreg", "ppca_at_ml"],
)
def test_bdmc_is_calibrated_in_ten_and_sixty_dimensions(problem):
    result = bdmc_calibration(problem, AISConfig(chains=64), replicates=40)
    for name, calibration in result.items():
        calibration.check(f"{problem.spec.name} {name}")
