"""Annealed importance sampling (AIS) of log p(x) on the unconstrained space, with an adaptive
schedule tuned by a pilot and a standard error that is valid or labelled unreliable.

Path from the prior to the posterior, 0 = beta_0 < beta_1 < ... < beta_T = 1:

    f_t(u) = p(u) p(x | u)^beta_t                      (f_0 = prior, f_T = p(x, u))
    u_0 ~ p(u);  for t = 1..T:  log w += (beta_t - beta_{t-1}) log p(x | u_{t-1}),  u_t ~ K_t(u_{t-1}, .)
    E[w] = Z_T / Z_0 = p(x);   log p(x) ~= log w_bar = log((1/C) sum_c w_c)   over C chains

Neal (2001), "Annealed importance sampling", Statistics and Computing 11. K_t is Hamiltonian Monte
Carlo leaving f_t / Z_t invariant: ``leapfrog_steps`` leapfrog steps (1 is MALA), a diagonal mass
matrix (in coordinates u / scale), Metropolis-corrected, the step size jittered uniformly by
+-STEP_JITTER against periodic trajectories (Neal 2011, "MCMC using Hamiltonian dynamics", Handbook
of MCMC, section 5.4.2). The step size is capped so that a trajectory lasts at most TRAJECTORY =
pi/2 in units of ``scale``: for a Gaussian of that scale, a trajectory of length t leaves the squared
radius, which is what the weight increments see, correlated cos^2(t) with its start; the
acceptance-tuned step alone often made t ~ pi (correlation ~1) and needed 3 to 6 times the
temperatures for the same weight variance (measured on normal_normal and bayes_linreg).

Schedule and kernels, tuned by a pilot on a random stream of its own and then frozen, so that the
main run's kernels depend on no state of its chains and its weights are exactly unbiased for p(x):

1. Adaptive tempering (Zhou, Johansen and Aston 2016, "Toward automatic model comparison: an
   adaptive sequential Monte Carlo approach", JCGS 25): P particles from the prior, WARMUP HMC moves at
   beta = 0; then each step picks the next beta by bisection so that the conditional ESS of the
   incremental weights exp((beta' - beta) log p(x | u)) is PILOT_CESS P, resamples, and makes
   PILOT_MOVES HMC moves at beta' (step size by Robbins-Monro towards ``target_accept``, scale = the
   weighted spread of the particles).
2. Temperature count. Step k's incremental weights have relative variance rv_k = P / ESS_k - 1 ~= ds_k^2,
   the square of the step in thermodynamic length s(beta) = int_0^beta sd_b(log p(x | u)) db. With
   exact transitions E[w^2] / E[w]^2 = prod_t (1 + rv_t), so T temperatures at equal steps of s give
   log(C / ESS) ~= Lambda^2 / T (Lambda = s(1)); for the target chain ESS fraction rho, T =
   KERNEL_INFLATION Lambda^2 / log(1 / rho), the inflation allowing for HMC's inexact transitions.
   Betas are placed at equal steps of s, step sizes and scales interpolated in s.
3. Check: an AIS run of P chains on that schedule (for BDMC also its reverse run from exact posterior
   draws). While its chain ESS is below rho P, T grows by log(P / ESS) / log(1 / rho) (the log-weight
   variance falls as 1 / T), at least by MIN_GROWTH, at most MAX_CHECKS times and up to
   ``temperatures``, the maximum.

Estimator and standard error. Given the frozen schedule the C main chains are independent and
identically distributed, so the value is log w_bar over all chains and its SE the delta method over
chains, sd(w) / (sqrt(C) w_bar): the SE of that very estimator. (Batching the same chains into R
replicates estimates the same variance with R - 1 instead of C - 1 degrees of freedom, and z then
follows a Student t with R - 1.) log w_bar is biased low by about SE^2 / 2 (Jensen's inequality), i.e.
SE / 2 in units of SE: below 0.1 SE at the SE of a reliable run. The delta method needs light-tailed
weights, which the chain ESS (Kish, (sum w)^2 / sum w^2) measures.

Reliability. With lognormal weights (log w ~ N(-V/2, V), the many-temperature limit of AIS), simulated
20 000 times, z = (log w_bar - log p(x)) / SE has sd <= 1.12 and mean >= -0.22 when the ESS is at least
MIN_ESS = 20 chains and MIN_ESS_FRACTION = 0.4 of the chains (C = 32...128, V <= 1); beyond that z's
sd grows to 1.2-1.6 and |z| > 3 becomes 3 to 15 times as frequent as for a normal (C = 8: sd 1.26 even
at V = 0.25). Below that ESS the estimate is labelled unreliable, its SE not presented as valid. The
ESS cannot see weights never drawn: a right tail of log w heavier than normal (measured: the reverse
pass with few temperatures) or a posterior mode no chain reaches looks reliable; the schedule's ESS
target keeps the first small (``AISConfig``), BDMC's sandwich can reveal the second.

Everything runs in ``jax.lax.scan`` loops vmapped over chains and compiled with ``jax.jit``; the main
run goes in chunks of CHUNK temperatures, so one compilation serves every schedule length. The HMC
transition, the AIS step and the chunked pass are ``ppl_suite.annealing``'s, shared with the VAE's
per-image AIS.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from ppl_suite.annealing import CHUNK, Move, Schedule, hmc_step, run_pass, weigh_then_move
from ppl_suite.estimate import Estimate
from ppl_suite.estimators import need_continuous, need_positive_int
from ppl_suite.estimators.cache import EvaluationCache
from ppl_suite.estimators.streams import stream_seed
from ppl_suite.estimators.weights import effective_sample_size, log_mean_exp_se
from ppl_suite.targets import GuideDensity, Target

WARMUP = 20  # pilot HMC moves at beta = 0 before tempering, to settle the step size
ADAPT_RATE = 1.0  # log step size += rate * (acceptance - target_accept), per move
PILOT_CESS = 0.9  # conditional ESS fraction of each pilot step's incremental weights
PILOT_MOVES = 3  # HMC moves per pilot step
BISECTION_STEPS = 60  # halvings of the pilot's beta increment: resolution 2^-60
MAX_CHECKS = 4  # check runs of the temperature count
MIN_GROWTH = 1.5  # least growth of T after a failed check, so that few checks are needed
KERNEL_INFLATION = 1.5  # first T / exact-transition T; measured 1.3-1.6 (normal_normal, bayes_linreg)
MIN_ESS = 20.0  # below this chain ESS, or
MIN_ESS_FRACTION = 0.4  # this fraction of the chains, the SE is not valid (module docstring)
TINY = 1e-12
TRAJECTORY = math.pi / 2  # longest trajectory, in units of the scale (module docstring)


def stream_key(seed: int, stream: str) -> jax.Array:
    """The JAX key of the random stream ``stream`` (an estimator's name) of the cell seed ``seed``."""
    return jax.random.PRNGKey(stream_seed(seed, stream))


def hmc_kernel(target: Target, leapfrog_steps: int) -> Move:
    """One Metropolis-corrected HMC transition of a single chain, leaving p(u) p(x | u)^beta invariant
    (``hmc_step`` of the target's ``prior_and_likelihood``)."""
    return hmc_step(target.prior_and_likelihood, leapfrog_steps)


@dataclass(frozen=True)
class Tuning:
    """A pilot's result: the frozen schedule, and what decided it."""

    schedule: Schedule
    thermodynamic_length: float  # Lambda = int_0^1 sd_beta(log p(x | u)) dbeta, from the pilot
    pilot_steps: int  # adaptive-tempering steps from beta = 0 to 1
    check_temperatures: tuple[int, ...]  # T of each check run
    check_ess: tuple[float, ...]  # and its chain ESS (of ``chains``; the smaller of two passes)
    chains: int  # pilot chains
    transitions: int  # HMC transitions of one chain, pilot and checks together

    def explain(self, reason: str, maximum: int) -> str:
        """``reason`` (a diagnostic, or ""), saying when the schedule was held at its maximum length."""
        if reason and self.schedule.temperatures == maximum:
            return f"{reason}; the schedule is at its maximum of {maximum} temperatures"
        return reason

    def extras(self, prefix: str = "") -> dict[str, Any]:
        return {
            f"{prefix}temperatures": self.schedule.temperatures,
            f"{prefix}thermodynamic_length": self.thermodynamic_length,
            f"{prefix}pilot_steps": self.pilot_steps,
            f"{prefix}check_temperatures": list(self.check_temperatures),
            f"{prefix}check_ess": list(self.check_ess),
        }


@dataclass(frozen=True)
class ChainWeights:
    """One AIS pass: its chains' log weights and what they say."""

    log_w: np.ndarray
    acceptance: float  # mean Metropolis acceptance probability over chains and moves

    @property
    def chains(self) -> int:
        return self.log_w.size

    @property
    def ess(self) -> float:
        """Kish's chain ESS, (sum w)^2 / sum w^2."""
        return effective_sample_size(self.log_w)

    def log_mean_exp_se(self) -> tuple[float, float]:
        """(log w_bar, delta-method SE over chains)."""
        return log_mean_exp_se(self.log_w)

    def unreliable_reason(self) -> str:
        """Why the delta-method SE is not valid (module docstring), or "" when it is."""
        needed = max(MIN_ESS, MIN_ESS_FRACTION * self.chains)
        if not self.ess >= needed:
            return (
                f"chain ESS {self.ess:.1f} of {self.chains} < {needed:.1f} "
                f"(max({MIN_ESS:g}, {MIN_ESS_FRACTION:g} x chains))"
            )
        return ""

    def extras(self, prefix: str = "") -> dict[str, Any]:
        return {
            f"{prefix}chain_ess": self.ess,
            f"{prefix}unreliable_reason": self.unreliable_reason(),
            f"{prefix}chains": self.chains,
            f"{prefix}mean_log_weight": float(np.mean(self.log_w)),
            f"{prefix}log_weight_variance": float(np.var(self.log_w, ddof=1)),
            f"{prefix}acceptance": self.acceptance,
        }


@dataclass(frozen=True)
class AISConfig:
    """Settings shared by AIS and BDMC.

    ``temperatures`` is the most the adaptive schedule may use; ``target_ess_fraction`` the chain ESS
    fraction its check runs aim at (log-weight variance about log(1 / 0.75) = 0.29: right-skewed
    log weights make the delta-method z heavy-tailed, and a lower variance makes them more normal;
    over 100 seeds of normal_normal the reverse pass had z_sd 1.16, 3 % of |z| > 3 at 0.6, and 1.03,
    none at 0.75); ``pilot_chains`` (None: as many as ``chains``) the pilot's chains.
    """

    temperatures: int = 4000
    chains: int = 64
    leapfrog_steps: int = 5
    pilot_chains: int | None = None
    target_accept: float = 0.65
    target_ess_fraction: float = 0.75

    def check(self, name: str) -> None:
        need_positive_int(name, "temperatures", self.temperatures)
        need_positive_int(name, "chains (the SE is taken over chains)", self.chains, minimum=2)
        need_positive_int(name, "leapfrog_steps", self.leapfrog_steps)
        if self.pilot_chains is not None:
            need_positive_int(name, "pilot_chains (their spread sets the scales)", self.pilot_chains, 2)
        for setting in ("target_accept", "target_ess_fraction"):
            value = getattr(self, setting)
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name}: {setting} must lie in (0, 1), got {value}")


def _systematic_resample(key: jax.Array, weights: jax.Array) -> jax.Array:
    """Indices of a systematic resample (Kitagawa 1996) of particles with weights (P,), unnormalized."""
    n = weights.shape[0]
    positions = (jax.random.uniform(key) + jnp.arange(n)) / n
    return jnp.minimum(jnp.searchsorted(jnp.cumsum(weights / jnp.sum(weights)), positions), n - 1)


def reweight(
    u: jax.Array, log_lik: jax.Array, beta: jax.Array, key: jax.Array, final: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Adaptive tempering's choice of beta' (module docstring, 1) and its resampling: (indices,
    beta', relative variance of the incremental weights, their weighted spread of u)."""
    n = u.shape[0]
    log_lik = jnp.where(jnp.isnan(log_lik), -jnp.inf, log_lik)

    def weights(delta):
        log_w = jnp.where(delta > 0, delta * log_lik, 0.0)
        return jnp.exp(log_w - jnp.max(log_w))

    def ess_fraction(delta):
        w = weights(delta)
        return jnp.sum(w) ** 2 / jnp.sum(w**2) / n

    room = 1.0 - beta

    def halve(_, bounds):
        low, high = bounds
        middle = 0.5 * (low + high)
        ok = ess_fraction(middle) >= PILOT_CESS
        return jnp.where(ok, middle, low), jnp.where(ok, high, middle)

    low, _ = jax.lax.fori_loop(0, BISECTION_STEPS, halve, (jnp.zeros(()), room))
    last = final | (ess_fraction(room) >= PILOT_CESS)
    delta = jnp.where(last, room, jnp.maximum(low, TINY * room))
    w = weights(delta)
    mean = jnp.sum(w[:, None] * u, axis=0) / jnp.sum(w)
    spread = jnp.sqrt(jnp.sum(w[:, None] * (u - mean) ** 2, axis=0) / jnp.sum(w))
    return (
        _systematic_resample(key, w),
        jnp.where(last, 1.0, beta + delta),
        n * jnp.sum(w**2) / jnp.sum(w) ** 2 - 1.0,
        jnp.maximum(spread, TINY),
    )


class Annealer:
    """A target with its compiled pilot and AIS runs (compile once, then tune and run any number of
    times; the functions of this module and ``bdmc`` build one per call).

    One compiled program, ``anneal``, makes every HMC move (pilot and main runs): CHUNK steps, each a
    weight increment at the incoming state, then, where ``move``, one HMC move at the step's beta;
    in the pilot (``adapt``) with the step size exp(log_eps), adapted after each move by Robbins-Monro
    and capped so that a trajectory is at most TRAJECTORY long in units of ``scale``."""

    def __init__(self, target: Target, config: AISConfig):
        self.target, self.config = target, config
        step = jax.vmap(hmc_kernel(target, config.leapfrog_steps), in_axes=(0, 0, None, None, None))

        def move_all(key, u, beta, step_size, scale):
            return step(jax.random.split(key, u.shape[0]), u, beta, step_size, scale)

        accept = config.target_accept
        self.log_longest_step = math.log(TRAJECTORY / config.leapfrog_steps)

        def anneal(u, log_lik, log_w, log_eps, beta_from, beta_to, step_sizes, scales, keys, move, adapt):
            def body(carry, x):
                u, log_lik, log_w, log_eps = carry
                b0, b1, eps, scale, k, m = x
                eps = jnp.where(adapt, jnp.exp(log_eps), eps)
                u, log_lik, log_w, acceptance = weigh_then_move(
                    move_all, u, log_lik, log_w, b0, b1, eps, scale, k, m
                )
                adapted = jnp.minimum(log_eps + ADAPT_RATE * (acceptance - accept), self.log_longest_step)
                return (u, log_lik, log_w, jnp.where(m, adapted, log_eps)), acceptance

            xs = (beta_from, beta_to, step_sizes, scales, keys, move)
            (u, log_lik, log_w, log_eps), acceptance = jax.lax.scan(body, (u, log_lik, log_w, log_eps), xs)
            return u, log_lik, log_w, log_eps, acceptance

        self._log_likelihoods = jax.jit(jax.vmap(lambda v: target.prior_and_likelihood(v)[1]))
        self._anneal = jax.jit(anneal)
        self._reweight = jax.jit(reweight)

    @property
    def pilot_chains(self) -> int:
        return self.config.pilot_chains or self.config.chains

    def _moves(self, u, log_lik, beta, log_eps, scale, key, count):
        """``count`` (<= CHUNK) adapted HMC moves at ``beta``: (u, log lik, log step size). Its arrays are
        strongly typed (dtype given), as the pilot's later steps and the main runs pass them: one
        compilation of ``anneal`` serves them all at one chain count (a weakly typed first call compiled it
        twice)."""
        betas = jnp.full(CHUNK, beta, dtype=float)
        scales = jnp.broadcast_to(scale, (CHUNK, self.target.dim))
        move = jnp.arange(CHUNK) < count
        u, log_lik, _, log_eps, _ = self._anneal(
            u, log_lik, jnp.zeros(u.shape[0]), log_eps, betas, betas, jnp.ones(CHUNK), scales,
            jax.random.split(key, CHUNK), move, True,
        )  # fmt: skip
        return u, log_lik, log_eps

    def _adaptive_tempering(self, key: jax.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Pilot step 1: (betas (K+1,), relative variances (K,), log step sizes (K+1,), scales (K+1, d))."""
        key_prior, key_warmup, key = jax.random.split(key, 3)
        u = self.target.sample_prior(key_prior, self.pilot_chains)
        scale = jnp.maximum(jnp.std(u, axis=0), TINY)
        log_eps = jnp.asarray(self.log_longest_step, dtype=float)
        u, log_lik, log_eps = self._moves(
            u, self._log_likelihoods(u), 0.0, log_eps, scale, key_warmup, WARMUP
        )
        beta = jnp.zeros(())
        betas, variances, log_steps, scales = [0.0], [], [float(log_eps)], [np.asarray(scale)]
        while betas[-1] < 1.0:
            key, key_resample, key_moves = jax.random.split(key, 3)
            final = jnp.asarray(
                len(betas) >= self.config.temperatures
            )  # the pilot may not exceed the maximum
            index, beta, rv, scale = self._reweight(u, log_lik, beta, key_resample, final)
            u, log_lik, log_eps = self._moves(
                u[index], log_lik[index], beta, log_eps, scale, key_moves, PILOT_MOVES
            )
            betas.append(float(beta))
            variances.append(float(rv))
            log_steps.append(float(log_eps))
            scales.append(np.asarray(scale))
        return np.array(betas), np.array(variances), np.array(log_steps), np.stack(scales)

    def tune(self, key: jax.Array, posterior: Callable[[int], np.ndarray] | None = None) -> Tuning:
        """The pilot (module docstring, steps 1-3): a frozen schedule of at most ``temperatures``.
        With ``posterior`` (n -> n exact posterior draws, unconstrained), each check also runs the
        schedule in reverse from them (BDMC's reverse pass), and both passes must reach the target."""
        key_temper, key = jax.random.split(key)
        betas, variances, log_steps, scales = self._adaptive_tempering(key_temper)
        s = np.concatenate([[0.0], np.cumsum(np.maximum(np.sqrt(np.maximum(variances, 0.0)), TINY))])
        log_target = -math.log(self.config.target_ess_fraction)
        first = KERNEL_INFLATION * s[-1] ** 2 / log_target
        count = int(min(self.config.temperatures, max(1, math.ceil(first))))

        def schedule(count: int) -> Schedule:
            grid = np.linspace(0.0, s[-1], count + 1)
            new_betas = np.interp(grid, s, betas)
            new_betas[0], new_betas[-1] = 0.0, 1.0
            log_scales = [np.interp(grid, s, np.log(scales[:, j])) for j in range(scales.shape[1])]
            return Schedule(new_betas, np.exp(np.interp(grid, s, log_steps)), np.exp(np.stack(log_scales, 1)))

        chains, passes = self.pilot_chains, 1 if posterior is None else 2
        temperatures, ess = [], []
        for _ in range(MAX_CHECKS):
            key, key_prior, key_forward, key_reverse = jax.random.split(key, 4)
            candidate = schedule(count)
            runs = [self.run(candidate, self.target.sample_prior(key_prior, chains), key_forward)]
            if posterior is not None:
                runs.append(self.run(candidate.reversed(), posterior(chains), key_reverse))
            temperatures.append(count)
            ess.append(min(run.ess for run in runs))
            if ess[-1] >= self.config.target_ess_fraction * chains or count == self.config.temperatures:
                break
            growth = max(math.log(chains / ess[-1]) / log_target, MIN_GROWTH)
            count = int(min(self.config.temperatures, math.ceil(count * growth)))
        return Tuning(
            schedule(count),
            float(s[-1]),
            pilot_steps=variances.size,
            check_temperatures=tuple(temperatures),
            check_ess=tuple(ess),
            chains=self.pilot_chains,
            transitions=WARMUP + PILOT_MOVES * variances.size + passes * sum(t - 1 for t in temperatures),
        )

    def run(self, schedule: Schedule, u0: Any, key: jax.Array) -> ChainWeights:
        """One AIS pass of the frozen ``schedule`` (forward, or reversed for BDMC) from states u0 (C, d)
        drawn from its first distribution. The move after the last weight increment is skipped; the
        last chunk is padded with steps that neither weigh nor move."""
        u = jnp.asarray(u0)
        log_eps = jnp.zeros(())

        def anneal(state, beta_from, beta_to, step_sizes, scales, keys, move):
            u, log_lik, log_w = state
            u, log_lik, log_w, _, accepted = self._anneal(
                u, log_lik, log_w, log_eps, beta_from, beta_to, step_sizes, scales, keys, move, False
            )
            return (u, log_lik, log_w), accepted

        state = (u, self._log_likelihoods(u), jnp.zeros(u.shape[0]))
        (_, _, log_w), acceptance = run_pass(anneal, state, schedule, key)
        return ChainWeights(np.asarray(log_w), acceptance)


def transitions_of(tuning: Tuning, passes: int, chains: int) -> int:
    """HMC transitions of a tuned estimate: the pilot's chains and ``passes`` runs of ``chains``."""
    return tuning.transitions * tuning.chains + passes * (tuning.schedule.temperatures - 1) * chains


def forward_ais(annealer: Annealer, seed: int, stream: str = "ais") -> Estimate:
    """Forward AIS from the prior on the ``stream`` random stream of ``seed``: log w_bar over the
    chains, delta-method SE, labelled unreliable below the chain ESS of the module docstring."""
    start = time.perf_counter()
    config = annealer.config
    key_tune, key_prior, key_run = jax.random.split(stream_key(seed, stream), 3)
    tuning = annealer.tune(key_tune)
    u0 = annealer.target.sample_prior(key_prior, config.chains)
    weights = annealer.run(tuning.schedule, u0, key_run)
    value, se = weights.log_mean_exp_se()
    reason = tuning.explain(weights.unreliable_reason(), config.temperatures)
    transitions = transitions_of(tuning, 1, config.chains)
    steps = tuning.schedule.step_sizes
    return Estimate(
        value,
        se,
        n_evals=transitions * (config.leapfrog_steps + 1),
        seconds=time.perf_counter() - start,
        extras={
            "transitions": transitions,
            **tuning.extras(),
            **weights.extras(),
            "step_size_range": [float(steps.min()), float(steps.max())],
        },
        reliability="unreliable" if reason else "reliable",
        diagnostic=reason,
    )


def ais_log_evidence(target: Target, config: AISConfig | None = None, seed: int = 0) -> Estimate:
    """Forward AIS from the prior with an adaptive schedule (module docstring)."""
    config = config or AISConfig()
    config.check("ais")
    need_continuous("ais", target)
    return forward_ais(Annealer(target, config), seed)


@dataclass(frozen=True)
class AIS(AISConfig):
    """Plug-in: forward AIS from the prior to the posterior (a stochastic lower bound on log p(x))."""

    name: ClassVar[str] = "ais"
    quantity: ClassVar[str] = "log_evidence"
    kind: ClassVar[str] = "lower_bound"
    uses_guide: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self.check(self.name)

    def applies(self, target: Target, guide: GuideDensity | None) -> str | None:
        return target.continuous_reason()

    def estimate(
        self, target: Target, guide: GuideDensity | None, seed: int, cache: EvaluationCache | None = None
    ) -> Estimate:
        return ais_log_evidence(target, self, seed)


ESTIMATORS = (AIS(),)
