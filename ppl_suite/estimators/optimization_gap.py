"""The optimization gap: how far SVI stopped from the best member of its guide family,

    gap = KL(q || p(z | x)) - min over the family of KL(q' || p(z | x))  >= 0,

in nats, with the KL's SE. The family minimum is known where the model or a closed form says it
(``Target.family_minimum``: 0 for a family holding the posterior; for Gaussian families and a
Gaussian posterior, 0.5 (sum_b log det Lambda_bb - log det Lambda), Turner and Sahani 2011, "Two
problems with variational expectation maximisation for time-series models"). A gap near 0 means the
optimizer converged; the rest of KL is the family's own limit (the approximation gap).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from ppl_suite.estimate import Estimate
from ppl_suite.estimators import need_positive_int
from ppl_suite.estimators.cache import EvaluationCache
from ppl_suite.estimators.identity import identity_terms
from ppl_suite.targets import GuideDensity, Target


def optimization_gap(kl: Estimate, family_min: float) -> Estimate:
    """KL - family_min, carrying the KL's SE and reliability; extras: the family minimum."""
    return replace(kl, value=kl.value - family_min, extras={"kl": kl.value, "family_min": family_min})


@dataclass(frozen=True)
class OptimizationGap:
    """Plug-in: KL of the fitted guide minus the smallest KL its family can reach."""

    n: int = 10_000
    name: ClassVar[str] = "optimization_gap"
    quantity: ClassVar[str] = "optimization_gap"
    kind: ClassVar[str] = "unbiased"
    uses_guide: ClassVar[bool] = True

    def __post_init__(self) -> None:
        need_positive_int(self.name, "n (the SE needs two samples)", self.n, minimum=2)

    def applies(self, target: Target, guide: GuideDensity | None) -> str | None:
        if target.exact is None:
            return "needs the exact posterior (an oracle)"
        if guide is None:
            return "needs a fitted guide"
        if target.family_minimum(guide.family) is None:
            return f"the smallest KL of guide family {guide.family!r} is not known for this model"
        return None

    def estimate(
        self, target: Target, guide: GuideDensity | None, seed: int, cache: EvaluationCache | None = None
    ) -> Estimate:
        if guide is None:
            raise TypeError(f"estimator {self.name!r} needs a fitted guide")
        kl = identity_terms(target, guide, self.n, seed, cache).kl
        return optimization_gap(kl, target.family_minimum(guide.family))


ESTIMATORS = (OptimizationGap(),)
