"""Annealed importance sampling (AIS) of log p(x) on the unconstrained space.

Geometric path from the prior to the posterior, 0 = beta_0 < beta_1 < ... < beta_T = 1:

    f_t(u) = p(u) p(x | u)^beta_t                      (f_0 = prior, f_T = p(x, u))
    u_0 ~ p(u);  u_t ~ K_t(u_{t-1}, .), K_t leaves f_t / Z_t invariant
    log w = sum_{t=1..T} (beta_t - beta_{t-1}) log p(x | u_{t-1});   E[w] = Z_T / Z_0 = p(x)
    log p(x) ~= log((1/C) sum_c w_c)   over C independent chains

Neal (2001), "Annealed importance sampling", Statistics and Computing 11.

Transitions: Hamiltonian Monte Carlo with ``leapfrog_steps`` leapfrog steps and a diagonal mass
matrix (``leapfrog_steps=1`` is MALA, the Metropolis-adjusted Langevin algorithm), Metropolis-corrected.
Step size and per-coordinate scale at each temperature come from a pilot run of ``pilot_chains``
chains (step size adapted by Robbins-Monro towards ``target_accept``, scale = spread of the pilot
chains), then frozen: the kernels of the main run depend on no state of its own chains, so its
weights are exactly unbiased for p(x). Temperatures: geometric (equal ratios, the default) or the
sigmoid schedule of Grosse et al. (2015).

Standard error over chains by the delta method: SE[log w_bar] ~= sd(w) / (sqrt(C) w_bar).
The whole run is one ``jax.lax.scan`` over temperatures, vmapped over chains, compiled with ``jax.jit``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from ppl_suite.estimate import Estimate
from ppl_suite.estimators import need_positive_int
from ppl_suite.estimators.target import Target, continuous_reason
from ppl_suite.estimators.weights import effective_sample_size, log_mean_exp_se
from ppl_suite.fitted_guide import FittedGuide
from ppl_suite.problem import Problem
from ppl_suite.spec import ExactPosterior

WARMUP = 20  # pilot transitions at beta = 0 before the schedule starts, to settle the step size
ADAPT_RATE = 1.0  # log step size += rate * (acceptance - target_accept), per temperature


def sigmoid_schedule(temperatures: int, delta: float = 4.0) -> np.ndarray:
    """beta_0..beta_T: sigmoid(delta (2t/T - 1)) rescaled to run exactly from 0 to 1."""
    need_positive_int("sigmoid_schedule", "temperatures", temperatures)
    s = 1.0 / (1.0 + np.exp(-delta * (2.0 * np.arange(temperatures + 1) / temperatures - 1.0)))
    return (s - s[0]) / (s[-1] - s[0])


def geometric_schedule(temperatures: int, smallest: float = 1e-6) -> np.ndarray:
    """beta_0 = 0, then beta_1..beta_T evenly spaced in log from ``smallest`` to 1.

    Equal ratios beta_t / beta_{t-1} suit likelihoods that dominate the prior (near-Gaussian): the
    variance of log w is then about sum_t (log(beta_t / beta_{t-1}))^2 d / 2 = d log(1/smallest)^2 / (2T).
    """
    need_positive_int("geometric_schedule", "temperatures", temperatures)
    if not 0.0 < smallest < 1.0:
        raise ValueError(f"geometric_schedule: smallest must lie in (0, 1), got {smallest}")
    if temperatures == 1:
        return np.array([0.0, 1.0])
    return np.concatenate([[0.0], np.geomspace(smallest, 1.0, temperatures)])


SCHEDULES = {"geometric": geometric_schedule, "sigmoid": sigmoid_schedule}


@dataclass(frozen=True)
class Schedule:
    """Inverse temperatures (T+1,), and the step size (T+1,) and scale (T+1, d) used at each."""

    betas: np.ndarray
    step_sizes: np.ndarray
    scales: np.ndarray

    def reversed(self) -> Schedule:
        return Schedule(self.betas[::-1].copy(), self.step_sizes[::-1].copy(), self.scales[::-1].copy())


def hmc_kernel(target: Target, leapfrog_steps: int):
    """One Metropolis-corrected HMC transition of a single chain, leaving p(u) p(x | u)^beta invariant.

    Returns step(key, u, beta, step_size, scale) -> (u', acceptance probability, log p(x | u)),
    the last evaluated at the incoming u (what the AIS weight increment needs).
    """

    def log_f(u, beta):
        log_prior, log_lik = target.prior_and_likelihood(u)
        return log_prior + beta * log_lik, log_lik

    value_and_grad = jax.value_and_grad(log_f, has_aux=True)

    def step(key, u, beta, step_size, scale):
        key_p, key_a = jax.random.split(key)
        (f0, log_lik0), g0 = value_and_grad(u, beta)
        p0 = jax.random.normal(key_p, u.shape)

        def leapfrog(carry, _):
            v, p, g, _ = carry
            p = p + 0.5 * step_size * scale * g
            v = v + step_size * scale * p
            (f, _), g = value_and_grad(v, beta)
            p = p + 0.5 * step_size * scale * g
            return (v, p, g, f), None

        (u1, p1, _, f1), _ = jax.lax.scan(leapfrog, (u, p0, g0, f0), None, length=leapfrog_steps)
        log_ratio = (f1 - 0.5 * jnp.sum(p1**2)) - (f0 - 0.5 * jnp.sum(p0**2))
        log_ratio = jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)
        accept = jnp.log(jax.random.uniform(key_a)) < log_ratio
        return jnp.where(accept, u1, u), jnp.exp(jnp.minimum(log_ratio, 0.0)), log_lik0

    return step


def make_runner(target: Target, leapfrog_steps: int, target_accept: float):
    """One jitted function for the pilot and the main runs (so it compiles once per shape):

    run(betas (T+1,), step_sizes (T+1,), scales (T+1, d), u_0 (C, d), key, adapt) ->
        (log w (C,), u_T (C, d), acceptance (T,), step sizes used (T+1,), scales used (T+1, d)).

    With ``adapt`` false the given step sizes and scales are used as they are (a valid AIS run). With
    ``adapt`` true (a pilot) they are ignored: the scale at each temperature is the spread of the
    chains and the log step size moves by ADAPT_RATE * (mean acceptance - target_accept). Both start
    with WARMUP transitions at beta_0, where the chains already follow f_0 (no weight accrues).
    """
    step = jax.vmap(hmc_kernel(target, leapfrog_steps), in_axes=(0, 0, None, None, None))

    def run(betas, step_sizes, scales, u0, key, adapt):
        chains = u0.shape[0]

        def body(carry, x):
            u, log_w, log_eps = carry
            beta_prev, beta, fixed_eps, fixed_scale, k = x
            scale = jnp.where(adapt, jnp.maximum(jnp.std(u, axis=0), 1e-12), fixed_scale)
            eps = jnp.where(adapt, jnp.exp(log_eps), fixed_eps)
            u, acceptance, log_lik = step(jax.random.split(k, chains), u, beta, eps, scale)
            acceptance = jnp.mean(acceptance)
            log_eps = log_eps + ADAPT_RATE * (acceptance - target_accept)
            return (u, log_w + (beta - beta_prev) * log_lik, log_eps), (acceptance, eps, scale)

        path = jnp.concatenate([jnp.full(WARMUP, betas[0]), betas])
        eps_path = jnp.concatenate([jnp.full(WARMUP, step_sizes[0]), step_sizes])
        scale_path = jnp.concatenate([jnp.broadcast_to(scales[0], (WARMUP, scales.shape[1])), scales])
        keys = jax.random.split(key, path.shape[0] - 1)
        xs = (path[:-1], path[1:], eps_path[1:], scale_path[1:], keys)
        (u, log_w, _), (acceptance, eps, scale) = jax.lax.scan(
            body, (u0, jnp.zeros(chains), jnp.zeros(())), xs
        )
        # Transition WARMUP - 1 + t targets beta_t (t = 0 is the last warm-up one).
        return log_w, u, acceptance[WARMUP:], eps[WARMUP - 1 :], scale[WARMUP - 1 :]

    return jax.jit(run)


@dataclass(frozen=True)
class AISConfig:
    """Settings shared by AIS and BDMC."""

    temperatures: int = 1000
    chains: int = 64
    leapfrog_steps: int = 5
    pilot_chains: int | None = None  # None: as many as ``chains`` (one compilation serves both)
    target_accept: float = 0.65
    schedule: str = "geometric"

    def check(self, name: str) -> None:
        need_positive_int(name, "temperatures", self.temperatures)
        need_positive_int(name, "chains (the SE is taken over chains)", self.chains, minimum=2)
        need_positive_int(name, "leapfrog_steps", self.leapfrog_steps)
        if self.pilot_chains is not None:
            need_positive_int(name, "pilot_chains (their spread sets the scales)", self.pilot_chains, 2)
        if self.schedule not in SCHEDULES:
            raise ValueError(f"{name}: unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        if not 0.0 < self.target_accept < 1.0:
            raise ValueError(f"{name}: target_accept must lie in (0, 1), got {self.target_accept}")


class AISRun:
    """A target with its compiled runner, reusable for the pilot, forward and reverse passes."""

    def __init__(self, target: Target, config: AISConfig):
        self.target, self.config = target, config
        self.runner = make_runner(target, config.leapfrog_steps, config.target_accept)

    def _call(self, schedule: Schedule, u0: Any, key: jax.Array, adapt: bool):
        out = self.runner(
            jnp.asarray(schedule.betas),
            jnp.asarray(schedule.step_sizes),
            jnp.asarray(schedule.scales),
            jnp.asarray(u0),
            key,
            jnp.asarray(adapt),
        )
        return [np.asarray(x) for x in out]

    def schedule(self, key: jax.Array) -> Schedule:
        """Temperatures (``config.schedule``), step sizes and scales tuned by a pilot from the prior."""
        betas = SCHEDULES[self.config.schedule](self.config.temperatures)
        d = self.target.dim
        chains = self.config.pilot_chains or self.config.chains
        u0 = self.target.sample_prior(key, chains)
        pilot = Schedule(betas, np.ones(betas.size), np.ones((betas.size, d)))
        _, _, _, eps, scales = self._call(pilot, u0, jax.random.fold_in(key, 1), adapt=True)
        return Schedule(betas, eps, scales)

    def run(self, schedule: Schedule, u0: Any, key: jax.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(log w (C,), final states (C, d), mean acceptance per transition) of one frozen-schedule run."""
        log_w, u, acceptance, _, _ = self._call(schedule, u0, key, adapt=False)
        return log_w, u, acceptance


def ais_log_evidence(problem: Problem, config: AISConfig | None = None, seed: int = 0) -> Estimate:
    """Forward AIS from the prior: log-mean-exp of the chains' log weights, delta-method SE."""
    config = config or AISConfig()
    config.check("ais")
    start = time.perf_counter()
    run = AISRun(Target(problem), config)
    key_pilot, key_init, key_run = jax.random.split(jax.random.PRNGKey(seed), 3)
    schedule = run.schedule(key_pilot)
    log_w, _, acceptance = run.run(schedule, run.target.sample_prior(key_init, config.chains), key_run)
    value, se = log_mean_exp_se(log_w)
    transitions = config.chains * config.temperatures
    return Estimate(
        value,
        se,
        n_evals=transitions * (config.leapfrog_steps + 1),
        seconds=time.perf_counter() - start,
        extras={
            "transitions": transitions,
            "mean_log_weight": float(np.mean(log_w)),
            "ess": effective_sample_size(log_w),
            "acceptance": float(np.mean(acceptance)),
            "step_size_range": [float(schedule.step_sizes.min()), float(schedule.step_sizes.max())],
        },
    )


@dataclass(frozen=True)
class AIS(AISConfig):
    """Plug-in: forward AIS from the prior to the posterior (a stochastic lower bound on log p(x))."""

    name: ClassVar[str] = "ais"
    quantity: ClassVar[str] = "log_evidence"
    kind: ClassVar[str] = "lower_bound"
    uses_guide: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self.check(self.name)

    def applies(self, problem: Problem, exact: ExactPosterior | None, guide: str | None = None) -> str | None:
        return continuous_reason(problem)

    def estimate(
        self, problem: Problem, guide: FittedGuide | None, exact: ExactPosterior | None, seed: int = 0
    ) -> Estimate:
        return ais_log_evidence(problem, self, seed)


ESTIMATORS = (AIS(),)
