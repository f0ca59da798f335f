"""KL(q || p(z | x)) of a fitted guide to the exact posterior, by every route that applies.

- analytic: sum over sites of the registered closed form KL(q_site || p_site), when the posterior
  factors over sites into library distributions and the guide's library knows the pair
  (``GuideDensity.kl_to``: Pyro's KL registry for the suite's torch rendering);
- Monte Carlo: E_q[log q(z) - log p(z | x)] with SE = sd / sqrt(n), when the posterior density is
  known, from the ``kl_monte_carlo`` stream of the cell;
- identity: log p(x) - ELBO, with the ELBO's SE (the ELBO of the ``elbo`` stream, the ``elbo``
  plug-in's numbers; for a guide that samples nothing, the exact sum of ``enumerated``);
- reference: without an oracle, log p(x) estimated by the reference's AIS - ELBO, with both SEs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ppl_suite.estimate import Estimate
from ppl_suite.estimators import guide_reason, need_exact, need_guide, need_positive_int
from ppl_suite.estimators.cache import EvaluationCache
from ppl_suite.estimators.elbo import elbo
from ppl_suite.estimators.enumerated import enumerated_terms
from ppl_suite.estimators.rounding import labelled_by_floor
from ppl_suite.estimators.streams import stream_seed
from ppl_suite.gaussian_posterior import gaussian_over_real_sites
from ppl_suite.spec import ExactPosterior, Site
from ppl_suite.targets import GuideDensity, PosteriorReference, Target

MONTE_CARLO_STREAM = "kl_monte_carlo"
JOINT = "joint_gaussian"  # one Gaussian over every unconstrained coordinate
# the Gaussian families by the covariance blocks they can represent
GAUSSIAN_BLOCKS = {
    "full_rank": JOINT,
    "auto_normal": "mean_field",
    "auto_diagonal_normal": "mean_field",
    "auto_multivariate_normal": JOINT,
}


def kl_analytic(guide: GuideDensity, exact: ExactPosterior) -> Estimate | None:
    """Closed-form KL (SE 0) through the guide's library registry, or None when no pair applies."""
    factors = exact.factors()
    if factors is None:
        return None
    start = time.perf_counter()
    value = guide.kl_to(factors)
    return None if value is None else Estimate(value, 0.0, n_evals=0, seconds=time.perf_counter() - start)


def kl_monte_carlo(
    guide: GuideDensity,
    exact: ExactPosterior,
    n: int = 10_000,
    seed: int = 0,
    cache: EvaluationCache | None = None,
) -> Estimate:
    """E_q[log q(z) - log p(z | x)] over n draws of the ``kl_monte_carlo`` stream of the cell
    seeded ``seed`` (from ``cache`` when it holds them)."""
    need_positive_int("kl_monte_carlo", "n (the SE needs two samples)", n, minimum=2)

    def compute() -> Estimate:
        start = time.perf_counter()
        z = guide.sample(stream_seed(seed, MONTE_CARLO_STREAM), n)
        log_q, log_p = guide.log_q(z), exact.log_density(z)
        estimate = Estimate.from_samples(log_q - log_p, seconds=time.perf_counter() - start)
        return labelled_by_floor(estimate, float(np.mean(np.abs(log_q) + np.abs(log_p))))

    if cache is None:
        return compute()
    return cache.get(exact, guide, ("kl_monte_carlo", int(n), int(seed)), compute)


def kl_to_posterior(
    guide: GuideDensity, exact: ExactPosterior, n: int = 10_000, seed: int = 0
) -> tuple[Estimate, str]:
    """KL(q || p(z | x)) by the best route that applies, and the route's name: the registered closed
    form ("analytic"), else Monte Carlo ("monte_carlo")."""
    analytic = kl_analytic(guide, exact)
    if analytic is not None:
        return analytic, "analytic"
    return kl_monte_carlo(guide, exact, n, seed), "monte_carlo"


def kl_identity(elbo: Estimate, log_evidence: float) -> Estimate:
    """KL = log p(x) - ELBO, carrying the ELBO's standard error and reliability."""
    return Estimate(
        log_evidence - elbo.value,
        elbo.se,
        elbo.n_evals,
        elbo.seconds,
        reliability=elbo.reliability,
        diagnostic=elbo.diagnostic,
    )


def kl_reference(elbo: Estimate, reference: PosteriorReference) -> Estimate:
    """KL = log p(x)_ref - ELBO without an oracle: the reference's evidence (AIS) carries its own
    error, SE = sqrt(SE_ELBO^2 + SE_ref^2). Never exact: an unreliable evidence or ELBO makes the
    KL unreliable, with the diagnostic that says so."""
    se = reference.log_evidence_se
    value = reference.log_evidence - elbo.value
    if se is None:
        return Estimate(value, math.nan, elbo.n_evals, elbo.seconds, reliability="unreliable",
                        diagnostic=f"reference evidence: {reference.evidence_diagnostic}")  # fmt: skip
    return Estimate(
        value,
        math.sqrt(elbo.se**2 + se**2),
        elbo.n_evals,
        elbo.seconds,
        reliability=elbo.reliability,
        diagnostic=elbo.diagnostic,
    )


def kl_family_minimum(sites: tuple[Site, ...], family: str, exact: ExactPosterior) -> float | None:
    """The smallest KL(q || p(z | x)) any member of the guide's family can reach, where closed-form.

    - ``conjugate`` family holding the posterior's per-site families: 0.
    - Gaussian posterior N(m, Lambda^-1) on real sites: ``full_rank`` (one Gaussian over every
      coordinate) holds it: 0; ``mean_field`` (1x1 covariance blocks) reaches at its optimum, which
      matches the posterior's precision diagonal, 0.5 (sum_i log Lambda_ii - log det Lambda).
    - The libraries' Gaussian autoguides on the same posterior: ``auto_normal`` and
      ``auto_diagonal_normal`` (with their ``_matched`` twins) are mean-field; ``auto_multivariate_normal``
      has one block over every coordinate, as ``full_rank``: 0.
    Otherwise None. (A model may know more, ``ModelSpec.kl_family_min``; the pipeline asks it first.)
    """
    family = GAUSSIAN_BLOCKS.get(family.removesuffix("_matched"), family)
    if family == "conjugate":
        factors = exact.factors()
        if factors and all(s.prior and factors[s.name].family == s.prior.family for s in sites):
            return 0.0
        return None
    if family not in {"mean_field", JOINT} or not gaussian_over_real_sites(exact, sites):
        return None
    if family == JOINT:
        return 0.0
    precision = np.linalg.inv(exact.covariance())
    return float(0.5 * (np.log(np.diag(precision)).sum() - np.linalg.slogdet(precision)[1]))


def _no_oracle(target: Target) -> str | None:
    return None if target.exact is not None else "KL to the posterior needs the exact posterior (an oracle)"


@dataclass(frozen=True)
class KLAnalytic:
    """Plug-in: closed-form KL(q || p(z | x)) through the guide's KL registry (SE 0)."""

    name: ClassVar[str] = "kl_analytic"
    quantity: ClassVar[str] = "kl_to_posterior"
    kind: ClassVar[str] = "exact"
    uses_guide: ClassVar[bool] = True

    def applies(self, target: Target, guide: GuideDensity | None) -> str | None:
        reason = _no_oracle(target) or guide_reason(guide)
        if reason is None and (factors := target.exact.factors()) is None:
            return "the posterior does not factor into library distributions over sites"
        if reason is None and guide.kl_to(factors) is None:
            return f"no closed-form KL is registered between guide {guide.family!r} and the posterior"
        return reason

    def estimate(
        self, target: Target, guide: GuideDensity | None, seed: int, cache: EvaluationCache | None = None
    ) -> Estimate:
        result = kl_analytic(need_guide(self.name, guide), need_exact(self.name, target.exact))
        if result is None:
            raise NotImplementedError(
                f"no closed-form KL is registered between guide {guide.family!r} and the posterior of "
                f"{target.name!r}; use kl_monte_carlo"
            )
        return result


@dataclass(frozen=True)
class KLMonteCarlo:
    """Plug-in: KL(q || p(z | x)) = E_q[log q(z) - log p(z | x)] by Monte Carlo."""

    n: int = 10_000
    name: ClassVar[str] = "kl_monte_carlo"
    quantity: ClassVar[str] = "kl_to_posterior"
    kind: ClassVar[str] = "unbiased"
    uses_guide: ClassVar[bool] = True

    def __post_init__(self) -> None:
        need_positive_int(self.name, "n (the SE needs two samples)", self.n, minimum=2)

    def applies(self, target: Target, guide: GuideDensity | None) -> str | None:
        return _no_oracle(target) or guide_reason(guide)

    def estimate(
        self, target: Target, guide: GuideDensity | None, seed: int, cache: EvaluationCache | None = None
    ) -> Estimate:
        exact = need_exact(self.name, target.exact)
        return kl_monte_carlo(need_guide(self.name, guide), exact, self.n, seed, cache)


def guide_elbo(
    target: Target, guide: GuideDensity, n: int, seed: int, cache: EvaluationCache | None = None
) -> Estimate:
    """The ELBO of ``guide``: Monte Carlo from the ``elbo`` stream, or for a guide that samples nothing
    the exact sum over the discrete states (``enumerated``)."""
    if guide.samples_nothing:
        return enumerated_terms(target, cache).elbo
    return elbo(target, guide, n, seed, cache)


@dataclass(frozen=True)
class KLIdentity:
    """Plug-in: KL(q || p(z | x)) = log p(x) - ELBO, with the ELBO's SE (``guide_elbo``)."""

    n: int = 10_000
    name: ClassVar[str] = "kl_identity"
    quantity: ClassVar[str] = "kl_to_posterior"
    kind: ClassVar[str] = "unbiased"
    uses_guide: ClassVar[bool] = True

    def __post_init__(self) -> None:
        need_positive_int(self.name, "n (the SE needs two samples)", self.n, minimum=2)

    def applies(self, target: Target, guide: GuideDensity | None) -> str | None:
        return _no_oracle(target) or (None if guide is not None else "needs a fitted guide")

    def estimate(
        self, target: Target, guide: GuideDensity | None, seed: int, cache: EvaluationCache | None = None
    ) -> Estimate:
        exact = need_exact(self.name, target.exact)
        if guide is None:
            raise TypeError(f"estimator {self.name!r} needs a fitted guide")
        return kl_identity(guide_elbo(target, guide, self.n, seed, cache), exact.log_evidence)


@dataclass(frozen=True)
class KLReference:
    """Plug-in: without an oracle, KL(q || p(z | x)) = log p(x) by the NUTS reference's AIS - ELBO
    (``kl_reference``). AIS estimates log p(x) from below in expectation, so this KL is a lower bound
    in expectation, never exact."""

    n: int = 10_000
    name: ClassVar[str] = "kl_reference"
    quantity: ClassVar[str] = "kl_to_posterior"
    kind: ClassVar[str] = "lower_bound"
    uses_guide: ClassVar[bool] = True

    def __post_init__(self) -> None:
        need_positive_int(self.name, "n (the SE needs two samples)", self.n, minimum=2)

    def applies(self, target: Target, guide: GuideDensity | None) -> str | None:
        if target.reference is None:
            return "needs a NUTS reference (a model without an oracle)"
        return guide_reason(guide)

    def estimate(
        self, target: Target, guide: GuideDensity | None, seed: int, cache: EvaluationCache | None = None
    ) -> Estimate:
        if target.reference is None:
            raise ValueError(f"estimator {self.name!r} needs a NUTS reference, and the target has none")
        return kl_reference(elbo(target, need_guide(self.name, guide), self.n, seed, cache), target.reference)


ESTIMATORS = (KLAnalytic(), KLMonteCarlo(), KLIdentity(), KLReference())
