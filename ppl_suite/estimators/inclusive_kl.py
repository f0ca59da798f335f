"""Inclusive KL(p(z | x) || q) with exact posterior draws: the other direction from what VI minimizes.

    KL(p || q) = E_{p(z | x)}[log p(z | x) - log q(z)]
               ~= (1/n) sum_i [log p(z_i | x) - log q(z_i)],  z_i ~ p(z | x),   SE = sd_i / sqrt(n)

VI minimizes the exclusive KL(q || p), which lets q drop posterior mass (mode seeking, variance
under-estimated); KL(p || q) punishes exactly that, so the pair shows the asymmetry (Minka 2005,
"Divergence measures and message passing", MSR-TR-2005-173). It is also the KL that makes q a good
importance proposal (Kullback and Leibler 1951 for the divergence itself). Draws come from the
``inclusive_kl`` stream of the cell.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ppl_suite.estimate import Estimate
from ppl_suite.estimators import guide_reason, need_exact, need_guide, need_positive_int
from ppl_suite.estimators.cache import EvaluationCache
from ppl_suite.estimators.rounding import labelled_by_floor
from ppl_suite.estimators.streams import stream_seed
from ppl_suite.spec import ExactPosterior
from ppl_suite.targets import GuideDensity, Target

STREAM = "inclusive_kl"


def inclusive_kl(guide: GuideDensity, exact: ExactPosterior, n: int = 10_000, seed: int = 0) -> Estimate:
    need_guide("inclusive_kl", guide)
    need_exact("inclusive_kl", exact)
    need_positive_int("inclusive_kl", "n (the SE needs two draws)", n, minimum=2)
    start = time.perf_counter()
    z = exact.sample(np.random.default_rng(stream_seed(seed, STREAM)), n)
    log_p, log_q = exact.log_density(z), guide.log_q(z)
    estimate = Estimate.from_samples(log_p - log_q, seconds=time.perf_counter() - start)
    return labelled_by_floor(estimate, float(np.mean(np.abs(log_p) + np.abs(log_q))))


@dataclass(frozen=True)
class InclusiveKL:
    """Plug-in: KL(p(z | x) || q) by Monte Carlo over exact posterior draws."""

    n: int = 10_000
    name: ClassVar[str] = "inclusive_kl"
    quantity: ClassVar[str] = "kl_from_posterior"
    kind: ClassVar[str] = "unbiased"
    uses_guide: ClassVar[bool] = True

    def __post_init__(self) -> None:
        need_positive_int(self.name, "n", self.n, minimum=2)

    def applies(self, target: Target, guide: GuideDensity | None) -> str | None:
        if target.exact is None:
            return "needs exact posterior draws and density (an oracle)"
        return guide_reason(guide)

    def estimate(
        self, target: Target, guide: GuideDensity | None, seed: int, cache: EvaluationCache | None = None
    ) -> Estimate:
        return inclusive_kl(need_guide(self.name, guide), target.exact, self.n, seed)


ESTIMATORS = (InclusiveKL(),)
