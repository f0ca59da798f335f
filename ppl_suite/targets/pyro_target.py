"""A Target from a model's Pyro implementation: log p(x, z) from traces of the conditioned model.

    log p(x, z) = sum over the sample sites of the model traced with its latents fixed to z
                  (``pyro.poutine.condition`` then ``pyro.poutine.trace(...).log_prob_sum()``)

A batch of draws goes through the model the fastest way that agrees with one trace per draw
(``backends.pyro_draws``): vectorized (one trace, the draws on a batch axis left of every latent),
else ``torch.func.vmap`` of the one-draw trace, else a loop of one trace per draw; ``draws_path`` says
which. All in float64, under an empty parameter store (a model's ``pyro.param`` sites, its learned
theta, take their values from ``problem.params``, never from a previous fit). Torch code is not
traceable by JAX, so the unconstrained methods, which gradient-based estimators (AIS, BDMC, Laplace)
differentiate, are not available: ``continuous_reason`` says so, and estimators that need them do
not apply.
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
from ppl_suite.backends import pyro_draws
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

    @cached_property
    def _arguments(self) -> tuple[Any, Any]:
        return as_torch(self.problem.data), as_torch(self.problem.params)

    @cached_property
    def _layout(self) -> tuple[dict[str, int], int]:
        """Each latent site's event dimensions in the model, and the model's plate nesting."""
        with pyro.get_param_store().scope(), torch.no_grad(), pyro.validation_enabled(False):
            pyro.get_param_store().clear()
            trace = poutine.trace(self._model).get_trace(*self._arguments)
        event_dims = {s.name: trace.nodes[s.name]["fn"].event_dim for s in self.sites}
        return event_dims, pyro_draws.plate_nesting(trace)

    @cached_property
    def draws_path(self) -> str:
        """VECTORIZED, VMAP or LOOP: how ``log_joint`` puts a batch of draws through the model."""
        path = pyro_draws.check_draws(self._model, *self._arguments).path
        if path == pyro_draws.VECTORIZED:
            return path
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            draws = {s.name: v for s, v in zip(self.sites, self._prior_draws(), strict=True)}
        try:
            found = self._evaluate(draws, pyro_draws.VMAP)
        except Exception:  # vmap cannot run this model (data-dependent control flow...)
            return pyro_draws.LOOP
        expected = self._evaluate(draws, pyro_draws.LOOP)
        agree = np.allclose(found, expected, rtol=pyro_draws.AGREEMENT, atol=pyro_draws.AGREEMENT)
        return pyro_draws.VMAP if agree else pyro_draws.LOOP

    def _prior_draws(self) -> list[torch.Tensor]:
        """CHECK_DRAWS prior draws of every latent site, in site order."""
        with pyro.get_param_store().scope(), torch.no_grad(), pyro.validation_enabled(False):
            pyro.get_param_store().clear()
            traces = [
                poutine.trace(self._model).get_trace(*self._arguments) for _ in range(pyro_draws.CHECK_DRAWS)
            ]
        return [torch.stack([t.nodes[s.name]["value"] for t in traces]) for s in self.sites]

    def log_joint(self, latents: Latents) -> np.ndarray:
        """log p(x, z) for a batch of constrained latents, shape (n,), by ``draws_path``."""
        missing = [s.name for s in self.sites if s.name not in latents]
        if missing:
            raise ValueError(f"latents lack sites {missing} of model {self.name!r}")
        values = as_torch({s.name: np.asarray(latents[s.name]) for s in self.sites})
        return self._evaluate(values, self.draws_path)

    def _evaluate(self, values: dict[str, torch.Tensor], path: str) -> np.ndarray:
        """log p(x, z_i) of the draws ``values`` (n, *site shape) along ``path``."""
        model, (data, params) = self._model, self._arguments
        n = next(iter(values.values())).shape[0] if values else 0
        with pyro.get_param_store().scope(), torch.no_grad(), pyro.validation_enabled(False):
            pyro.get_param_store().clear()
            if n == 0:
                return np.empty(0)
            if path in (pyro_draws.VECTORIZED, pyro_draws.VMAP):
                return np.concatenate([self._batch(chunk, path) for chunk in self._chunks(values, n)])
            out = np.empty(n)
            for i in range(n):
                out[i] = float(pyro_draws.one_draw(model, data, params, {k: v[i] for k, v in values.items()}))
            return out

    def _chunks(self, values: dict[str, torch.Tensor], n: int) -> list[dict[str, torch.Tensor]]:
        """The draws in chunks of at most NUMBERS_PER_CHUNK numbers of data and latents together."""
        size = max(int(self.problem.spec.problem_size(self.problem.params)), 1)
        step = max(pyro_draws.NUMBERS_PER_CHUNK // size, 1)
        return [{k: v[i : i + step] for k, v in values.items()} for i in range(0, n, step)]

    def _batch(self, values: dict[str, torch.Tensor], path: str) -> np.ndarray:
        """log p(x, z_i) of one chunk of draws, vectorized or by torch.func.vmap."""
        model, (data, params) = self._model, self._arguments
        if path == pyro_draws.VECTORIZED:
            return pyro_draws.vectorized(model, data, params, values, *self._layout).numpy()
        return torch.func.vmap(lambda v: pyro_draws.one_draw(model, data, params, v))(values).numpy()

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
