"""The numerics every annealed importance sampler of the suite shares: the HMC transition (leapfrog,
jittered step size, Metropolis correction), the frozen schedule, and one AIS pass run in compiled
chunks. Used by the suite's AIS and BDMC (``estimators.ais``, ``estimators.bdmc``) and by the VAE's
per-image AIS and BDMC (``vae.image_ais``, ``vae.image_bdmc``), which differ only in what a chain is
(one state, or images x chains) and in the pilot's step-size adaptation.

One AIS step t of a pass over 0 = beta_0 < ... < beta_T = 1 (Neal 2001, "Annealed importance
sampling", Statistics and Computing 11):

    log w += (beta_t - beta_{t-1}) log p(x | u_{t-1}),   then   u_t ~ K_t(u_{t-1}, .)

K_t is Hamiltonian Monte Carlo leaving p(u) p(x | u)^beta_t invariant (Neal 2011, "MCMC using Hamiltonian
dynamics", Handbook of MCMC): ``leapfrog_steps`` leapfrog steps in coordinates u / scale (a diagonal
mass matrix), the step size jittered uniformly by +-STEP_JITTER against periodic trajectories
(section 5.4.2), Metropolis-corrected.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

CHUNK = 32  # temperatures per compiled call of a pass
STEP_JITTER = 0.2  # step size x uniform(1 - jitter, 1 + jitter) at each transition

# (key, u, beta, step_size, scale) -> (u', log p(x | u'), acceptance probability)
Move = Callable[[jax.Array, Any, Any, Any, Any], tuple[Any, Any, Any]]


def hmc_step(prior_and_likelihood: Callable[[Any], tuple[Any, Any]], leapfrog_steps: int) -> Move:
    """One Metropolis-corrected HMC transition of a single chain, leaving p(u) p(x | u)^beta invariant,
    for any traceable u -> (log p(u), log p(x | u)).

    step(key, u, beta, step_size, scale) -> (u', log p(x | u'), acceptance probability); ``scale`` is
    the diagonal of the inverse mass matrix's square root (the leapfrog runs in coordinates u / scale).
    """

    def log_f(u, beta):
        log_prior, log_lik = prior_and_likelihood(u)
        return log_prior + beta * log_lik, log_lik

    value_and_grad = jax.value_and_grad(log_f, has_aux=True)

    def step(key, u, beta, step_size, scale):
        key_p, key_a, key_j = jax.random.split(key, 3)
        step_size = step_size * jax.random.uniform(key_j, minval=1.0 - STEP_JITTER, maxval=1.0 + STEP_JITTER)
        (f0, log_lik0), g0 = value_and_grad(u, beta)
        p0 = jax.random.normal(key_p, u.shape)

        def leapfrog(carry, _):
            v, p, g, _, _ = carry
            p = p + 0.5 * step_size * scale * g
            v = v + step_size * scale * p
            (f, log_lik), g = value_and_grad(v, beta)
            p = p + 0.5 * step_size * scale * g
            return (v, p, g, f, log_lik), None

        carry = (u, p0, g0, f0, log_lik0)
        (u1, p1, _, f1, log_lik1), _ = jax.lax.scan(leapfrog, carry, None, length=leapfrog_steps)
        log_ratio = (f1 - 0.5 * jnp.sum(p1**2)) - (f0 - 0.5 * jnp.sum(p0**2))
        log_ratio = jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)
        accept = jnp.log(jax.random.uniform(key_a)) < log_ratio
        return (
            jnp.where(accept, u1, u),
            jnp.where(accept, log_lik1, log_lik0),
            jnp.exp(jnp.minimum(log_ratio, 0.0)),
        )

    return step


def weigh_then_move(move: Move, u, log_lik, log_w, beta_from, beta_to, step_size, scale, key, moves):
    """One AIS step (module docstring), traceable, for any batch of chains: the weight increment
    (beta_to - beta_from) log p(x | u) at the incoming state, then, where ``moves``, one ``move`` at
    beta_to. Returns (u, log p(x | u), log w, mean acceptance over the chains; 0 without a move)."""
    log_w = log_w + jnp.where(beta_to == beta_from, 0.0, (beta_to - beta_from) * log_lik)
    u, log_lik, acceptance = jax.lax.cond(
        moves,
        lambda: move(key, u, beta_to, step_size, scale),
        lambda: (u, log_lik, jnp.zeros(log_lik.shape)),
    )
    return u, log_lik, log_w, jnp.mean(acceptance)


@dataclass(frozen=True)
class Schedule:
    """Inverse temperatures (T+1,), and the step size (T+1,) and scale (T+1, d) of the move at each."""

    betas: np.ndarray
    step_sizes: np.ndarray
    scales: np.ndarray

    @property
    def temperatures(self) -> int:
        return self.betas.size - 1

    def reversed(self) -> Schedule:
        return Schedule(self.betas[::-1].copy(), self.step_sizes[::-1].copy(), self.scales[::-1].copy())


def schedule_chunks(schedule: Schedule) -> list[tuple[np.ndarray, ...]]:
    """A frozen schedule as a pass's chunks of CHUNK steps, each (beta_from, beta_to, step_sizes,
    scales, move): step t weighs by (beta_to - beta_from) log p(x | u) at the incoming state, then,
    where ``move``, makes one HMC move at beta_to. The move after the last weight increment is
    skipped; the last chunk is padded with steps that neither weigh nor move."""
    temperatures = schedule.temperatures
    steps = -(-temperatures // CHUNK) * CHUNK

    def padded(x: np.ndarray, fill: np.ndarray) -> np.ndarray:
        return np.concatenate([x, np.repeat(fill[None], steps - x.shape[0], axis=0)])

    end = schedule.betas[-1]
    arrays = (
        padded(schedule.betas[:-1], end),
        padded(schedule.betas[1:], end),
        padded(schedule.step_sizes[1:], schedule.step_sizes[-1]),
        padded(schedule.scales[1:], schedule.scales[-1]),
        np.arange(steps) < temperatures - 1,
    )
    return [tuple(a[start : start + CHUNK] for a in arrays) for start in range(0, steps, CHUNK)]


def chunk_keys(key: jax.Array, schedule: Schedule) -> list[jax.Array]:
    """The key of each chunk of ``schedule_chunks``, split off ``key`` in turn."""
    keys = []
    for _ in range(-(-schedule.temperatures // CHUNK)):
        key, key_chunk = jax.random.split(key)
        keys.append(key_chunk)
    return keys


def run_pass(anneal: Callable[..., tuple[Any, Any]], state: Any, schedule: Schedule, key: jax.Array):
    """One AIS pass of the frozen ``schedule``, chunk by chunk: ``anneal(state, beta_from, beta_to,
    step_sizes, scales, keys (CHUNK,), move) -> (state, acceptance (CHUNK,))`` is the compiled chunk
    (``weigh_then_move`` in a scan). Returns (the final state, the mean acceptance over the moves made;
    NaN without any)."""
    acceptance = []
    for key_chunk, (beta_from, beta_to, step_sizes, scales, move) in zip(
        chunk_keys(key, schedule), schedule_chunks(schedule), strict=True
    ):
        keys = jax.random.split(key_chunk, CHUNK)
        state, accepted = anneal(state, beta_from, beta_to, step_sizes, scales, keys, move)
        acceptance.append(np.asarray(accepted))
    moved = np.concatenate(acceptance)[: schedule.temperatures - 1]
    return state, float(moved.mean()) if moved.size else math.nan
