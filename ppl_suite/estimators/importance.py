"""Importance sampling of log p(x) with the guide as proposal, and the IWAE bound for growing K.

    w_i = p(x, z_i) / q(z_i),  z_i ~ q  (i.i.d.);  E_q[w] = p(x)
    log p(x) ~= log((1/N) sum_i w_i)                          (consistent; delta-method SE)
    IWAE_K = E[log((1/K) sum_{k=1..K} w_k)] <= log p(x),      IWAE_1 = ELBO, IWAE_K increases to log p(x)

Burda, Grosse and Salakhutdinov (2016), "Importance weighted autoencoders", ICLR.

The bound at K is estimated from R = floor(N / K) independent repetitions, each the log-mean-exp of
its own block of K weights (blocks are disjoint): value = mean of the R block values and
SE = sd / sqrt(R), which needs R >= 2. Every K of the curve reuses the same N weights, so the points of
the curve are correlated with each other, but each point's SE is valid on its own. Log-mean-exp is
max-shifted, so it is stable for weights spanning any range.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ppl_suite.estimate import Estimate
from ppl_suite.estimators import need_guide
from ppl_suite.estimators.weights import effective_sample_size, log_mean_exp_se
from ppl_suite.fitted_guide import FittedGuide
from ppl_suite.numerics import log_mean_exp
from ppl_suite.problem import Problem
from ppl_suite.spec import ExactPosterior

IWAE_KS = (1, 10, 100, 1000, 10_000)
# samples x (data + latent scalars) per batch of the NumPy log joint: at most 320 MB of float64 should
# a log joint hold a (samples, data) array; fewer, larger batches cost less per sample.
CHUNK_ELEMENTS = 40_000_000


def _chunk_size(problem: Problem) -> int:
    size = sum(int(np.size(v)) for v in problem.data.values()) + sum(s.size for s in problem.sites)
    return max(CHUNK_ELEMENTS // max(size, 1), 256)


def chunk_seed(seed: int, index: int) -> int:
    """A 31-bit seed for batch ``index`` of a run seeded with ``seed`` (no overlap between runs)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0] >> 1)


def log_weights(guide: FittedGuide, n: int, seed: int) -> np.ndarray:
    """n i.i.d. log weights log p(x, z_i) - log q(z_i), z_i ~ q, in batches bounded in memory."""
    need_guide("importance sampling", guide)
    if not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"the number of importance samples must be an integer >= 1, got {n!r}")
    problem = guide.problem
    chunk = _chunk_size(problem)
    out = np.empty(n)
    for index, start in enumerate(range(0, n, chunk)):
        m = min(chunk, n - start)
        z = guide.sample(chunk_seed(seed, index), m)
        out[start : start + m] = problem.spec.log_joint(z, problem.data, problem.params) - guide.log_density(
            z
        )
    return out


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


def iwae_curve(log_w: np.ndarray, ks: tuple[int, ...] = IWAE_KS) -> dict[int, Estimate]:
    """IWAE_K for every K in ``ks`` that has at least two repetitions in ``log_w``."""
    return {int(k): iwae_bound(log_w, k) for k in ks if np.size(log_w) // k >= 2}


def importance_log_evidence(
    guide: FittedGuide, n: int = 100_000, seed: int = 0, ks: tuple[int, ...] = IWAE_KS
) -> Estimate:
    """log p(x) ~= log mean_i w_i over n guide draws, delta-method SE; extras: IWAE curve and ESS."""
    if n < 2:
        raise ValueError(f"importance sampling needs n >= 2 samples for a standard error, got {n}")
    start = time.perf_counter()
    log_w = log_weights(guide, n, seed)
    value, se = log_mean_exp_se(log_w)
    curve = iwae_curve(log_w, ks)
    return Estimate(
        value,
        se,
        n_evals=n,
        seconds=time.perf_counter() - start,
        extras={
            "ess": effective_sample_size(log_w),
            "iwae_k": [k for k in curve],
            "iwae": [e.value for e in curve.values()],
            "iwae_se": [e.se for e in curve.values()],
        },
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
        if self.n < 2:
            raise ValueError(f"{self.name}: n must be >= 2, got {self.n}")
        if any(k < 1 for k in self.ks):
            raise ValueError(f"{self.name}: every K must be >= 1, got {self.ks}")

    def applies(self, problem: Problem, exact: ExactPosterior | None, guide: str | None = None) -> str | None:
        return None

    def estimate(
        self, problem: Problem, guide: FittedGuide | None, exact: ExactPosterior | None, seed: int = 0
    ) -> Estimate:
        return importance_log_evidence(need_guide(self.name, guide), self.n, seed, self.ks)


@dataclass(frozen=True)
class IWAE:
    """Plug-in: the IWAE lower bound on log p(x) at one K, from independent repetitions."""

    k: int = 1000
    repeats: int = 100
    name: ClassVar[str] = "iwae"
    quantity: ClassVar[str] = "log_evidence"
    kind: ClassVar[str] = "lower_bound"
    uses_guide: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"{self.name}: K must be >= 1, got {self.k}")
        if self.repeats < 2:
            raise ValueError(f"{self.name}: repeats must be >= 2 for a standard error, got {self.repeats}")

    def applies(self, problem: Problem, exact: ExactPosterior | None, guide: str | None = None) -> str | None:
        return None

    def estimate(
        self, problem: Problem, guide: FittedGuide | None, exact: ExactPosterior | None, seed: int = 0
    ) -> Estimate:
        start = time.perf_counter()
        log_w = log_weights(need_guide(self.name, guide), self.k * self.repeats, seed)
        bound = iwae_bound(log_w, self.k)
        return Estimate(
            bound.value,
            bound.se,
            log_w.size,
            time.perf_counter() - start,
            {"k": self.k, "repeats": self.repeats},
        )


ESTIMATORS = (Importance(), IWAE())
