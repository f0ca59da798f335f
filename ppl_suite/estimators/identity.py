"""The identity check: log p(x) = ELBO + KL(q || p(z | x)) for every q, so

    residual = log p(x) - ELBO - KL,   noise = sqrt(SE_ELBO^2 + SE_KL^2 + floor^2)

is 0 up to its noise, and residual / noise is about N(0, 1) when every number is right (Blei,
Kucukelbir and McAuliffe 2017, "Variational inference: a review for statisticians", eq. 13). The
floor is the float64 rounding of the terms (``rounding``), the noise left when every SE is 0 (q = the
exact posterior). The ELBO and KL are the cell's own (the ``elbo`` and ``kl_monte_carlo`` streams,
through its cache): the registered closed-form KL where one applies, else Monte Carlo. For a guide
that samples nothing (enumeration) both come from the suite's own sums over the discrete states
(``enumerated``), computed independently of each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from ppl_suite.estimate import Estimate
from ppl_suite.estimators import need_exact, need_positive_int
from ppl_suite.estimators.cache import EvaluationCache
from ppl_suite.estimators.elbo import elbo
from ppl_suite.estimators.enumerated import enumerated_terms
from ppl_suite.estimators.kl import kl_analytic, kl_monte_carlo
from ppl_suite.estimators.rounding import rounding_floor
from ppl_suite.targets import GuideDensity, Target


@dataclass(frozen=True)
class IdentityTerms:
    """The identity's terms for one fitted guide: ELBO, KL by ``kl_method``, and the residual."""

    elbo: Estimate
    kl: Estimate
    kl_method: str
    residual: Estimate


def identity_residual(log_evidence: float, elbo_: Estimate, kl: Estimate, floor: float) -> Estimate:
    """log p(x) - ELBO - KL with SE sqrt(SE_ELBO^2 + SE_KL^2 + floor^2); extras: z = residual / SE
    and the floor. With the floor in the noise, the SE stays valid when rounding, not sampling, sets
    the ELBO's error (q = the exact posterior: the ELBO alone is then labelled unreliable), so the
    residual is labelled reliable and the check keeps its teeth there."""
    noise = math.sqrt(elbo_.se**2 + kl.se**2 + floor**2)
    residual = log_evidence - elbo_.value - kl.value
    z = residual / noise if noise > 0 else math.nan
    return Estimate(
        residual,
        noise,
        elbo_.n_evals + kl.n_evals,
        elbo_.seconds + kl.seconds,
        {"z": z, "floor": floor},
    )


def identity_terms(
    target: Target, guide: GuideDensity, n: int, seed: int, cache: EvaluationCache | None = None
) -> IdentityTerms:
    """ELBO, KL and the residual of ``guide`` against the exact posterior of ``target``."""
    exact = need_exact("identity", target.exact)
    if guide.samples_nothing:  # the library summed every latent out: the suite's enumerated sums
        terms = enumerated_terms(target, cache)
        floor = rounding_floor(exact.log_evidence, terms.magnitude)
        residual = identity_residual(exact.log_evidence, terms.elbo, terms.kl, floor)
        return IdentityTerms(terms.elbo, terms.kl, "enumerated", residual)
    estimate = elbo(target, guide, n, seed, cache)
    analytic = kl_analytic(guide, exact)
    kl = analytic if analytic is not None else kl_monte_carlo(guide, exact, n, seed, cache)
    floor = rounding_floor(exact.log_evidence, estimate.value, estimate.extras["magnitude"], kl.value)
    residual = identity_residual(exact.log_evidence, estimate, kl, floor)
    return IdentityTerms(estimate, kl, "analytic" if analytic is not None else "monte_carlo", residual)


@dataclass(frozen=True)
class Identity:
    """Plug-in: the residual log p(x) - ELBO - KL of the fitted guide, with its noise as SE."""

    n: int = 10_000
    name: ClassVar[str] = "identity"
    quantity: ClassVar[str] = "identity_residual"
    kind: ClassVar[str] = "unbiased"
    uses_guide: ClassVar[bool] = True

    def __post_init__(self) -> None:
        need_positive_int(self.name, "n (the SE needs two samples)", self.n, minimum=2)

    def applies(self, target: Target, guide: GuideDensity | None) -> str | None:
        if target.exact is None:
            return "needs the exact log p(x) (an oracle)"
        return None if guide is not None else "needs a fitted guide"

    def estimate(
        self, target: Target, guide: GuideDensity | None, seed: int, cache: EvaluationCache | None = None
    ) -> Estimate:
        if guide is None:
            raise TypeError(f"estimator {self.name!r} needs a fitted guide")
        return identity_terms(target, guide, self.n, seed, cache).residual


ESTIMATORS = (Identity(),)
