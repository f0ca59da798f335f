"""Monte Carlo ELBO of a fitted guide.

    ELBO(q) = E_q[log p(x, z) - log q(z)] ~= (1/n) sum_i [log p(x, z_i) - log q(z_i)],  z_i ~ q,
    SE = sd_i / sqrt(n).

Jordan et al. (1999), "An introduction to variational methods for graphical models".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ppl_suite.estimate import Estimate
from ppl_suite.estimators import need_guide, need_positive_int
from ppl_suite.fitted_guide import FittedGuide
from ppl_suite.problem import Problem
from ppl_suite.spec import ExactPosterior


def elbo_terms(guide: FittedGuide, n: int, seed: int) -> np.ndarray:
    """The n i.i.d. terms log p(x, z_i) - log q(z_i), z_i ~ q, with the model's NumPy log joint."""
    if n < 2:
        raise ValueError(f"the ELBO estimate needs n >= 2 samples for a standard error, got {n}")
    problem = guide.problem
    z = guide.sample(seed, n)
    return problem.spec.log_joint(z, problem.data, problem.params) - guide.log_density(z)


def elbo(guide: FittedGuide, n: int = 10_000, seed: int = 0) -> Estimate:
    start = time.perf_counter()
    terms = elbo_terms(guide, n, seed)
    return Estimate.from_samples(terms, seconds=time.perf_counter() - start)


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

    def applies(self, problem: Problem, exact: ExactPosterior | None, guide: str | None = None) -> str | None:
        return None

    def estimate(
        self, problem: Problem, guide: FittedGuide | None, exact: ExactPosterior | None, seed: int = 0
    ) -> Estimate:
        return elbo(need_guide(self.name, guide), self.n, seed)


ESTIMATORS = (ELBO(),)
