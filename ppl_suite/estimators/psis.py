"""PSIS k-hat: is the guide good enough as an importance proposal for the posterior?

    w_s = p(x, z_s) / q(z_s),  z_s ~ q,  s = 1..S
    fit a generalized Pareto distribution to the M = ceil(min(S / 5, 3 sqrt(S))) largest w_s;
    k-hat = its shape parameter (Zhang and Stephens 2009 fit, weakly regularized towards 0.5).

    k-hat < 0.5                            good: the weights have finite variance, q is close to p(z | x)
    0.5 <= k-hat <= min(1 - 1/log10 S, 0.7)  ok: importance sampling with S draws is still reliable
    above that threshold                   unreliable: q misses mass of p(z | x); IS estimates from
                                           these S draws (and the fit) should not be trusted

Yao, Vehtari, Simpson and Gelman (2018), "Yes, but did it work?: Evaluating variational inference",
ICML; Vehtari, Simpson, Gelman, Yao and Gabry (2024), "Pareto smoothed importance sampling", JMLR 25
(the sample-size-dependent threshold, section 3.2.4).

The value is ArviZ's k-hat (``arviz.psislw``, reff = 1 for independent draws), from the
``importance_weights`` stream shared with IS and IWAE through the cell's cache. It has no standard
error (SE is NaN); its label says whether the guide is usable as a proposal for Pareto-smoothed
estimates by the thresholds above. The SEs of the log p(x) estimates need more: a finite weight
variance shown by the k-hat of independent draws (``weights.finite_variance_reliability``). Extras
also hold the PSIS estimate of log p(x): log mean of the smoothed, unnormalized weights (with an SE
and a label: ``psis_log_evidence``). (The tests check the k-hat against Pyro's public
``fit_generalized_pareto`` on the same tail.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from ppl_suite.estimate import Estimate
from ppl_suite.estimators import guide_reason, need_guide, need_positive_int
from ppl_suite.estimators.cache import EvaluationCache
from ppl_suite.estimators.draws import stream_draws
from ppl_suite.estimators.importance import STREAM
from ppl_suite.estimators.weights import khat_reliability, khat_threshold
from ppl_suite.numerics import log_mean_exp
from ppl_suite.targets import GuideDensity, Target

GOOD = 0.5


def interpret(k_hat: float, samples: int) -> str:
    """'good' (k < 0.5), 'ok' (0.5 <= k <= khat_threshold(S)) or 'unreliable' (above it, or not a number)."""
    if math.isnan(k_hat) or k_hat > khat_threshold(samples):
        return "unreliable"
    return "good" if k_hat < GOOD else "ok"


def psis_diagnostic(
    target: Target, guide: GuideDensity, n: int = 10_000, seed: int = 0, cache: EvaluationCache | None = None
) -> Estimate:
    """k-hat of the guide as proposal (SE NaN), labelled by the threshold for n draws; extras:
    interpretation, threshold, PSIS log p(x)."""
    need_guide("psis", guide)
    need_positive_int("psis", "n (the tail fit needs many draws)", n, minimum=100)
    draws = stream_draws(target, guide, n, seed, STREAM, cache)
    smoothed, k_hat = draws.pareto
    reliability, diagnostic = khat_reliability(k_hat, n)
    extras = {
        "interpretation": interpret(k_hat, n),
        "threshold": khat_threshold(n),
        "psis_log_evidence": float(log_mean_exp(smoothed)),
    }
    return Estimate(k_hat, math.nan, n, draws.seconds, extras, reliability=reliability, diagnostic=diagnostic)


@dataclass(frozen=True)
class PSIS:
    """Plug-in: PSIS k-hat of the guide as importance proposal (a diagnostic, with interpretation)."""

    n: int = 10_000
    name: ClassVar[str] = "psis"
    quantity: ClassVar[str] = "pareto_k"
    kind: ClassVar[str] = "diagnostic"
    uses_guide: ClassVar[bool] = True

    def __post_init__(self) -> None:
        need_positive_int(self.name, "n", self.n, minimum=100)

    def applies(self, target: Target, guide: GuideDensity | None) -> str | None:
        return guide_reason(guide)

    def estimate(
        self, target: Target, guide: GuideDensity | None, seed: int, cache: EvaluationCache | None = None
    ) -> Estimate:
        return psis_diagnostic(target, need_guide(self.name, guide), self.n, seed, cache)


ESTIMATORS = (PSIS(),)
