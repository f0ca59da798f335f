"""A log density written in torch as a JAX function: JAX calls torch, torch differentiates.

A torch function of a batch of unconstrained points U (n, d), float64, returning

    (log p(u_i), log p(x | u_i))   each (n,)

becomes ``prior_and_likelihood(u)``, a JAX function of one u (d,) that ``jax.jit``, ``jax.vmap`` and
reverse-mode ``jax.grad`` accept: ``jax.pure_callback`` runs torch on the host, and a
``jax.custom_vjp`` supplies the gradient. Its forward pass computes both values and their gradients
(grad_u log p(u_i), grad_u log p(x | u_i)) in one torch graph (``torch.autograd.grad`` of each sum
over the batch: the points do not interact, so row i of the gradient of the sum is the gradient at
u_i); its backward pass is the cotangents times those gradients:

    vjp(c_prior, c_lik) = c_prior grad log p(u) + c_lik grad log p(x | u)

Under ``jax.vmap`` (NUTS' chains vectorized, AIS' chains) the callback receives the whole batch
(``vmap_method="broadcast_all"``), so each leapfrog step is one torch call for every chain. Forward
mode (``jax.jvp``, ``jax.hessian``) is not available: second derivatives are not computed.

``log_joint`` (NUTS' potential) is a bridge of its own, with one gradient per call.

Torch code shares global state (Pyro's handler stack and parameter store), so one callback runs at a
time (a lock).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch

# A torch function of U (n, d) -> (log p(u_i), log p(x | u_i)), each (n,)
TorchParts = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
PriorAndLikelihood = Callable[[Any], tuple[Any, Any]]
LogJoint = Callable[[Any], Any]


def _gradient(value: torch.Tensor, u: torch.Tensor, keep: bool) -> torch.Tensor:
    """Row i: grad of value[i] at u[i] (the gradient of the sum, the rows being independent)."""
    if not value.requires_grad:  # a part that does not depend on u (a model without latents...)
        return torch.zeros_like(u)
    (found,) = torch.autograd.grad(
        value.sum(), u, retain_graph=keep, allow_unused=True, materialize_grads=True
    )
    return found


def _bridge(parts: Callable[[torch.Tensor], tuple[torch.Tensor, ...]], dim: int, k: int) -> Callable:
    """A JAX function of one u (dim,) returning the k scalars ``parts`` gives per row of a batch
    U (n, dim), differentiable once (module docstring)."""
    lock = threading.Lock()

    def evaluate(u: np.ndarray, gradients: bool) -> tuple[np.ndarray, ...]:
        batch = u.shape[:-1]
        flat = torch.tensor(np.asarray(u, dtype=np.float64).reshape(-1, dim))
        with lock, torch.enable_grad():
            flat.requires_grad_(gradients)
            found = parts(flat)
            values = tuple(part.detach().numpy().reshape(batch) for part in found)
            if not gradients:
                return values
            slopes = [_gradient(part, flat, keep=i < k - 1) for i, part in enumerate(found)]
        return (*values, *(g.numpy().reshape(*batch, dim) for g in slopes))

    scalars = (jax.ShapeDtypeStruct((), jnp.float64),) * k
    points = (jax.ShapeDtypeStruct((dim,), jnp.float64),) * k

    def values_only(u: np.ndarray) -> tuple[np.ndarray, ...]:
        return evaluate(u, gradients=False)

    def values_and_gradients(u: np.ndarray) -> tuple[np.ndarray, ...]:
        return evaluate(u, gradients=True)

    @jax.custom_vjp
    def function(u):
        u = jnp.asarray(u, jnp.float64)
        return jax.pure_callback(values_only, scalars, u, vmap_method="broadcast_all")

    def forward(u):
        u = jnp.asarray(u, jnp.float64)
        found = jax.pure_callback(values_and_gradients, scalars + points, u, vmap_method="broadcast_all")
        return found[:k], found[k:]

    def backward(gradients, cotangents):
        return (sum(c * g for c, g in zip(cotangents, gradients, strict=True)),)

    function.defvjp(forward, backward)
    return function


def jax_functions(parts: TorchParts, dim: int) -> tuple[PriorAndLikelihood, LogJoint]:
    """``prior_and_likelihood(u)`` and ``log_joint(u)`` = log p(u) + log p(x | u) of one u (dim,) in
    JAX, from the batched torch function ``parts`` (module docstring); the second takes one gradient
    per call, not two (what NUTS needs)."""
    pair = _bridge(parts, dim, 2)
    joint = _bridge(lambda u: (sum(parts(u)),), dim, 1)
    return pair, lambda u: joint(u)[0]
