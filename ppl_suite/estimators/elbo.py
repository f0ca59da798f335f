"""Monte Carlo ELBO of a fitted guide.

    ELBO(q) = E_q[log p(x, z) - log q(z)] ~= (1/n) sum_i [log p(x, z_i) - log q(z_i)],  z_i ~ q,
    SE = sd_i / sqrt(n).

Jordan et al. (1999), "An introduction to variational methods for graphical models".

The SE describes the Monte Carlo error only. When q is (nearly) the posterior every term equals
log p(x) up to float64 rounding, the SE collapses towards 0 while the rounding of each term's log
densities stays (``rounding.labelled_by_floor``); an SE below that floor does not describe the error,
and the estimate says so (reliability "unreliable").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ppl_suite.estimate import Estimate
from ppl_suite.estimators import guide_reason, need_guide, need_positive_int
from ppl_suite.estimators.cache import EvaluationCache
from ppl_suite.estimators.draws import stream_draws
from ppl_suite.estimators.rounding import labelled_by_floor
from ppl_suite.targets import GuideDensity, Target

STREAM = "elbo"


def elbo(
    target: Target, guide: GuideDensity, n: int = 10_000, seed: int = 0, cache: EvaluationCache | None = None
) -> Estimate:
    """The ELBO from n draws of the ``elbo`` stream of the cell seeded ``seed``; extras: the mean
    magnitude of the terms' log densities and the rounding floor it implies."""
    need_guide("elbo", guide)
    need_positive_int("elbo", "n (the SE needs two samples)", n, minimum=2)
    draws = stream_draws(target, guide, n, seed, STREAM, cache)
    estimate = Estimate.from_samples(draws.log_w, seconds=draws.seconds, magnitude=draws.magnitude)
    return labelled_by_floor(estimate, draws.magnitude)


@dataclass(frozen=True)
class ELBO:
    """Plug-in: the Monte Carlo ELBO of the guide (a lower bound on log p(x))."""

    n: int = 10_000
    name: ClassVar[str] = "elbo"
    quantity: ClassVar[str] = "elbo"
    kind: ClassVar[str] = "unbiased"
    uses_guide: ClassVar[bool] = True

    def __post_init__(self) -> None:
        need_positive_int(self.name, "n (the SE needs two samples)", self.n, minimum=2)

    def applies(self, target: Target, guide: GuideDensity | None) -> str | None:
        return guide_reason(guide)

    def estimate(
        self, target: Target, guide: GuideDensity | None, seed: int, cache: EvaluationCache | None = None
    ) -> Estimate:
        return elbo(target, need_guide(self.name, guide), self.n, seed, cache)


ESTIMATORS = (ELBO(),)
