"""Monte Carlo ELBO of a fitted guide.

    ELBO(q) = E_q[log p(x, z) - log q(z)] ~= (1/n) sum_i [log p(x, z_i) - log q(z_i)],  z_i ~ q,
    SE = sd_i / sqrt(n).

Jordan et al. (1999), "An introduction to variational methods for graphical models".
"""

from __future__ import annotations

import time

import numpy as np

from ppl_suite.estimate import Estimate
from ppl_suite.fitted_guide import FittedGuide


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
