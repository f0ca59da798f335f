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

Each batch shape's evaluation (values, or values and gradients) is recorded once and replayed as a
graph of torch operations (``torch_compiled``: 3.6-10.9x faster per callback than running Pyro's
tracing and torch's backward pass in Python on every call, batches 1-256, less on a loaded machine,
``benchmarks/bench_torch_density.py``), falling back to the eager evaluation where a recording cannot
be made or checked (a latent's value read into Python, random draws, disagreement at other points,
any error); ``TorchDensity.path`` says which.

Torch code shares global state (Pyro's handler stack and parameter store), so one callback runs at a
time in the process, for every target (``PYRO_STATE_LOCK``, which ``PyroTarget`` also takes around its
own traces of the model).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch

from ppl_suite.targets.torch_compiled import COMPILED, NOT_YET, Batched, CompiledBatched

# A torch function of U (n, d) -> (log p(u_i), log p(x | u_i)), each (n,)
TorchParts = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
PriorAndLikelihood = Callable[[Any], tuple[Any, Any]]
LogJoint = Callable[[Any], Any]

# One torch evaluation of a Pyro model at a time in the process: Pyro's handler stack and parameter
# store are global, and JAX runs host callbacks from its own threads (re-entrant: a held evaluation
# may trace the model again)
PYRO_STATE_LOCK = threading.RLock()


def _gradient(value: torch.Tensor, u: torch.Tensor, keep: bool) -> torch.Tensor:
    """Row i: grad of value[i] at u[i] (the gradient of the sum, the rows being independent)."""
    if not value.requires_grad:  # a part that does not depend on u (a model without latents...)
        return torch.zeros_like(u)
    (found,) = torch.autograd.grad(
        value.sum(), u, retain_graph=keep, allow_unused=True, materialize_grads=True
    )
    return found


def _evaluation(
    parts: Callable[[torch.Tensor], tuple[torch.Tensor, ...]], k: int, gradients: bool
) -> Batched:
    """U (n, dim) -> the k values of ``parts`` per row, then (with ``gradients``) their k gradients
    (n, dim): a function of U alone, so ``CompiledBatched`` can record it."""

    def evaluate(flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch.enable_grad():
            u = flat.detach().requires_grad_(gradients)
            found = parts(u)
            values = tuple(part.detach() for part in found)
            if not gradients:
                return values
            return (*values, *(_gradient(part, u, keep=i < k - 1) for i, part in enumerate(found)))

    return evaluate


def _bridge(
    parts: Callable[[torch.Tensor], tuple[torch.Tensor, ...]],
    dim: int,
    k: int,
    compiled: bool,
    lock: AbstractContextManager[Any],
) -> tuple[Callable, tuple[CompiledBatched, CompiledBatched]]:
    """A JAX function of one u (dim,) returning the k scalars ``parts`` gives per row of a batch
    U (n, dim), differentiable once (module docstring), and its two torch evaluations (values; values
    and gradients), compiled per batch shape where ``compiled`` and the recording holds."""
    evaluations = tuple(CompiledBatched(_evaluation(parts, k, g), compiled, lock) for g in (False, True))

    def evaluate(u: np.ndarray, gradients: bool) -> tuple[np.ndarray, ...]:
        batch = u.shape[:-1]
        flat = torch.tensor(np.asarray(u, dtype=np.float64).reshape(-1, dim))
        found = evaluations[gradients](flat)
        return tuple(t.numpy().reshape(batch + tuple(t.shape[1:])) for t in found)

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
    return function, evaluations


@dataclass(frozen=True)
class TorchDensity:
    """The JAX functions of a batched torch density (``jax_functions``) and the torch evaluations
    behind them."""

    prior_and_likelihood: PriorAndLikelihood
    log_joint: LogJoint
    evaluations: tuple[CompiledBatched, ...]

    @property
    def path(self) -> str:
        """How torch evaluated the calls so far: COMPILED (recorded per batch shape, replayed), or
        EAGER with the reason (``torch_compiled``)."""
        paths = {e.path for e in self.evaluations} - {NOT_YET}
        failed = sorted(paths - {COMPILED})
        if failed:
            return failed[0]
        return COMPILED if paths else NOT_YET


def jax_functions(parts: TorchParts, dim: int, compiled: bool = True) -> TorchDensity:
    """``prior_and_likelihood(u)`` and ``log_joint(u)`` = log p(u) + log p(x | u) of one u (dim,) in
    JAX, from the batched torch function ``parts`` (module docstring); the second takes one gradient
    per call, not two (what NUTS needs). With ``compiled`` torch replays a recording of each batch
    shape (``torch_compiled``) instead of running ``parts``' Python on every call."""
    pair, pair_evaluations = _bridge(parts, dim, 2, compiled, PYRO_STATE_LOCK)
    joint, joint_evaluations = _bridge(lambda u: (sum(parts(u)),), dim, 1, compiled, PYRO_STATE_LOCK)
    return TorchDensity(pair, lambda u: joint(u)[0], pair_evaluations + joint_evaluations)
