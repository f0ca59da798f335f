"""The harmonic-mean estimator of log p(x), kept as a bad example.

    1 / p(x) = E_{p(z | x)}[1 / p(x | z)]
    log p(x) ~= -log((1/n) sum_i exp(-log p(x | z_i))),   z_i ~ p(z | x)

Newton and Raftery (1994), "Approximate Bayesian inference with the weighted likelihood bootstrap",
JRSS B 56. Consistent, but 1 / p(x | z) usually has infinite variance under the posterior (the
prior's tails, where the likelihood is tiny, are rarely visited), so the estimate converges
arbitrarily slowly, overestimates log p(x) (Jensen, in expectation) and its SE is meaningless:
Neal (2008), "The harmonic mean of the likelihood: worst Monte Carlo method ever" (blog post).

The reported SE is the delta-method one, sd(1/L) / (sqrt(n) mean(1/L)), shown for how misleading it is;
``extras["ess"]`` (Kish) of the weights 1/L tells how few draws carry the estimate.
Draws are exact (the model's oracle); log p(x | z) is log p(x, z) - log p(z) from the NumPyro model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ppl_suite.estimate import Estimate
from ppl_suite.estimators import need_exact, need_positive_int
from ppl_suite.estimators.target import constrained_log_densities, numpyro_reason
from ppl_suite.estimators.weights import effective_sample_size, log_mean_exp_se
from ppl_suite.fitted_guide import FittedGuide
from ppl_suite.problem import Problem
from ppl_suite.spec import ExactPosterior


def harmonic_mean_log_evidence(
    problem: Problem, exact: ExactPosterior, n: int = 10_000, seed: int = 0
) -> Estimate:
    need_positive_int("harmonic_mean", "n (the SE needs two draws)", n, minimum=2)
    need_exact("harmonic_mean", exact)
    start = time.perf_counter()
    z = exact.sample(np.random.default_rng(seed), n)
    log_prior, log_joint = constrained_log_densities(problem, z)
    inverse, se = log_mean_exp_se(-(log_joint - log_prior))
    return Estimate(
        -inverse,
        se,
        n_evals=n,
        seconds=time.perf_counter() - start,
        extras={"ess": effective_sample_size(-(log_joint - log_prior)), "infinite_variance_warning": True},
    )


@dataclass(frozen=True)
class HarmonicMean:
    """Plug-in: the harmonic mean of the likelihood over exact posterior draws (a bad example)."""

    n: int = 10_000
    name: ClassVar[str] = "harmonic_mean"
    quantity: ClassVar[str] = "log_evidence"
    kind: ClassVar[str] = "consistent"
    uses_guide: ClassVar[bool] = False

    def __post_init__(self) -> None:
        need_positive_int(self.name, "n", self.n, minimum=2)

    def applies(self, problem: Problem, exact: ExactPosterior | None, guide: str | None = None) -> str | None:
        if exact is None:
            return "needs exact posterior draws, and the model has no oracle"
        return numpyro_reason(problem)

    def estimate(
        self, problem: Problem, guide: FittedGuide | None, exact: ExactPosterior | None, seed: int = 0
    ) -> Estimate:
        return harmonic_mean_log_evidence(problem, exact, self.n, seed)


ESTIMATORS = (HarmonicMean(),)
