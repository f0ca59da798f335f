"""A Target from a model's Pyro implementation: log p(x, z) from a trace of the conditioned model.

    log p(x, z) = sum over the sample sites of the model traced with its latents fixed to z
                  (``pyro.poutine.condition`` then ``pyro.poutine.trace(...).log_prob_sum()``)

One trace per draw, in float64, each under an empty parameter store (a model's ``pyro.param`` sites,
its learned theta, take their values from ``problem.params``, never from a previous fit). That is
fast enough for conformance checks against the NumPyro and NumPy targets, not for importance sampling
at scale. Torch code is not traceable by JAX, so the unconstrained methods, which gradient-based
estimators (AIS, BDMC, Laplace) differentiate, are not available: ``continuous_reason`` says so,
and estimators that need them do not apply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NoReturn

import numpy as np
import pyro
import pyro.poutine as poutine
import torch

from ppl_suite import registry
from ppl_suite.backends.pyro import as_torch
from ppl_suite.problem import Problem
from ppl_suite.spec import Latents
from ppl_suite.targets import PosteriorReference
from ppl_suite.targets.numpyro_target import discrete_reason
from ppl_suite.targets.of_problem import OfProblem

NOT_TRACEABLE = "a Pyro model's density is torch code, which JAX cannot trace or differentiate"


@dataclass(frozen=True)
class PyroTarget(OfProblem):
    """log p(x, z) of one problem from its Pyro model, one trace per draw."""

    problem: Problem
    reference: PosteriorReference | None = None

    def __post_init__(self) -> None:
        if registry.implementation(self.problem.spec.name, "pyro") is None:
            raise ValueError(f"model {self.name!r} has no pyro implementation")

    @cached_property
    def _model(self) -> Callable[..., Any]:
        return registry.implementation(self.name, "pyro")

    def log_joint(self, latents: Latents) -> np.ndarray:
        """log p(x, z) for a batch of constrained latents, shape (n,): one model trace per draw."""
        missing = [s.name for s in self.sites if s.name not in latents]
        if missing:
            raise ValueError(f"latents lack sites {missing} of model {self.name!r}")
        data, params = as_torch(self.problem.data), as_torch(self.problem.params)
        values = as_torch({s.name: np.asarray(latents[s.name]) for s in self.sites})
        n = next(iter(values.values())).shape[0] if values else 0
        out = np.empty(n)
        with pyro.get_param_store().scope(), torch.no_grad(), pyro.validation_enabled(False):
            for i in range(n):
                pyro.get_param_store().clear()
                conditioned = poutine.condition(self._model, data={k: v[i] for k, v in values.items()})
                out[i] = float(poutine.trace(conditioned).get_trace(data, params).log_prob_sum())
        return out

    def continuous_reason(self) -> str | None:
        return discrete_reason(self.sites) or NOT_TRACEABLE

    def _not_traceable(self) -> NoReturn:
        raise ValueError(
            f"{self.name!r} through Pyro has no unconstrained JAX density: {self.continuous_reason()}"
        )

    @property
    def dim(self) -> int:
        self._not_traceable()

    def log_joint_u(self, u: Any) -> Any:
        self._not_traceable()

    def prior_and_likelihood(self, u: Any) -> tuple[Any, Any]:
        self._not_traceable()

    def sample_prior(self, key: Any, n: int) -> Any:
        self._not_traceable()

    def constrain(self, u: Any) -> Latents:
        self._not_traceable()

    def unconstrain(self, latents: Latents) -> np.ndarray:
        self._not_traceable()
