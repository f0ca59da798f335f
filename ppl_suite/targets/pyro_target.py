"""A Target from a model's Pyro implementation: log p(x, z) from traces of the conditioned model.

    log p(x, z) = sum over the sample sites of the model traced with its latents fixed to z
                  (``pyro.poutine.condition`` then ``pyro.poutine.trace(...).log_prob_sum()``)

A batch of draws goes through the model the fastest way that agrees with one trace per draw
(``backends.pyro_draws``): vectorized (one trace, the draws on a batch axis left of every latent),
else ``torch.func.vmap`` of the one-draw trace, else a loop of one trace per draw; ``draws_path`` says
which. All in float64, under an empty parameter store (a model's ``pyro.param`` sites, its learned
theta, take their values from ``problem.params``, never from a previous fit).

The unconstrained space is the NumPyro target's (``numpyro_target``): sites in declaration order,
each flattened in its ``unconstrained_shape`` and mapped by the bijection of its support (torch's
``biject_to``, the same maps: exp, sigmoid, stick-breaking), so u means the same point in both. On it

    log p(u)     = log p(T(u)) + log |det dT/du|(u)
    log p(x | u) = log p(x, T(u)) - log p(T(u))

are torch code, evaluated for a batch of u along ``draws_path`` with their gradients and made a JAX
function by ``targets.torch_density`` (``jax.pure_callback`` and a ``jax.custom_vjp``): AIS, BDMC and
NUTS (``references.nuts``) run on a Pyro model through it, one torch call per batch of chains. Each
batch shape's evaluation is recorded once (Pyro's tracing, the transforms and torch's backward pass
as one graph of torch operations) and replayed, unless the recording cannot stand for every input:
``density_path`` says which.
Second derivatives are not available (``jax.hessian`` of it raises).

With ``non_centered`` sites the model is Pyro's ``poutine.reparam`` of it with ``LocScaleReparam(0)``
on each (Gorinova, Moore and Hoffman 2020): theta ~ loc-scale(mu, tau) becomes eta ~ loc-scale(0, 1),
theta = mu + tau eta, a deterministic site. The target's sites are then eta's (``<name>_decentered``)
in theta's place: the same joint distribution of the data in other coordinates, what a NUTS reference
samples when the centered form's funnel defeats it; ``original_sites`` maps its draws back to theta.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
import pyro
import pyro.poutine as poutine
import torch
from torch.distributions import biject_to

from ppl_suite import registry
from ppl_suite.backends import pyro_draws
from ppl_suite.backends.pyro import as_torch
from ppl_suite.guides.base import unconstrained_shape
from ppl_suite.guides.joint import blocks
from ppl_suite.numerics import enable_float64
from ppl_suite.problem import Problem
from ppl_suite.spec import ExactPosterior, Latents, Site
from ppl_suite.targets import PosteriorReference
from ppl_suite.targets.numpyro_target import discrete_reason
from ppl_suite.targets.of_problem import OfProblem
from ppl_suite.targets.torch_density import PYRO_STATE_LOCK, TorchDensity, jax_functions

DECENTERED = "_decentered"  # LocScaleReparam's name for a site's standardized noise


@dataclass(frozen=True)
class PyroTarget(OfProblem):
    """log p(x, z) of one problem from its Pyro model, one trace per draw."""

    problem: Problem
    reference: PosteriorReference | None = None
    compiled: bool = True  # the unconstrained density replayed per batch shape (``torch_compiled``)
    non_centered: tuple[str, ...] = ()  # sites sampled non-centered (``LocScaleReparam``): module docstring

    def __post_init__(self) -> None:
        if registry.implementation(self.problem.spec.name, "pyro") is None:
            raise ValueError(f"model {self.name!r} has no pyro implementation")
        enable_float64()

    @cached_property
    def _model(self) -> Callable[..., Any]:
        model = registry.implementation(self.name, "pyro")
        if not self.non_centered:
            return model
        from pyro.infer.reparam import LocScaleReparam

        return poutine.reparam(
            model, config={name: LocScaleReparam(centered=0.0) for name in self.non_centered}
        )

    @cached_property
    def sites(self) -> tuple[Site, ...]:
        """The latent sites of the model sampled: each ``non_centered`` site replaced by its standardized
        noise ``<name>_decentered`` (same shape, real), in the model's order."""
        unknown = sorted(set(self.non_centered) - {s.name for s in self.problem.sites})
        if unknown:
            raise ValueError(f"non-centered sites {unknown} are not latent sites of {self.name!r}")
        return tuple(
            replace(site, name=f"{site.name}{DECENTERED}", support="real", prior=None)
            if site.name in self.non_centered
            else site
            for site in self.problem.sites
        )

    @cached_property
    def exact(self) -> ExactPosterior | None:
        return None if self.non_centered else self.problem.exact()

    @cached_property
    def _arguments(self) -> tuple[Any, Any]:
        return as_torch(self.problem.data), as_torch(self.problem.params)

    @cached_property
    def _layout(self) -> tuple[dict[str, int], int]:
        """Each latent site's event dimensions in the model, and the model's plate nesting."""
        with PYRO_STATE_LOCK, pyro.get_param_store().scope(), torch.no_grad(), pyro.validation_enabled(False):
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
            draws = self._prior_draws(pyro_draws.CHECK_DRAWS)
        try:
            found = self._evaluate(draws, pyro_draws.VMAP)
        except Exception:  # vmap cannot run this model (data-dependent control flow...)
            return pyro_draws.LOOP
        expected = self._evaluate(draws, pyro_draws.LOOP)
        agree = np.allclose(found, expected, rtol=pyro_draws.AGREEMENT, atol=pyro_draws.AGREEMENT)
        return pyro_draws.VMAP if agree else pyro_draws.LOOP

    def _prior_draws(self, n: int) -> dict[str, torch.Tensor]:
        """n prior draws of every latent site (n, *site.shape), one trace each, from torch's generator."""
        with PYRO_STATE_LOCK, pyro.get_param_store().scope(), torch.no_grad(), pyro.validation_enabled(False):
            pyro.get_param_store().clear()
            traces = [poutine.trace(self._model).get_trace(*self._arguments) for _ in range(n)]
        return {s.name: torch.stack([t.nodes[s.name]["value"] for t in traces]) for s in self.sites}

    def log_joint(self, latents: Latents) -> np.ndarray:
        """log p(x, z) for a batch of constrained latents, shape (n,), by ``draws_path``."""
        missing = [s.name for s in self.sites if s.name not in latents]
        if missing:
            raise ValueError(f"latents lack sites {missing} of model {self.name!r}")
        values = as_torch({s.name: np.asarray(latents[s.name]) for s in self.sites})
        return self._evaluate(values, self.draws_path)

    def _evaluate(self, values: dict[str, torch.Tensor], path: str) -> np.ndarray:
        """log p(x, z_i) of the draws ``values`` (n, *site shape) along ``path``, without gradients."""
        with torch.no_grad():
            return self._parts(values, path)[1].numpy()

    def _parts(self, values: dict[str, torch.Tensor], path: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(log p(z_i), log p(x, z_i)) of the draws ``values`` (n, *site shape) along ``path``, in torch
        (differentiable where gradients are enabled)."""
        n = next(iter(values.values())).shape[0] if values else 0
        with PYRO_STATE_LOCK, pyro.get_param_store().scope(), pyro.validation_enabled(False):
            pyro.get_param_store().clear()
            if n == 0:
                return torch.zeros(0), torch.zeros(0)
            if path == pyro_draws.LOOP:
                model, (data, params) = self._model, self._arguments
                each = [pyro_draws.one_draw_parts(model, data, params, {k: v[i] for k, v in values.items()})
                        for i in range(n)]  # fmt: skip
                return torch.stack([p for p, _ in each]), torch.stack([j for _, j in each])
            chunks = [self._batch(chunk, path) for chunk in self._chunks(values, n)]
            return torch.cat([p for p, _ in chunks]), torch.cat([j for _, j in chunks])

    def _chunks(self, values: dict[str, torch.Tensor], n: int) -> list[dict[str, torch.Tensor]]:
        """The draws in chunks of at most NUMBERS_PER_CHUNK numbers of data and latents together."""
        size = max(int(self.problem.spec.problem_size(self.problem.params)), 1)
        step = max(pyro_draws.NUMBERS_PER_CHUNK // size, 1)
        return [{k: v[i : i + step] for k, v in values.items()} for i in range(0, n, step)]

    def _batch(self, values: dict[str, torch.Tensor], path: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(log p(z_i), log p(x, z_i)) of one chunk of draws, vectorized or by torch.func.vmap."""
        model, (data, params) = self._model, self._arguments
        if path == pyro_draws.VECTORIZED:
            return pyro_draws.vectorized_parts(model, data, params, values, *self._layout)
        return torch.func.vmap(lambda v: pyro_draws.one_draw_parts(model, data, params, v))(values)

    def continuous_reason(self) -> str | None:
        return discrete_reason(self.sites)

    # Unconstrained space (module docstring) -------------------------------------------------------

    @cached_property
    def _transforms(self) -> list[tuple[Site, tuple[int, ...], int, int, Any]]:
        """(site, unconstrained shape, start, stop, torch bijection) of each site's block u[start:stop]."""
        reason = self.continuous_reason()
        if reason is not None:
            raise ValueError(f"{self.name!r} has no unconstrained space: {reason}")
        constraints = torch.distributions.constraints
        return [
            (site, unconstrained_shape(site), start, stop, biject_to(getattr(constraints, site.support)))
            for site, start, stop in blocks(self.sites)
        ]

    @property
    def dim(self) -> int:
        """d, the number of unconstrained coordinates."""
        return self._transforms[-1][3] if self._transforms else 0

    def _constrained(self, u: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """z = T(u) per site (n, *site.shape) and log |det dT/du| (n,) for u (n, d), in torch."""
        n = u.shape[0]
        values, log_jacobian = {}, torch.zeros(n, dtype=torch.float64)
        for site, shape, start, stop, transform in self._transforms:
            block = u[:, start:stop].reshape(n, *shape)
            values[site.name] = transform(block)
            log_jacobian = log_jacobian + transform.log_abs_det_jacobian(block, values[site.name]).reshape(
                n, -1
            ).sum(-1)
        return values, log_jacobian

    def _unconstrained_parts(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log p(u_i), log p(x | u_i)) for u (n, d), in torch (module docstring)."""
        values, log_jacobian = self._constrained(u)
        prior, joint = self._parts(values, self.draws_path)
        return prior + log_jacobian, joint - prior

    @cached_property
    def _density(self) -> TorchDensity:
        return jax_functions(self._unconstrained_parts, self.dim, self.compiled)

    @property
    def density_path(self) -> str:
        """How torch evaluated the unconstrained density so far: "compiled" (recorded per batch shape
        and replayed), or "eager: <why>" (``targets.torch_compiled``)."""
        return self._density.path

    def _check(self, u: Any) -> Any:
        import jax.numpy as jnp

        u = jnp.asarray(u, jnp.float64)
        if u.shape != (self.dim,):
            raise ValueError(
                f"an unconstrained point of {self.name!r} has shape ({self.dim},), got {u.shape}; "
                "batch with jax.vmap"
            )
        return u

    def prior_and_likelihood(self, u: Any) -> tuple[Any, Any]:
        """(log p(u), log p(x | T(u))) at one u (d,): JAX, differentiable once, torch underneath."""
        return self._density.prior_and_likelihood(self._check(u))

    def log_joint_u(self, u: Any) -> Any:
        """log p(x, u) = log p(x, T(u)) + log |det dT/du| at one u (d,)."""
        return self._density.log_joint(self._check(u))

    def sample_prior(self, key: Any, n: int) -> Any:
        """n draws u ~ p(u), (n, d): the model run forward (torch's generator seeded from ``key``,
        forked), latents mapped by T^-1."""
        import jax
        import jax.numpy as jnp

        _ = self._transforms  # ValueError first where there is no unconstrained space
        seed = int(jax.random.randint(key, (), 0, np.iinfo(np.int32).max))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            draws = self._prior_draws(n)
        return jnp.asarray(self.unconstrain({k: v.numpy() for k, v in draws.items()}))

    def constrain(self, u: Any) -> Latents:
        """Latents (constrained, one leading batch axis) for u of shape (n, d)."""
        u = np.asarray(u, dtype=np.float64)
        if u.ndim != 2 or u.shape[1] != self.dim:
            raise ValueError(f"expected unconstrained points of shape (n, {self.dim}), got {u.shape}")
        with torch.no_grad():
            values, _ = self._constrained(torch.tensor(u))
        return {k: v.numpy() for k, v in values.items()}

    def unconstrain(self, latents: Latents) -> np.ndarray:
        """u = T^-1(z) of shape (n, d) for a batch of constrained latents."""
        missing = [s.name for s in self.sites if s.name not in latents]
        if missing:
            raise ValueError(
                f"latents lack sites {missing}; {self.name!r} has {[s.name for s in self.sites]}"
            )
        n = np.shape(latents[self.sites[0].name])[0] if self.sites else 0
        parts = []
        for site, _, start, stop, transform in self._transforms:
            value = torch.as_tensor(np.asarray(latents[site.name], dtype=np.float64))
            if tuple(value.shape) != (n, *site.shape):
                raise ValueError(
                    f"site {site.name!r}: expected shape ({n}, *{site.shape}), got {tuple(value.shape)}"
                )
            with torch.no_grad():
                parts.append(transform.inv(value).reshape(n, stop - start).numpy())
        return np.concatenate(parts, axis=1) if parts else np.zeros((n, 0))

    def original_sites(self, latents: Latents) -> Latents:
        """The problem's latent sites, as the model writes them, for a batch of this target's latents:
        each ``non_centered`` site is the deterministic value the reparametrized model computes
        (theta = loc + scale eta), read from one trace per draw (``torch.func.vmap`` of it on the VMAP
        path); the latents themselves when nothing is non-centered."""
        if not self.non_centered:
            return latents
        values = as_torch({s.name: np.asarray(latents[s.name]) for s in self.sites})
        names = [s.name for s in self.problem.sites]
        model, (data, params) = self._model, self._arguments

        def one(value: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            trace = poutine.trace(poutine.condition(model, data=value)).get_trace(data, params)
            return {name: trace.nodes[name]["value"] for name in names}

        n = np.shape(latents[self.sites[0].name])[0]
        with PYRO_STATE_LOCK, pyro.get_param_store().scope(), torch.no_grad(), pyro.validation_enabled(False):
            pyro.get_param_store().clear()
            if self.draws_path == pyro_draws.VMAP:
                found = torch.func.vmap(one)(values)
            else:
                each = [one({k: v[i] for k, v in values.items()}) for i in range(n)]
                found = {name: torch.stack([e[name] for e in each]) for name in names}
        return {name: found[name].numpy() for name in names}
