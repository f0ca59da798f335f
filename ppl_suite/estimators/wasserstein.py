"""The 2-Wasserstein distance between q and a reference posterior, from draws alone (no density), in
the unconstrained space R^d where both live:

    W2(P, Q)^2 = min over couplings of E ||u - v||^2

Between two empirical measures of m equally weighted draws each, the optimal coupling is a
permutation, found exactly by the assignment solver of ``scipy.optimize.linear_sum_assignment``
(Kuhn-Munkres; Peyré and Cuturi 2019, "Computational Optimal Transport", section 2.2).

An empirical W2 is biased upward by the sampling of both sides (by about m^(-1/d) in d dimensions), so
the value alone does not say whether q differs from the reference. Each of K disjoint batches
therefore gives two distances at the same m: q against the reference, and the reference against
another part of itself (the ``floor``: the distance sampling noise alone produces). The value is the
mean over batches, SE = sd / sqrt(K); q is indistinguishable from the reference at this m when the
value is within a few SE of the floor.

MCMC draws are autocorrelated: two subsets of one chain's neighbouring draws are closer to each other
than independent draws would be, which would put the floor too low. The reference is therefore
thinned to about its effective sample size first (every ceil(n / ESS)-th draw, from a seeded offset),
then shuffled (seeded) so that each batch mixes chains, and m is capped at what the thinned draws
allow: m = min(m, n_thinned // (2 K)), at least MIN_M.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from ppl_suite.estimate import Estimate
from ppl_suite.estimators import guide_reason, need_guide, need_positive_int
from ppl_suite.estimators.cache import EvaluationCache
from ppl_suite.estimators.streams import stream_seed
from ppl_suite.targets import GuideDensity, PosteriorReference, Target

STREAM = "wasserstein"
MIN_M = 50  # draws per side below which an empirical W2 says little


def empirical_w2(a: np.ndarray, b: np.ndarray) -> float:
    """Exact W2 between the empirical measures of the rows of ``a`` and ``b`` (same number of rows)."""
    cost = cdist(a, b, metric="sqeuclidean")
    rows, columns = linear_sum_assignment(cost)
    return float(np.sqrt(cost[rows, columns].mean()))


def wasserstein_to_reference(
    target: Target,
    guide: GuideDensity,
    reference: PosteriorReference,
    m: int = 500,
    batches: int = 4,
    seed: int = 0,
) -> Estimate:
    """Mean W2(q, reference) over ``batches`` batches of m draws each, its SE, and the floor."""
    start = time.perf_counter()
    ref = target.unconstrain(reference.draws)
    rng = np.random.default_rng(stream_seed(seed, STREAM))
    stride = max(1, math.ceil(ref.shape[0] / max(reference.ess, 1.0)))
    ref = ref[rng.integers(stride) :: stride]  # about one draw per effective sample
    m = min(m, ref.shape[0] // (2 * batches))
    if m < MIN_M:
        raise ValueError(
            f"wasserstein: {batches} batches need 2 x {MIN_M} reference draws each after thinning to the "
            f"effective sample size (every {stride}th draw), the reference leaves {ref.shape[0]}"
        )
    ref = ref[rng.permutation(ref.shape[0])]
    q = target.unconstrain(guide.sample(stream_seed(seed, f"{STREAM}.q"), m * batches))
    distances, floors = [], []
    for k in range(batches):
        q_k, ref_k, other_k = (
            q[k * m : (k + 1) * m],
            ref[2 * k * m : (2 * k + 1) * m],
            ref[(2 * k + 1) * m : (2 * k + 2) * m],
        )
        distances.append(empirical_w2(q_k, ref_k))
        floors.append(empirical_w2(other_k, ref_k))
    distances, floors = np.asarray(distances), np.asarray(floors)
    return Estimate(
        value=float(distances.mean()),
        se=float(distances.std(ddof=1) / np.sqrt(batches)),
        n_evals=m * batches,
        seconds=time.perf_counter() - start,
        extras={
            "floor": float(floors.mean()),
            "floor_se": float(floors.std(ddof=1) / np.sqrt(batches)),
            "m": m,
            "batches": batches,
            "thinned_every": stride,
            "space": "unconstrained",
        },
    )


@dataclass(frozen=True)
class Wasserstein:
    """Plug-in: W2 between q and the reference posterior's draws, with the reference's own floor."""

    m: int = 500
    batches: int = 4
    name: ClassVar[str] = "wasserstein"
    quantity: ClassVar[str] = "wasserstein_to_reference"
    kind: ClassVar[str] = "consistent"
    uses_guide: ClassVar[bool] = True

    def __post_init__(self) -> None:
        need_positive_int(self.name, "m", self.m)
        need_positive_int(self.name, "batches (the SE needs two)", self.batches, minimum=2)

    def applies(self, target: Target, guide: GuideDensity | None) -> str | None:
        if target.reference is None:
            return "needs a reference posterior (models without an oracle: `ppl-suite reference MODEL`)"
        if (reason := target.continuous_reason()) is not None:
            return reason
        return guide_reason(guide)

    def estimate(
        self, target: Target, guide: GuideDensity | None, seed: int, cache: EvaluationCache | None = None
    ) -> Estimate:
        guide = need_guide(self.name, guide)
        return wasserstein_to_reference(target, guide, target.reference, self.m, self.batches, seed)


ESTIMATORS = (Wasserstein(),)
