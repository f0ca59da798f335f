"""Pareto-smoothed importance sampling (PSIS) of log p(x), with the guide as proposal.

    w_s = p(x, z_s) / q(z_s),  z_s ~ q,  s = 1..S
    w~ = the w_s with the M = ceil(min(S / 5, 3 sqrt(S))) largest replaced by the expected order
         statistics of the generalized Pareto fitted to them (``arviz.psislw``, reff = 1)
    log p(x) ~= log((1/S) sum_s w~_s),   SE ~= sd(w~) / (sqrt(S) mean(w~))   (delta method on w~)

Vehtari, Simpson, Gelman, Yao and Gabry (2024), "Pareto smoothed importance sampling", JMLR 25: the
smoothed weights have a finite variance and the estimate converges at a practically useful rate while
the k-hat of the raw weights is at most min(1 - 1/log10 S, 0.7) (section 3.2.4). That range says
where its error shrinks usefully, not where this SE is calibrated: replacing the tail by its fitted
quantiles (truncated at the largest raw weight) biases the estimate low by more than its SE once
k > 1/2 (calibration, 80 replicates per guide: z mean -0.56 at tail shape 0.51, -0.83 at 0.58,
normal_normal, S = 10^4). Its label is therefore that of the plain mean
(``weights.finite_variance_reliability`` of the k-hat of independent draws,
``importance.label_khat``), and the PSIS threshold is in extras (``psis_threshold``) for reading
the estimate as a point value beyond the label.

The weights are those of the ``importance_weights`` stream shared with IS, IWAE and the PSIS k-hat
through the cell's cache (the same smoothing too); their k-hat and the label's are in extras.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ppl_suite.estimate import Estimate
from ppl_suite.estimators import guide_reason, need_guide, need_positive_int
from ppl_suite.estimators.cache import EvaluationCache
from ppl_suite.estimators.draws import stream_draws
from ppl_suite.estimators.importance import STREAM, label_khat
from ppl_suite.estimators.rounding import labelled_by_floor
from ppl_suite.estimators.weights import finite_variance_reliability, khat_threshold, log_mean_exp_se
from ppl_suite.targets import GuideDensity, Target


def psis_log_evidence(
    target: Target, guide: GuideDensity, n: int = 100_000, seed: int = 0, cache: EvaluationCache | None = None
) -> Estimate:
    """log mean of the Pareto-smoothed weights of n guide draws, delta-method SE on the smoothed
    weights, labelled as the plain mean is; extras: k-hat, the label's k-hat, the PSIS threshold."""
    need_guide("psis_log_evidence", guide)
    need_positive_int("psis_log_evidence", "n (the tail fit needs many draws)", n, minimum=100)
    draws = stream_draws(target, guide, n, seed, STREAM, cache)
    smoothed, k_hat = draws.pareto
    value, se = log_mean_exp_se(smoothed)
    label_k_hat = label_khat(target, guide, n, seed, cache)
    reliability, diagnostic = finite_variance_reliability(label_k_hat, n)
    extras = {"k_hat": k_hat, "label_k_hat": label_k_hat, "psis_threshold": khat_threshold(n)}
    estimate = Estimate(value, se, n, draws.seconds, extras, reliability=reliability, diagnostic=diagnostic)
    return labelled_by_floor(estimate, draws.magnitude)


@dataclass(frozen=True)
class PSISLogEvidence:
    """Plug-in: the PSIS estimate of log p(x) with the guide as proposal."""

    n: int = 100_000
    name: ClassVar[str] = "psis_log_evidence"
    quantity: ClassVar[str] = "log_evidence"
    kind: ClassVar[str] = "consistent"
    uses_guide: ClassVar[bool] = True

    def __post_init__(self) -> None:
        need_positive_int(self.name, "n (the tail fit needs many draws)", self.n, minimum=100)

    def applies(self, target: Target, guide: GuideDensity | None) -> str | None:
        return guide_reason(guide)

    def estimate(
        self, target: Target, guide: GuideDensity | None, seed: int, cache: EvaluationCache | None = None
    ) -> Estimate:
        return psis_log_evidence(target, need_guide(self.name, guide), self.n, seed, cache)


ESTIMATORS = (PSISLogEvidence(),)
