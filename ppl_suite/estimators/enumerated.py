"""ELBO and KL of an enumerating guide, summed exactly over the discrete states.

A guide that samples nothing leaves the library to sum the discrete latents out of the model
(TraceEnum_ELBO); the q it implies is the model's own conditional of z given x at the fitted theta.
For one discrete local site z (z_j in {0..K-1}, one per data point, independent given x) the log
joint splits over points, so n K + 1 evaluations of it give everything. With z^0 = 0 and z^(j,k) the
state z^0 with z_j = k,

    a_jk = log p(x, z^(j,k)) - log p(x, z^0),      log q_jk = a_jk - logsumexp_k a_jk
    ELBO(q) = E_q[log p(x, z) - log q(z)] = log p(x, z^0) + sum_j logsumexp_k a_jk
    KL(q || p(z | x)) = sum_jk q_jk log q_jk - log p(z^0 | x) - sum_jk q_jk b_jk,
    b_jk = log p(z^(j,k) | x) - log p(z^0 | x)     (the oracle's posterior density)

The ELBO comes from the Target's log joint and the KL from the oracle's posterior, not from the
library's loss, so log p(x) = ELBO + KL checks the model against the oracle with independent terms
(Obermeyer et al. 2019, "Tensor variable elimination for plated factor graphs", for enumeration).
Both are exact sums: SE 0; their float64 rounding is ``rounding.rounding_floor`` of ``magnitude``.
The plug-ins ``elbo_enumerated`` and ``kl_enumerated`` are these two terms of an enumerating guide.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import logsumexp

from ppl_suite.estimate import Estimate
from ppl_suite.estimators import need_exact
from ppl_suite.estimators.cache import EvaluationCache
from ppl_suite.targets import GuideDensity, Target


def enumeration_reason(target: Target) -> str | None:
    """Why the states cannot be summed per point here, or None when they can."""
    sites = target.sites
    if len(sites) != 1 or sites[0].support != "integer" or not sites[0].local or len(sites[0].shape) != 1:
        return "the per-point enumeration needs exactly one discrete local site of shape (n,)"
    return None


@dataclass(frozen=True)
class EnumeratedTerms:
    """The ELBO and KL of the implied q, exact sums (SE 0), and the magnitude their rounding scales with."""

    elbo: Estimate
    kl: Estimate
    magnitude: float


def enumerated_terms(target: Target, cache: EvaluationCache | None = None) -> EnumeratedTerms:
    """ELBO(q) and KL(q || p(z | x)) of the q implied by enumeration (see the module docstring), once
    per cell through ``cache`` (the sums are deterministic: the cache changes the cost only)."""
    if cache is not None:
        return cache.get(target, None, ("enumerated",), lambda: enumerated_terms(target))
    reason = enumeration_reason(target)
    if reason is not None:
        raise ValueError(f"{target.name!r}: {reason}")
    exact = need_exact("enumerated", target.exact)
    start = time.perf_counter()
    (site,) = target.sites
    n, states = site.shape[0], site.cardinality
    z = np.zeros((1 + n * states, n), dtype=np.int64)
    rows = 1 + np.arange(n * states)
    z[rows, np.repeat(np.arange(n), states)] = np.tile(np.arange(states), n)
    latents = {site.name: z}
    log_joint, log_posterior = target.log_joint(latents), exact.log_density(latents)
    a = (log_joint[1:] - log_joint[0]).reshape(n, states)
    b = (log_posterior[1:] - log_posterior[0]).reshape(n, states)
    normalizer = logsumexp(a, axis=1)
    log_q = a - normalizer[:, None]
    q = np.exp(log_q)
    elbo = float(log_joint[0] + normalizer.sum())
    kl = float(np.sum(q * log_q) - log_posterior[0] - np.sum(q * b))
    seconds = time.perf_counter() - start
    evals = int(z.shape[0])
    # each of the n normalizers and KL terms is computed from differences of log densities of the
    # size of log_joint[0] and log_posterior[0], each difference rounded at that size
    magnitude = (1 + n) * (abs(log_joint[0]) + abs(log_posterior[0])) + float(np.sum(np.abs(normalizer)))
    return EnumeratedTerms(
        Estimate(elbo, 0.0, evals, seconds), Estimate(kl, 0.0, evals, seconds), float(magnitude)
    )


def enumerated_guide_reason(target: Target, guide: GuideDensity | None) -> str | None:
    """Why the enumerated terms of ``guide`` cannot be computed, or None when they can."""
    if guide is None or not guide.samples_nothing:
        return "needs a guide that samples nothing (enumeration)"
    if target.exact is None:
        return "needs the exact posterior (an oracle)"
    return enumeration_reason(target)


def _need_enumerating(name: str, target: Target, guide: GuideDensity | None) -> None:
    """A clear error naming the estimator when ``enumerated_guide_reason`` gives a reason."""
    reason = enumerated_guide_reason(target, guide)
    if reason is not None:
        raise ValueError(f"estimator {name!r}: {reason}")


@dataclass(frozen=True)
class ELBOEnumerated:
    """Plug-in: the ELBO of an enumerating guide, summed exactly over the discrete states (SE 0)."""

    name: ClassVar[str] = "elbo_enumerated"
    quantity: ClassVar[str] = "elbo"
    kind: ClassVar[str] = "exact"
    uses_guide: ClassVar[bool] = True

    def applies(self, target: Target, guide: GuideDensity | None) -> str | None:
        return enumerated_guide_reason(target, guide)

    def estimate(
        self, target: Target, guide: GuideDensity | None, seed: int, cache: EvaluationCache | None = None
    ) -> Estimate:
        _need_enumerating(self.name, target, guide)
        return enumerated_terms(target, cache).elbo


@dataclass(frozen=True)
class KLEnumerated:
    """Plug-in: KL(q || p(z | x)) of an enumerating guide, summed exactly over the states with the
    oracle's posterior (SE 0)."""

    name: ClassVar[str] = "kl_enumerated"
    quantity: ClassVar[str] = "kl_to_posterior"
    kind: ClassVar[str] = "exact"
    uses_guide: ClassVar[bool] = True

    def applies(self, target: Target, guide: GuideDensity | None) -> str | None:
        return enumerated_guide_reason(target, guide)

    def estimate(
        self, target: Target, guide: GuideDensity | None, seed: int, cache: EvaluationCache | None = None
    ) -> Estimate:
        _need_enumerating(self.name, target, guide)
        return enumerated_terms(target, cache).kl


ESTIMATORS = (ELBOEnumerated(), KLEnumerated())
