"""A Target from a model's NumPyro implementation (``numpyro.infer.util``): every estimator's route.

A model's continuous latents z live on supports (reals, positives, (0, 1), simplices); the bijection
z = T(u) of each site's support (``numpyro.distributions.transforms.biject_to``) maps a flat vector
u in R^d onto them. On that space

    log p(x, u)  = log p(x, T(u)) + log |det dT/du|(u)
    log p(u)     = log p(T(u))    + log |det dT/du|(u)
    log p(x | u) = log p(x, u) - log p(u)          (the Jacobian cancels)

and int exp(log p(x, u)) du = p(x), so AIS, BDMC and the Laplace approximation can work on R^d.
The densities come from ``numpyro.infer.util.compute_log_probs``: the prior is the sum over latent
(unobserved) sample sites, the joint over every sample site.

``log_joint(latents)`` is the batched log p(x, z) at constrained latents (discrete ones included), the
importance weights' numerator: one program, vectorized over a batch of draws, with the data arrays
and array-valued parameters (learned theta) as its arguments, compiled once per shape in a process
(``ppl_suite.backends.programs``) and fed fixed-size batches (the last one padded), so every cell of
a model reuses it. The unconstrained methods are written for one u of shape (d,), differentiable in
JAX; batch them with ``jax.vmap``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to
from numpyro.handlers import seed, trace
from numpyro.infer.util import compute_log_probs

from ppl_suite import registry
from ppl_suite.backends.jax_program_cache import fixed_values, traced_from
from ppl_suite.backends.programs import compiled
from ppl_suite.guides.base import unconstrained_shape
from ppl_suite.guides.joint import blocks
from ppl_suite.numerics import enable_float64
from ppl_suite.problem import Problem
from ppl_suite.spec import Latents, Site
from ppl_suite.targets import PosteriorReference
from ppl_suite.targets.of_problem import OfProblem

# Batch of draws per call of the compiled log joint: a power of two (few distinct programs), at
# most BATCH_ELEMENTS draws x (data + latent scalars), so a (batch, data) intermediate stays within
# 128 MB of float64, and at least MIN_BATCH draws, so per-call overhead stays small.
BATCH_ELEMENTS = 2**24
MIN_BATCH = 64


def numpyro_reason(problem: Problem) -> str | None:
    """Why the model's densities cannot be taken from NumPyro, or None when they can."""
    if registry.implementation(problem.spec.name, "numpyro") is None:
        return f"model {problem.spec.name!r} has no numpyro implementation to take the density from"
    return None


def discrete_reason(sites: tuple[Site, ...]) -> str | None:
    """Why discrete sites leave no unconstrained space, or None when every site is continuous."""
    discrete = [s.name for s in sites if s.support == "integer"]
    if discrete:
        return f"discrete latent sites {discrete} have no unconstrained (differentiable) space"
    return None


def split_arrays(values: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(NumPy arrays as JAX arrays: a program's arguments, every other value: fixed in the program)."""
    arrays = {k: jnp.asarray(v) for k, v in values.items() if isinstance(v, np.ndarray)}
    return arrays, {k: v for k, v in values.items() if k not in arrays}


def _split_log_probs(model, data, params, z) -> tuple[jax.Array, jax.Array]:
    """(log p(z), log p(x, z)) at constrained z, from one trace of the NumPyro model."""
    log_probs, model_trace = compute_log_probs(model, (data, params), {}, z)
    latent = sum(
        (lp for name, lp in log_probs.items() if not model_trace[name]["is_observed"]), jnp.zeros(())
    )
    return latent, sum(log_probs.values(), jnp.zeros(()))


def _padded_chunks(z: dict[str, np.ndarray], n: int, batch: int):
    """(start, chunk) over n draws in chunks of exactly ``batch`` draws, the last one padded with
    copies of its first draw (one compiled shape for every n)."""
    for start in range(0, n, batch):
        chunk = {k: v[start : start + batch] for k, v in z.items()}
        pad = batch - min(batch, n - start)
        yield (
            start,
            {k: np.concatenate([v, np.repeat(v[:1], pad, axis=0)]) if pad else v for k, v in chunk.items()},
        )


def _shapes(values: dict[str, Any]) -> tuple:
    return tuple((k, v.shape, v.dtype.str) for k, v in sorted(values.items()))


@dataclass(frozen=True)
class NumPyroTarget(OfProblem):
    """log p(x, z) and its unconstrained forms for one problem, from its NumPyro model."""

    problem: Problem
    reference: PosteriorReference | None = None

    def __post_init__(self) -> None:
        reason = numpyro_reason(self.problem)
        if reason is not None:
            raise ValueError(f"cannot build a NumPyro target: {reason}")
        enable_float64()
        _ = self._args  # JAX constants made now, outside any trace, so no tracer is ever cached

    def continuous_reason(self) -> str | None:
        return discrete_reason(self.sites)

    @cached_property
    def _layout(self) -> list[tuple[Site, tuple[int, ...], int, int, Any]]:
        reason = self.continuous_reason()
        if reason is not None:
            raise ValueError(f"{self.name!r} has no unconstrained space: {reason}")
        return [
            (site, unconstrained_shape(site), start, stop, biject_to(getattr(constraints, site.support)))
            for site, start, stop in blocks(self.sites)
        ]

    @property
    def layout(self) -> tuple[tuple[Site, tuple[int, ...], int, int], ...]:
        """(site, unconstrained shape, start, stop) of each site's block u[start:stop]."""
        return tuple(entry[:4] for entry in self._layout)

    @property
    def dim(self) -> int:
        """d, the number of unconstrained coordinates."""
        return self._layout[-1][3] if self._layout else 0

    @cached_property
    def _traced_from(self) -> str | None:
        """What its log-joint programs are traced from (``jax_program_cache``), found once."""
        return traced_from(self.problem, None)

    @cached_property
    def _model(self) -> Callable[..., Any]:
        return registry.implementation(self.name, "numpyro")

    @cached_property
    def _args(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(data, params) with NumPy arrays as JAX arrays, for the unconstrained methods."""
        data_arrays, data_fixed = split_arrays(self.problem.data)
        param_arrays, param_fixed = split_arrays(self.problem.params)
        return {**data_fixed, **data_arrays}, {**param_fixed, **param_arrays}

    # Batched log joint at constrained latents -----------------------------------------------------

    def _batch(self, n: int) -> int:
        size = sum(int(np.size(v)) for v in self.problem.data.values()) + sum(s.size for s in self.sites)
        largest = max(MIN_BATCH, 2 ** int(np.log2(max(BATCH_ELEMENTS // max(size, 1), 1))))
        return min(largest, max(MIN_BATCH, 1 << max(n - 1, 0).bit_length()))

    def log_joint(self, latents: Latents) -> np.ndarray:
        """log p(x, z) for a batch of constrained latents (each site (n, *shape)), shape (n,)."""
        missing = [s.name for s in self.sites if s.name not in latents]
        if missing:
            raise ValueError(f"latents lack sites {missing} of model {self.name!r}")
        z = {s.name: np.asarray(latents[s.name]) for s in self.sites}
        z = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in z.items()}
        n = next(iter(z.values())).shape[0] if z else 0
        for site in self.sites:
            if z[site.name].shape != (n, *site.shape):
                raise ValueError(
                    f"site {site.name!r}: expected shape ({n}, *{site.shape}), got {z[site.name].shape}"
                )
        batch = self._batch(n)
        data_arrays, data_fixed = split_arrays(self.problem.data)
        param_arrays, param_fixed = split_arrays(self.problem.params)
        model = self._model

        def build():
            def log_joints(z, data_arrays, param_arrays):
                data, params = {**data_fixed, **data_arrays}, {**param_fixed, **param_arrays}
                return jax.vmap(lambda one: _split_log_probs(model, data, params, one)[1])(z)

            return log_joints

        chunks = list(_padded_chunks(z, n, batch))
        key = (
            "numpyro_target.log_joint",
            self.name,
            fixed_values(data_fixed),
            fixed_values(param_fixed),
            _shapes(data_arrays),
            _shapes(param_arrays),
            _shapes(chunks[0][1]) if chunks else (),
        )
        out = np.empty(n)
        if not chunks:
            return out
        program, _ = compiled(key, build, chunks[0][1], data_arrays, param_arrays, source=self._traced_from)
        for start, chunk in chunks:
            m = min(batch, n - start)
            out[start : start + m] = np.asarray(program(chunk, data_arrays, param_arrays))[:m]
        return out

    # Unconstrained space (JAX, one u of shape (d,)) -----------------------------------------------

    def _check(self, u: Any) -> jax.Array:
        u = jnp.asarray(u)
        if u.shape != (self.dim,):
            raise ValueError(
                f"an unconstrained point of {self.name!r} has shape ({self.dim},), got {u.shape}; "
                "batch with jax.vmap"
            )
        return u

    def constrain_one(self, u: Any) -> tuple[dict[str, jax.Array], jax.Array]:
        """z = T(u) per site and log |det dT/du| at one u of shape (d,)."""
        u = self._check(u)
        z, log_jac = {}, jnp.zeros(())
        for site, shape, start, stop, transform in self._layout:
            chunk = u[start:stop].reshape(shape)
            value = transform(chunk)
            z[site.name] = value
            log_jac = log_jac + jnp.sum(transform.log_abs_det_jacobian(chunk, value))
        return z, log_jac

    def log_joint_u(self, u: Any) -> jax.Array:
        """log p(x, u) = log p(x, T(u)) + log |det dT/du| at one u (d,)."""
        z, log_jac = self.constrain_one(u)
        return _split_log_probs(self._model, *self._args, z)[1] + log_jac

    def prior_and_likelihood(self, u: Any) -> tuple[jax.Array, jax.Array]:
        """(log p(u), log p(x | T(u))) from one trace of the model."""
        z, log_jac = self.constrain_one(u)
        prior, joint = _split_log_probs(self._model, *self._args, z)
        return prior + log_jac, joint - prior

    def sample_prior(self, key: jax.Array, n: int) -> jax.Array:
        """n draws u ~ p(u): the model run forward with its own prior, latents mapped by T^-1; (n, d)."""
        data, params = self._args
        layout = self._layout

        def one(k):
            tr = trace(seed(self._model, k)).get_trace(data, params)
            parts = [
                transform.inv(tr[site.name]["value"]).reshape(stop - start)
                for site, _, start, stop, transform in layout
            ]
            return jnp.concatenate(parts) if parts else jnp.zeros((0,))

        return jax.vmap(one)(jax.random.split(key, n))

    # Batched conversions, NumPy in and out --------------------------------------------------------

    def constrain(self, u: Any) -> Latents:
        """Latents (constrained, one leading batch axis) for u of shape (n, d)."""
        u = jnp.asarray(u)
        if u.ndim != 2 or u.shape[1] != self.dim:
            raise ValueError(f"expected unconstrained points of shape (n, {self.dim}), got {u.shape}")
        z, _ = jax.vmap(self.constrain_one)(u)
        return {k: np.asarray(v) for k, v in z.items()}

    def unconstrain(self, latents: Latents) -> np.ndarray:
        """u = T^-1(z) of shape (n, d) for a batch of constrained latents."""
        missing = [s.name for s in self.sites if s.name not in latents]
        if missing:
            names = [s.name for s in self.sites]
            raise ValueError(f"latents lack sites {missing}; {self.name!r} has {names}")
        n = np.shape(latents[self.sites[0].name])[0] if self.sites else 0
        parts = []
        for site, _, start, stop, transform in self._layout:
            value = jnp.asarray(latents[site.name], dtype=jnp.float64)
            if value.shape != (n, *site.shape):
                raise ValueError(
                    f"site {site.name!r}: expected shape ({n}, *{site.shape}), got {value.shape}"
                )
            parts.append(np.asarray(transform.inv(value)).reshape(n, stop - start))
        return np.concatenate(parts, axis=1) if parts else np.zeros((n, 0))
