"""KL(q || p(z | x)) of a fitted guide to the exact posterior, by every route that applies.

- analytic: sum over sites of the registered closed form KL(q_site || p_site), when the posterior
  factors over sites into library distributions and Pyro's KL registry (torch's, extended) knows
  the pair;
- Monte Carlo: E_q[log q(z) - log p(z | x)] with SE = sd / sqrt(n), when the posterior density is known;
- identity: log p(x) - ELBO, with the ELBO's SE.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyro.distributions as dist  # importing Pyro's distributions adds its KL rules to torch's
import torch
from torch.distributions import kl_divergence

from ppl_suite.estimate import Estimate
from ppl_suite.estimators import need_exact, need_guide, need_positive_int
from ppl_suite.estimators.elbo import elbo
from ppl_suite.fitted_guide import FittedGuide
from ppl_suite.problem import Problem
from ppl_suite.spec import ExactPosterior


def kl_analytic(guide: FittedGuide, exact: ExactPosterior) -> Estimate | None:
    """Closed-form KL through the library registry, or None when no registered pair applies."""
    factors = exact.factors()
    if factors is None:
        return None
    start = time.perf_counter()
    total = 0.0
    for name, q in guide.distributions.items():
        spec = factors[name]
        p = getattr(dist, spec.family)(
            **{k: torch.as_tensor(v, dtype=torch.float64) for k, v in spec.params.items()}
        )
        try:
            total += float(torch.sum(kl_divergence(q, p.to_event(spec.event_dims))))
        except NotImplementedError:
            return None
    return Estimate(total, 0.0, n_evals=0, seconds=time.perf_counter() - start)


def kl_monte_carlo(guide: FittedGuide, exact: ExactPosterior, n: int = 10_000, seed: int = 1) -> Estimate:
    start = time.perf_counter()
    z = guide.sample(seed, n)
    terms = guide.log_density(z) - exact.log_density(z)
    return Estimate.from_samples(terms, seconds=time.perf_counter() - start)


def kl_to_posterior(
    guide: FittedGuide, exact: ExactPosterior, n: int = 10_000, seed: int = 1
) -> tuple[Estimate, str]:
    """KL(q || p(z | x)) by the best route that applies, and the route's name: the registered closed
    form ("analytic"), else Monte Carlo ("monte_carlo")."""
    analytic = kl_analytic(guide, exact)
    if analytic is not None:
        return analytic, "analytic"
    return kl_monte_carlo(guide, exact, n, seed), "monte_carlo"


def kl_identity(elbo: Estimate, log_evidence: float) -> Estimate:
    """KL = log p(x) - ELBO, carrying the ELBO's standard error."""
    return Estimate(log_evidence - elbo.value, elbo.se, elbo.n_evals, elbo.seconds)


def kl_family_minimum(guide: FittedGuide, exact: ExactPosterior) -> float | None:
    """The smallest KL(q || p(z | x)) any member of the guide's family can reach, where closed-form.

    - ``conjugate`` family holding the posterior's per-site families: 0.
    - Gaussian posterior N(m, Lambda^-1) on real sites, Gaussian family with block-diagonal covariance
      (``mean_field``: 1x1 blocks; ``full_rank``: one block per site): the optimum matches the
      posterior's precision blocks and reaches 0.5 (sum_b log det Lambda_bb - log det Lambda).
    A model may know more (``ModelSpec.kl_family_min``): its answer comes first. Otherwise None.
    """
    problem = guide.problem
    if problem.spec.kl_family_min is not None:
        known = problem.spec.kl_family_min(guide.family, problem.data, problem.params)
        if known is not None:
            return known
    sites = problem.sites
    factors = exact.factors()
    if guide.family == "conjugate":
        if factors and all(s.prior and factors[s.name].family == s.prior.family for s in sites):
            return 0.0
        return None
    gaussian = factors is not None and all(
        f.family in {"Normal", "MultivariateNormal"} for f in factors.values()
    )
    if guide.family not in {"mean_field", "full_rank"} or not gaussian:
        return None
    if any(s.support != "real" for s in sites):
        return None
    precision = np.linalg.inv(exact.covariance())
    if guide.family == "mean_field":
        blocks = [np.array([i]) for i in range(precision.shape[0])]
    else:
        offsets = np.cumsum([0] + [s.size for s in sites])
        blocks = [np.arange(a, b) for a, b in itertools.pairwise(offsets)]
    log_det_blocks = sum(np.linalg.slogdet(precision[np.ix_(b, b)])[1] for b in blocks)
    return float(0.5 * (log_det_blocks - np.linalg.slogdet(precision)[1]))


def _no_oracle(problem: Problem, exact: ExactPosterior | None, guide: str | None = None) -> str | None:
    return None if exact is not None else "KL to the posterior needs the exact posterior (an oracle)"


@dataclass(frozen=True)
class KLAnalytic:
    """Plug-in: closed-form KL(q || p(z | x)) through Pyro's KL registry (SE 0)."""

    name: ClassVar[str] = "kl_analytic"
    quantity: ClassVar[str] = "kl_to_posterior"
    kind: ClassVar[str] = "exact"
    uses_guide: ClassVar[bool] = True

    def applies(self, problem: Problem, exact: ExactPosterior | None, guide: str | None = None) -> str | None:
        if exact is None:
            return _no_oracle(problem, exact)
        if exact.factors() is None:
            return "the posterior does not factor into library distributions over sites"
        return None

    def estimate(
        self, problem: Problem, guide: FittedGuide | None, exact: ExactPosterior | None, seed: int = 0
    ) -> Estimate:
        result = kl_analytic(need_guide(self.name, guide), need_exact(self.name, exact))
        if result is None:
            raise NotImplementedError(
                f"no closed-form KL is registered between guide {guide.family!r} and the posterior of "
                f"{problem.spec.name!r}; use kl_monte_carlo"
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

    applies = staticmethod(_no_oracle)

    def estimate(
        self, problem: Problem, guide: FittedGuide | None, exact: ExactPosterior | None, seed: int = 0
    ) -> Estimate:
        return kl_monte_carlo(need_guide(self.name, guide), need_exact(self.name, exact), self.n, seed)


@dataclass(frozen=True)
class KLIdentity:
    """Plug-in: KL(q || p(z | x)) = log p(x) - ELBO, with the Monte Carlo ELBO's SE."""

    n: int = 10_000
    name: ClassVar[str] = "kl_identity"
    quantity: ClassVar[str] = "kl_to_posterior"
    kind: ClassVar[str] = "unbiased"
    uses_guide: ClassVar[bool] = True

    def __post_init__(self) -> None:
        need_positive_int(self.name, "n (the SE needs two samples)", self.n, minimum=2)

    applies = staticmethod(_no_oracle)

    def estimate(
        self, problem: Problem, guide: FittedGuide | None, exact: ExactPosterior | None, seed: int = 0
    ) -> Estimate:
        estimate = elbo(need_guide(self.name, guide), self.n, seed)
        return kl_identity(estimate, need_exact(self.name, exact).log_evidence)


ESTIMATORS = (KLAnalytic(), KLMonteCarlo(), KLIdentity())
