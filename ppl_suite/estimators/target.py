"""The posterior as a target density on unconstrained latents, for samplers and optimizers.

A model's continuous latents z live on supports (reals, positives, (0, 1), simplices); the bijection
z = T(u) of each site's support (``numpyro.distributions.transforms.biject_to``) maps a flat vector
u in R^d onto them. On that space

    log p(x, u) = log p(x, T(u)) + log |det dT/du|(u)
    log p(u)    = log p(T(u))    + log |det dT/du|(u)
    log p(x | u) = log p(x, u) - log p(u)          (the Jacobian cancels)

and int exp(log p(x, u)) du = p(x), so AIS, BDMC and the Laplace approximation can work on R^d.
The densities come from the model's NumPyro implementation (``numpyro.infer.util.compute_log_probs``):
the prior is the sum over latent (unobserved) sample sites, the joint over every sample site.

Functions are written for one u of shape (d,), differentiable in JAX; batch them with ``jax.vmap``.
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
from ppl_suite.guides.base import unconstrained_shape
from ppl_suite.numerics import enable_float64
from ppl_suite.problem import Problem
from ppl_suite.spec import Latents, Site


def _as_jax(values: Any) -> dict[str, Any]:
    return {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in values.items()}


def numpyro_reason(problem: Problem) -> str | None:
    """Why the model's densities cannot be taken from NumPyro, or None when they can."""
    if registry.implementation(problem.spec.name, "numpyro") is None:
        return f"model {problem.spec.name!r} has no numpyro implementation to take the density from"
    return None


def continuous_reason(problem: Problem) -> str | None:
    """Why a target on R^d cannot be built for this problem, or None when it can."""
    discrete = [s.name for s in problem.sites if s.support == "integer"]
    if discrete:
        return f"discrete latent sites {discrete} have no unconstrained (differentiable) space"
    return numpyro_reason(problem)


def _split_log_probs(model, data, params, z) -> tuple[jax.Array, jax.Array]:
    """(log p(z), log p(x, z)) at constrained z, from one trace of the NumPyro model."""
    log_probs, model_trace = compute_log_probs(model, (data, params), {}, z)
    latent = sum(
        (lp for name, lp in log_probs.items() if not model_trace[name]["is_observed"]), jnp.zeros(())
    )
    return latent, sum(log_probs.values(), jnp.zeros(()))


LOG_DENSITY_BATCH = 1024


def constrained_log_densities(problem: Problem, latents: Latents) -> tuple[np.ndarray, np.ndarray]:
    """(log p(z), log p(x, z)), each (n,), at constrained latents (any support, discrete included)."""
    reason = numpyro_reason(problem)
    if reason is not None:
        raise ValueError(reason)
    enable_float64()
    missing = [s.name for s in problem.sites if s.name not in latents]
    if missing:
        raise ValueError(f"latents lack sites {missing} of model {problem.spec.name!r}")
    model = registry.implementation(problem.spec.name, "numpyro")
    data, params = _as_jax(problem.data), _as_jax(problem.params)
    n = np.shape(latents[problem.sites[0].name])[0]
    one = jax.vmap(lambda zz: _split_log_probs(model, data, params, zz))
    prior, joint = np.empty(n), np.empty(n)
    for start in range(0, n, LOG_DENSITY_BATCH):  # batches bound the memory of (batch, data) arrays
        z = {s.name: jnp.asarray(latents[s.name][start : start + LOG_DENSITY_BATCH]) for s in problem.sites}
        lp, lj = one(z)
        prior[start : start + LOG_DENSITY_BATCH], joint[start : start + LOG_DENSITY_BATCH] = lp, lj
    return prior, joint


@dataclass(frozen=True)
class Target:
    """log p(x, u), log p(u) and the bijection u -> z for one problem (see the module docstring)."""

    problem: Problem

    def __post_init__(self) -> None:
        reason = continuous_reason(self.problem)
        if reason is not None:
            raise ValueError(f"cannot build an unconstrained target for {self.problem.spec.name!r}: {reason}")
        enable_float64()
        _ = self._args  # JAX constants made now, outside any trace, so no tracer is ever cached

    @cached_property
    def sites(self) -> tuple[Site, ...]:
        return self.problem.sites

    @cached_property
    def _layout(self) -> list[tuple[Site, tuple[int, ...], int, int, Any]]:
        out, offset = [], 0
        for site in self.sites:
            shape = unconstrained_shape(site)
            size = int(np.prod(shape, dtype=int))
            out.append((site, shape, offset, offset + size, biject_to(getattr(constraints, site.support))))
            offset += size
        return out

    @property
    def layout(self) -> tuple[tuple[Site, tuple[int, ...], int, int], ...]:
        """(site, unconstrained shape, start, stop) of each site's block u[start:stop]."""
        return tuple(entry[:4] for entry in self._layout)

    @property
    def dim(self) -> int:
        """d, the number of unconstrained coordinates."""
        return self._layout[-1][3] if self._layout else 0

    @cached_property
    def _model(self) -> Callable[..., Any]:
        return registry.implementation(self.problem.spec.name, "numpyro")

    @cached_property
    def _args(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return _as_jax(self.problem.data), _as_jax(self.problem.params)

    def _check(self, u: Any) -> jax.Array:
        u = jnp.asarray(u)
        if u.shape != (self.dim,):
            raise ValueError(
                f"an unconstrained point of {self.problem.spec.name!r} has shape ({self.dim},), "
                f"got {u.shape}; batch with jax.vmap or the *_batch methods"
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

    def _site_log_probs(self, z: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
        """(log p(x, z), log p(z)) at constrained z."""
        latent, joint = _split_log_probs(self._model, *self._args, z)
        return joint, latent

    def log_joint(self, u: Any) -> jax.Array:
        """log p(x, u) = log p(x, T(u)) + log |det dT/du| at one u (d,)."""
        z, log_jac = self.constrain_one(u)
        return self._site_log_probs(z)[0] + log_jac

    def log_prior(self, u: Any) -> jax.Array:
        """log p(u) = log p(T(u)) + log |det dT/du| at one u (d,)."""
        z, log_jac = self.constrain_one(u)
        return self._site_log_probs(z)[1] + log_jac

    def log_likelihood(self, u: Any) -> jax.Array:
        """log p(x | T(u)), Jacobian-free."""
        z, _ = self.constrain_one(u)
        joint, prior = self._site_log_probs(z)
        return joint - prior

    def prior_and_likelihood(self, u: Any) -> tuple[jax.Array, jax.Array]:
        """(log p(u), log p(x | T(u))) from one trace of the model."""
        z, log_jac = self.constrain_one(u)
        joint, prior = self._site_log_probs(z)
        return prior + log_jac, joint - prior

    # Batched conveniences, NumPy in and out.

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
            raise ValueError(f"latents lack sites {missing}; {self.problem.spec.name!r} has {self.names}")
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

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sites]

    def log_joint_batch(self, u: Any) -> np.ndarray:
        """log p(x, u) for u of shape (n, d) (vmapped, not compiled: cheap for one-off batches)."""
        return np.asarray(jax.vmap(self.log_joint)(jnp.asarray(u)))

    def log_prior_batch(self, u: Any) -> np.ndarray:
        """log p(u) for u of shape (n, d)."""
        return np.asarray(jax.vmap(self.log_prior)(jnp.asarray(u)))

    def sample_prior(self, key: jax.Array, n: int) -> jax.Array:
        """n draws u ~ p(u): the model run forward with its own prior, latents mapped by T^-1; (n, d)."""
        data, params = self._args

        def one(k):
            tr = trace(seed(self._model, k)).get_trace(data, params)
            parts = [
                transform.inv(tr[site.name]["value"]).reshape(stop - start)
                for site, _, start, stop, transform in self._layout
            ]
            return jnp.concatenate(parts) if parts else jnp.zeros((0,))

        return jax.vmap(one)(jax.random.split(key, n))
