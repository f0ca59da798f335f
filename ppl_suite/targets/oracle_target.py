"""A Target from a model's NumPy oracle: ``ModelSpec.log_joint``, batched log p(x, z) in NumPy/SciPy.

The batched log joint at constrained latents is the model's own NumPy formula, evaluated in chunks
bounded in memory. The unconstrained methods (``log_joint_u``, ``prior_and_likelihood``,
``sample_prior``, ``constrain``, ``unconstrain``) are delegated, one by one, to the NumPyro target of
the same problem: gradient-based estimators need a density JAX can trace and differentiate, which
NumPy code is not, and writing the bijections twice would give two sources of truth. Without a
NumPyro implementation they raise, and ``continuous_reason`` says why.

The suite's pipeline takes its target from ``ppl_suite.targets.build.target_for`` (NumPyro first, for
speed); this one is the NumPy cross-check of the same numbers, and the route for a model that brings
a NumPy log joint but no NumPyro implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ppl_suite.problem import Problem
from ppl_suite.spec import Latents
from ppl_suite.targets import PosteriorReference
from ppl_suite.targets.numpyro_target import NumPyroTarget, discrete_reason, numpyro_reason
from ppl_suite.targets.of_problem import OfProblem

# samples x (data + latent scalars) per chunk of the NumPy log joint: at most 320 MB of float64
# should a log joint hold a (samples, data) array; fewer, larger chunks cost less per sample.
CHUNK_ELEMENTS = 40_000_000


@dataclass(frozen=True)
class OracleTarget(OfProblem):
    """log p(x, z) from ``problem.spec.log_joint``; unconstrained methods from the NumPyro target."""

    problem: Problem
    reference: PosteriorReference | None = None

    def __post_init__(self) -> None:
        if self.problem.spec.log_joint is None:
            raise ValueError(f"model {self.name!r} declares no NumPy log joint")

    def log_joint(self, latents: Latents) -> np.ndarray:
        """log p(x, z), shape (n,), from the model's NumPy formula in memory-bounded chunks."""
        missing = [s.name for s in self.sites if s.name not in latents]
        if missing:
            raise ValueError(f"latents lack sites {missing} of model {self.name!r}")
        problem = self.problem
        n = np.shape(latents[self.sites[0].name])[0] if self.sites else 0
        size = sum(int(np.size(v)) for v in problem.data.values()) + sum(s.size for s in self.sites)
        chunk = max(CHUNK_ELEMENTS // max(size, 1), 256)
        out = np.empty(n)
        for start in range(0, n, chunk):
            part = {s.name: np.asarray(latents[s.name])[start : start + chunk] for s in self.sites}
            out[start : start + chunk] = problem.spec.log_joint(part, problem.data, problem.params)
        return out

    def continuous_reason(self) -> str | None:
        return discrete_reason(self.sites) or numpyro_reason(self.problem)

    @cached_property
    def _traceable(self) -> NumPyroTarget:
        reason = self.continuous_reason()
        if reason is not None:
            raise ValueError(f"{self.name!r}: no unconstrained JAX density: {reason}")
        return NumPyroTarget(self.problem)

    @property
    def dim(self) -> int:
        return self._traceable.dim

    def log_joint_u(self, u: Any) -> Any:
        return self._traceable.log_joint_u(u)

    def prior_and_likelihood(self, u: Any) -> tuple[Any, Any]:
        return self._traceable.prior_and_likelihood(u)

    def sample_prior(self, key: Any, n: int) -> Any:
        return self._traceable.sample_prior(key, n)

    def constrain(self, u: Any) -> Latents:
        return self._traceable.constrain(u)

    def unconstrain(self, latents: Latents) -> np.ndarray:
        return self._traceable.unconstrain(latents)
