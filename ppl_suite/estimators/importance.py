"""Importance sampling of log p(x) with the guide as proposal, and the IWAE bound for growing K.

    w_i = p(x, z_i) / q(z_i),  z_i ~ q  (i.i.d.);  E_q[w] = p(x)
    log p(x) ~= log((1/N) sum_i w_i)                          (consistent; delta-method SE)
    IWAE_K = E[log((1/K) sum_{k=1..K} w_k)] <= log p(x),      IWAE_1 = ELBO, IWAE_K increases to log p(x)

Burda, Grosse and Salakhutdinov (2016), "Importance weighted autoencoders", ICLR.

The bound at K is estimated from R = floor(N / K) independent repetitions, each the log-mean-exp of
its own block of K weights (blocks are disjoint): value = mean of the R block values and
SE = sd / sqrt(R), which needs R >= 2. Every K of the curve reuses the same N weights, so the points of
the curve are correlated with each other, but each point's SE is valid on its own.

Reliability of log p(x) by IS: its delta-method SE assumes weights of finite variance, which a
Pareto tail of shape k has only for k < 1/2 (Vehtari et al. 2024, "Pareto smoothed importance
sampling", JMLR 25), so the estimate is labelled reliable only where a PSIS k-hat is below 1/2 by two
of its sds (``weights.finite_variance_reliability``: 0.41 at S = 10^5). That k-hat is fitted to n
draws of a stream of its own (``importance_khat``), not to the weights it labels: draws that missed
the tail have both a low k-hat and a low estimate, so a label from the same draws selects the
underestimates (in calibration, the replicates of one guide whose own k-hat fell below the limit had
z mean -1.0 to -1.6 where the guide's replicates as a whole had -0.25 to -0.4). The larger threshold
min(1 - 1/log10 S, 0.7) of that paper says where Pareto-*smoothed* estimates converge usefully, not
where an SE is calibrated. log mean w is biased low by about SE^2 / 2 (delta method,
``weights.first_order_bias``); the value is left uncorrected and the corrected one is in extras
(``bias_corrected``, with ``first_order_bias``): where the label holds the correction is a fraction
SE / 2 of the SE, and where it does not neither is to be trusted.

IWAE_K is a lower bound, not an estimate of log p(x): its SE is that of the bound (its spread over
the R blocks), whatever the k-hat, and says nothing of its distance to log p(x), which the k-hat (in
extras) only hints at. It is labelled by its rounding floor alone. The weights come from the
``importance_weights`` stream through the cell's cache, so IS, IWAE and PSIS at the same N share them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ppl_suite.estimate import Estimate
from ppl_suite.estimators import guide_reason, need_guide, need_positive_int
from ppl_suite.estimators.cache import EvaluationCache
from ppl_suite.estimators.draws import Draws, stream_draws
from ppl_suite.estimators.rounding import labelled_by_floor
from ppl_suite.estimators.weights import (
    effective_sample_size,
    finite_variance_reliability,
    first_order_bias,
    log_mean_exp_se,
)
from ppl_suite.numerics import log_mean_exp
from ppl_suite.targets import GuideDensity, Target

IWAE_KS = (1, 10, 100, 1000, 10_000)
STREAM = "importance_weights"
LABEL_STREAM = "importance_khat"  # the draws whose k-hat labels the estimates of STREAM's


def log_weights(
    target: Target, guide: GuideDensity, n: int, seed: int, cache: EvaluationCache | None = None
) -> np.ndarray:
    """n i.i.d. log weights log p(x, z_i) - log q(z_i), z_i ~ q, of the ``importance_weights`` stream
    of the cell seeded ``seed`` (from ``cache`` when it holds them)."""
    need_guide("importance sampling", guide)
    return stream_draws(target, guide, n, seed, STREAM, cache).log_w


def iwae_bound(log_w: np.ndarray, k: int) -> Estimate:
    """IWAE_K over R = floor(N / K) disjoint blocks of K weights: mean of R log-mean-exps, SE sd / sqrt(R)."""
    log_w = np.asarray(log_w, dtype=float)
    if not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"IWAE needs an integer K >= 1, got {k!r}")
    if log_w.ndim != 1:
        raise ValueError(f"log weights must be a 1-D array, got shape {log_w.shape}")
    repeats = log_w.size // k
    if repeats < 2:
        raise ValueError(
            f"IWAE at K={k} needs at least 2K = {2 * k} weights for a standard error, got {log_w.size}"
        )
    blocks = log_mean_exp(log_w[: repeats * k].reshape(repeats, k), axis=1)
    return Estimate.from_samples(blocks, k=int(k), repeats=int(repeats))


def label_khat(
    target: Target, guide: GuideDensity, n: int, seed: int, cache: EvaluationCache | None
) -> float:
    """The k-hat of n draws of the ``importance_khat`` stream: independent of the weights it labels."""
    return stream_draws(target, guide, n, seed, LABEL_STREAM, cache).pareto[1]


def labelled(estimate: Estimate, draws: Draws, label_k_hat: float, **extras) -> Estimate:
    """``estimate`` (a mean of the weights of ``draws``) labelled by ``finite_variance_reliability`` of
    ``label_k_hat`` (from independent draws), then by its rounding floor; the k-hat of ``draws``, the
    label's and ``extras`` added to its extras."""
    reliability, diagnostic = finite_variance_reliability(label_k_hat, draws.log_w.size)
    estimate = Estimate(
        estimate.value,
        estimate.se,
        estimate.n_evals,
        estimate.seconds,
        {**estimate.extras, "k_hat": draws.pareto[1], "label_k_hat": label_k_hat, **extras},
        reliability=reliability,
        diagnostic=diagnostic,
    )
    return labelled_by_floor(estimate, draws.magnitude)


def importance_log_evidence(
    target: Target,
    guide: GuideDensity,
    n: int = 100_000,
    seed: int = 0,
    ks: tuple[int, ...] = IWAE_KS,
    cache: EvaluationCache | None = None,
) -> Estimate:
    """log p(x) ~= log mean_i w_i over n guide draws, delta-method SE, labelled reliable only where the
    k-hat of n independent draws shows a finite weight variance; extras: the first-order bias
    -SE^2 / 2 and the value corrected for it, the whole IWAE curve over ``ks`` (each K needs
    n >= 2K), Kish's ESS, the k-hat of the weights and the label's."""
    need_positive_int("importance", "n (the SE needs two samples)", n, minimum=2)
    short = [k for k in ks if n < 2 * k]
    if short:
        raise ValueError(f"importance: IWAE at K = {short} needs n >= 2K weights, got n = {n}")
    draws = stream_draws(target, need_guide("importance", guide), n, seed, STREAM, cache)
    log_w = draws.log_w
    value, se = log_mean_exp_se(log_w)
    curve = [iwae_bound(log_w, int(k)) for k in ks]
    bias = first_order_bias(se)
    return labelled(
        Estimate(value, se, n_evals=n, seconds=draws.seconds),
        draws,
        label_khat(target, guide, n, seed, cache),
        first_order_bias=bias,
        bias_corrected=value - bias,
        ess=effective_sample_size(log_w),
        iwae_k=[int(k) for k in ks],
        iwae=[e.value for e in curve],
        iwae_se=[e.se for e in curve],
    )


@dataclass(frozen=True)
class Importance:
    """Plug-in: importance-sampling estimate of log p(x) with the guide as proposal."""

    n: int = 100_000
    ks: tuple[int, ...] = field(default=IWAE_KS)
    name: ClassVar[str] = "importance"
    quantity: ClassVar[str] = "log_evidence"
    kind: ClassVar[str] = "consistent"
    uses_guide: ClassVar[bool] = True

    def __post_init__(self) -> None:
        need_positive_int(self.name, "n (the SE needs two samples)", self.n, minimum=2)
        for k in self.ks:
            need_positive_int(self.name, "every K", k)
        if self.ks and self.n < 2 * max(self.ks):
            raise ValueError(
                f"{self.name}: the IWAE curve up to K = {max(self.ks)} needs n >= 2K = "
                f"{2 * max(self.ks)} weights, got n = {self.n}; raise n or drop the largest K"
            )

    def applies(self, target: Target, guide: GuideDensity | None) -> str | None:
        return guide_reason(guide)

    def estimate(
        self, target: Target, guide: GuideDensity | None, seed: int, cache: EvaluationCache | None = None
    ) -> Estimate:
        return importance_log_evidence(target, need_guide(self.name, guide), self.n, seed, self.ks, cache)


@dataclass(frozen=True)
class IWAE:
    """Plug-in: the IWAE lower bound on log p(x) at one K, from independent repetitions; its SE is the
    bound's, not a distance to log p(x)."""

    k: int = 1000
    repeats: int = 100
    name: ClassVar[str] = "iwae"
    quantity: ClassVar[str] = "log_evidence"
    kind: ClassVar[str] = "lower_bound"
    uses_guide: ClassVar[bool] = True

    def __post_init__(self) -> None:
        need_positive_int(self.name, "K", self.k)
        need_positive_int(self.name, "repeats (the SE needs two)", self.repeats, minimum=2)

    def applies(self, target: Target, guide: GuideDensity | None) -> str | None:
        return guide_reason(guide)

    def estimate(
        self, target: Target, guide: GuideDensity | None, seed: int, cache: EvaluationCache | None = None
    ) -> Estimate:
        n = self.k * self.repeats
        draws = stream_draws(target, need_guide(self.name, guide), n, seed, STREAM, cache)
        bound = iwae_bound(draws.log_w, self.k)
        extras = {"k": self.k, "repeats": self.repeats, "k_hat": draws.pareto[1]}
        return labelled_by_floor(Estimate(bound.value, bound.se, n, draws.seconds, extras), draws.magnitude)


ESTIMATORS = (Importance(), IWAE())
