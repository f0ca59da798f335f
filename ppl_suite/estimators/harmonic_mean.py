"""The harmonic-mean estimator of log p(x), kept as a bad example.

    1 / p(x) = E_{p(z | x)}[1 / p(x | z)]
    log p(x) ~= -log((1/n) sum_i exp(-log p(x | z_i))),   z_i ~ p(z | x)

Newton and Raftery (1994), "Approximate Bayesian inference with the weighted likelihood bootstrap",
JRSS B 56. Consistent, but 1 / p(x | z) usually has infinite variance under the posterior (the
prior's tails, where the likelihood is tiny, are rarely visited), so the estimate converges
arbitrarily slowly, overestimates log p(x) (Jensen, in expectation) and its SE is meaningless:
Neal (2008), "The harmonic mean of the likelihood: worst Monte Carlo method ever" (blog post).

The reported SE is the delta-method one, sd(1/L) / (sqrt(n) mean(1/L)), shown for how misleading it is;
its reliability follows the PSIS k-hat of the weights 1/L with the threshold min(1 - 1/log10 n, 0.7)
(Vehtari et al. 2024), and ``extras["ess"]`` (Kish) tells how few draws carry the estimate.
Draws are exact (the model's oracle, ``harmonic_mean`` stream); log p(x | z) is the Target's
Jacobian-free likelihood at u = T^-1(z) (``prior_and_likelihood``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import jax
import numpy as np

from ppl_suite.estimate import Estimate
from ppl_suite.estimators import need_continuous, need_exact, need_positive_int
from ppl_suite.estimators.cache import EvaluationCache
from ppl_suite.estimators.streams import stream_seed
from ppl_suite.estimators.weights import (
    effective_sample_size,
    khat_reliability,
    log_mean_exp_se,
    pareto_smoothed,
)
from ppl_suite.targets import GuideDensity, Target

STREAM = "harmonic_mean"


def harmonic_mean_log_evidence(target: Target, n: int = 10_000, seed: int = 0) -> Estimate:
    need_positive_int("harmonic_mean", "n (the SE needs two draws)", n, minimum=2)
    exact = need_exact("harmonic_mean", target.exact)
    need_continuous("harmonic_mean", target)
    start = time.perf_counter()
    z = exact.sample(np.random.default_rng(stream_seed(seed, STREAM)), n)
    u = target.unconstrain(z)
    log_lik = np.asarray(jax.jit(jax.vmap(lambda v: target.prior_and_likelihood(v)[1]))(u))
    inverse, se = log_mean_exp_se(-log_lik)
    _, k_hat = pareto_smoothed(-log_lik)
    reliability, diagnostic = khat_reliability(k_hat, n)
    return Estimate(
        -inverse,
        se,
        n_evals=n,
        seconds=time.perf_counter() - start,
        extras={"ess": effective_sample_size(-log_lik), "k_hat": k_hat, "infinite_variance_warning": True},
        reliability=reliability,
        diagnostic=diagnostic,
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

    def applies(self, target: Target, guide: GuideDensity | None) -> str | None:
        if target.exact is None:
            return "needs exact posterior draws, and the model has no oracle"
        return target.continuous_reason()

    def estimate(
        self, target: Target, guide: GuideDensity | None, seed: int, cache: EvaluationCache | None = None
    ) -> Estimate:
        return harmonic_mean_log_evidence(target, self.n, seed)


ESTIMATORS = (HarmonicMean(),)
