"""Draws from the guide with their log densities: the intermediate that the ELBO, importance
sampling, IWAE and PSIS are computed from.

    z_i ~ q (i.i.d.),  log w_i = log p(x, z_i) - log q(z_i),  i = 1..n

log p(x, z) comes from the Target (compiled and vectorized for the NumPyro target), log q(z) from
the GuideDensity. Draws are made in chunks bounded in memory, chunk j seeded by
SeedSequence([stream seed, j]), so the weights depend on (stream seed, n) only. Through an
``EvaluationCache`` they are computed once per cell for a given (guide, n, stream).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ppl_suite.estimators.cache import EvaluationCache
from ppl_suite.estimators.streams import stream_seed
from ppl_suite.estimators.weights import pareto_smoothed
from ppl_suite.targets import GuideDensity, Target

CONSTANT_RANGE = math.sqrt(np.finfo(np.float64).eps)  # log weights within this range are equal (``pareto``)
# draws x latent scalars per chunk: at most 320 MB of float64 latents at once
CHUNK_ELEMENTS = 40_000_000


def chunk_seed(seed: int, index: int) -> int:
    """The seed of chunk ``index`` of a run seeded ``seed`` (no overlap between runs)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0] >> np.uint64(1))


@dataclass(frozen=True)
class Draws:
    """log p(x, z_i) and log q(z_i) of n guide draws, and the seconds they took."""

    log_joint: np.ndarray
    log_q: np.ndarray
    seconds: float

    @property
    def log_w(self) -> np.ndarray:
        """log w_i = log p(x, z_i) - log q(z_i)."""
        return self.log_joint - self.log_q

    @property
    def magnitude(self) -> float:
        """mean_i (|log p(x, z_i)| + |log q(z_i)|): the size of what each log w_i is the difference of."""
        return float(np.mean(np.abs(self.log_joint) + np.abs(self.log_q)))

    @cached_property
    def pareto(self) -> tuple[np.ndarray, float]:
        """(Pareto-smoothed log weights, k-hat) of these draws, fitted once (IS, every K of IWAE and
        PSIS share them through the cell's cache).

        Log weights whose whole range lies below sqrt(eps) ~ 1.5e-8 are constant for every purpose:
        any average of such weights (IS, IWAE, PSIS) lies within that range of each of them, so its
        error is below 1.5e-8 nats whatever the shape of their tail, and a generalized Pareto fit to
        what is then rounding noise would return any k-hat (q = p gave -5 on one model, +inf on
        another). Their k-hat is -inf, the limit of ever lighter tails: nothing for k-hat to predict.
        """
        log_w = self.log_w
        if np.ptp(log_w) <= CONSTANT_RANGE:
            return log_w.copy(), -math.inf
        return pareto_smoothed(log_w)


def guide_draws(target: Target, guide: GuideDensity, n: int, seed: int) -> Draws:
    """n draws z ~ q seeded by ``seed`` (used as given) and their log densities."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"the number of guide draws must be an integer >= 1, got {n!r}")
    start = time.perf_counter()
    size = max(sum(s.size for s in target.sites), 1)
    chunk = max(CHUNK_ELEMENTS // size, 256)
    log_joint, log_q = np.empty(n), np.empty(n)
    for index, first in enumerate(range(0, n, chunk)):
        m = min(chunk, n - first)
        z = guide.sample(chunk_seed(seed, index), m)
        log_joint[first : first + m] = target.log_joint(z)
        log_q[first : first + m] = guide.log_q(z)
    return Draws(log_joint, log_q, time.perf_counter() - start)


def stream_draws(
    target: Target, guide: GuideDensity, n: int, seed: int, stream: str, cache: EvaluationCache | None
) -> Draws:
    """The draws of ``stream`` in a cell seeded ``seed``: from ``cache`` when it holds them."""
    own = stream_seed(seed, stream)
    if cache is None:
        return guide_draws(target, guide, n, own)
    return cache.get(target, guide, ("draws", int(n), own), lambda: guide_draws(target, guide, n, own))
