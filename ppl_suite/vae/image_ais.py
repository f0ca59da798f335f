"""log p_theta(x) of every image by annealed importance sampling, vectorized over images x chains.

For each image x_i, C chains anneal from the prior to the posterior (``ppl_suite.estimators.ais``):

    f_t(z) = p(z) p_theta(x_i | z)^beta_t
    log w_ic = sum_t (beta_t - beta_{t-1}) log p_theta(x_i | z_{ic,t-1})
    log p_theta(x_i) ~= log (1/C) sum_c w_ic,   SE_i = sd_c(w_ic) / (sqrt(C) mean_c(w_ic))   (delta method)

Neal (2001), "Annealed importance sampling"; the suite's annealing numerics (``ppl_suite.annealing``)
supply the HMC transition (``hmc_step``), the AIS step (``weigh_then_move``) and the chunked pass
(``run_pass``); the suite's AIS (``estimators.ais``) the per-chain SE and its reliability rule
(``ChainWeights``: chain ESS at least max(20, 0.4 C), calibrated in that module's docstring), and the
schedule itself: its adaptive-tempering pilot (``Annealer.tune``) runs on a few pilot images and the
longest schedule among them is frozen and used for every image (a frozen schedule keeps each
image's weights exactly unbiased for p_theta(x_i)). An image it suits less shows a chain ESS below the
reliability threshold: such images are run again, from scratch with fresh random numbers, on the
schedule lengthened as the suite's check runs lengthen it (T *= max(log(C / ESS) / log(1 / rho),
MIN_GROWTH), at most MAX_CHECKS times, up to ``temperatures``). The rerun's weights are independent
of the run that chose its length, so they stay unbiased; an image still below the threshold at the
end keeps its label. Reverse runs from exact posterior draws (BDMC) use the same compiled program.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ppl_suite.annealing import Schedule, hmc_step, run_pass, weigh_then_move
from ppl_suite.estimators.ais import MAX_CHECKS, MIN_GROWTH, AISConfig, Annealer, ChainWeights, Tuning
from ppl_suite.vae.latent import LatentModel, Params, log_prior


@dataclass(frozen=True)
class PerImage:
    """Per-image log-mean-exp estimates (n,) with their delta-method SEs, chain ESS and reliability."""

    value: np.ndarray
    se: np.ndarray
    ess: np.ndarray
    unreliable: np.ndarray  # bool: the SE of that image is not valid (``ChainWeights.unreliable_reason``)

    @classmethod
    def of(cls, log_w: np.ndarray) -> PerImage:
        """From log weights (n images, C chains)."""
        rows = [ChainWeights(row, float("nan")) for row in np.asarray(log_w)]
        value_se = np.array([row.log_mean_exp_se() for row in rows])
        return cls(
            value_se[:, 0],
            value_se[:, 1],
            np.array([row.ess for row in rows]),
            np.array([bool(row.unreliable_reason()) for row in rows]),
        )


def mean_over_images(value: np.ndarray, se: np.ndarray) -> tuple[float, float, float]:
    """(mean_i value_i, its Monte Carlo SE sqrt(sum_i SE_i^2) / n, the between-image SE sd_i / sqrt(n)).

    The Monte Carlo SE is the error of the estimate for these very images (the estimates of different
    images are independent); the between-image SE adds the spread of the images themselves, the error
    as an estimate of the expectation over the test distribution."""
    n = value.size
    spread = float(np.std(value, ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return float(np.mean(value)), float(np.sqrt(np.sum(se**2)) / n), spread


class _ImageTarget:
    """One image's posterior as the ``Target`` the suite's AIS pilot reads (dim, prior_and_likelihood,
    sample_prior)."""

    def __init__(self, model: LatentModel, theta: Params, x: jax.Array) -> None:
        self.model, self.theta, self.x, self.dim = model, theta, x, model.dim

    def prior_and_likelihood(self, u: Any) -> tuple[Any, Any]:
        return log_prior(u), self.model.log_likelihood(self.theta, u, self.x)

    def sample_prior(self, key: jax.Array, n: int) -> jax.Array:
        return jax.random.normal(key, (n, self.dim))


def tune_schedule(
    model: LatentModel, theta: Params, pilot_images: np.ndarray, config: AISConfig, key: jax.Array
) -> Tuning:
    """The suite's AIS pilot on each pilot image; the tuning with the most temperatures."""
    tunings = []
    for x, key_image in zip(pilot_images, jax.random.split(key, len(pilot_images)), strict=True):
        annealer = Annealer(_ImageTarget(model, theta, jnp.asarray(x)), config)
        tunings.append(annealer.tune(key_image))
    return max(tunings, key=lambda tuning: tuning.schedule.temperatures)


def stretched(schedule: Schedule, temperatures: int) -> Schedule:
    """``schedule`` re-gridded to ``temperatures`` steps (equal steps of its own index, which the pilot
    placed at equal steps of thermodynamic length), step sizes and scales interpolated alike."""
    old = np.linspace(0.0, 1.0, schedule.temperatures + 1)
    new = np.linspace(0.0, 1.0, temperatures + 1)
    scales = np.stack([np.interp(new, old, column) for column in schedule.scales.T], axis=1)
    betas = np.interp(new, old, schedule.betas)
    betas[0], betas[-1] = schedule.betas[0], schedule.betas[-1]
    return Schedule(betas, np.interp(new, old, schedule.step_sizes), scales)


class ImageAnnealer:
    """The compiled AIS pass of a ``LatentModel``, vmapped over images x chains; one compilation serves
    every decoder weights, image set and schedule length (chunks of CHUNK temperatures)."""

    def __init__(self, model: LatentModel, leapfrog_steps: int) -> None:
        self.model = model

        def chain_step(theta, x, key, u, beta, step_size, scale):
            def prior_and_likelihood(v):
                return log_prior(v), model.log_likelihood(theta, v, x)

            return hmc_step(prior_and_likelihood, leapfrog_steps)(key, u, beta, step_size, scale)

        over_chains = jax.vmap(chain_step, in_axes=(None, None, 0, 0, None, None, None))
        over_images = jax.vmap(over_chains, in_axes=(None, 0, 0, 0, None, None, None))

        def anneal(theta, x, u, log_lik, log_w, beta_from, beta_to, step_sizes, scales, keys, move):
            n, chains = u.shape[:2]

            def move_all(key, u, beta, step_size, scale):
                keys = jax.random.split(key, n * chains).reshape(n, chains, -1)
                return over_images(theta, x, keys, u, beta, step_size, scale)

            def body(carry, step):
                u, log_lik, log_w, acceptance = weigh_then_move(move_all, *carry, *step)
                return (u, log_lik, log_w), acceptance

            steps = (beta_from, beta_to, step_sizes, scales, keys, move)
            (u, log_lik, log_w), acceptance = jax.lax.scan(body, (u, log_lik, log_w), steps)
            return u, log_lik, log_w, acceptance

        likelihood = jax.vmap(jax.vmap(model.log_likelihood, in_axes=(None, 0, None)), in_axes=(None, 0, 0))
        self._log_likelihoods = jax.jit(likelihood)
        self._anneal = jax.jit(anneal)

    def run(
        self, theta: Params, x: Any, schedule: Schedule, u0: Any, key: jax.Array
    ) -> tuple[np.ndarray, float]:
        """One pass of the frozen ``schedule`` (forward, or ``reversed()`` from exact posterior draws)
        for images x (n, D) from states u0 (n, C, d): (log weights (n, C), mean acceptance)."""
        x, u = jnp.asarray(x), jnp.asarray(u0)

        def anneal(state, *chunk):
            u, log_lik, log_w, accepted = self._anneal(theta, x, *state, *chunk)
            return (u, log_lik, log_w), accepted

        state = (u, self._log_likelihoods(theta, u, x), jnp.zeros(u.shape[:2]))
        (_, _, log_w), acceptance = run_pass(anneal, state, schedule, key)
        return np.asarray(log_w), acceptance


@dataclass(frozen=True)
class ImageEvidence:
    """AIS log p_theta(x_i) per image, with the schedule used (before lengthening), each image's
    final schedule length, and the cost."""

    estimates: PerImage
    schedule: Schedule
    temperatures: np.ndarray  # per image: the length of the run its estimate comes from
    seconds: float  # the main runs (the pilot's time is ``tuning_seconds``)
    tuning_seconds: float


MIN_RERUN = 64  # reruns go in batches of at least this many images (or all), padded: few compiled shapes


def _padded(rows: np.ndarray, most: int) -> np.ndarray:
    """``rows`` padded with copies of its last row to the next power of two, at least MIN_RERUN and at
    most ``most`` rows: the images' count takes few values, so the runs compile few times."""
    size = min(most, max(MIN_RERUN, 1 << max(0, math.ceil(math.log2(len(rows))))))
    return np.concatenate([rows, np.repeat(rows[-1:], size - len(rows), axis=0)])


def forward_with_reruns(
    annealer: ImageAnnealer,
    theta: Params,
    x: np.ndarray,
    schedule: Schedule,
    config: AISConfig,
    key: jax.Array,
) -> tuple[PerImage, np.ndarray, float]:
    """Forward AIS of every image on ``schedule``, then the images below the reliability threshold run
    again on longer schedules (module docstring): (estimates, temperatures per image, seconds)."""
    start = time.perf_counter()
    key, key_first = jax.random.split(key)
    estimates, _, _ = forward_per_image(annealer, theta, x, schedule, config.chains, key_first)
    temperatures = np.full(x.shape[0], schedule.temperatures)
    log_target = -math.log(config.target_ess_fraction)
    count = schedule.temperatures
    for _ in range(MAX_CHECKS):
        again = np.flatnonzero(estimates.unreliable)
        if again.size == 0 or count >= config.temperatures:
            break
        worst = max(float(estimates.ess[again].min()), 1.0)
        count = int(
            min(
                config.temperatures,
                math.ceil(count * max(math.log(config.chains / worst) / log_target, MIN_GROWTH)),
            )
        )
        key, key_again = jax.random.split(key)
        rerun, _, _ = forward_per_image(
            annealer,
            theta,
            _padded(x[again], x.shape[0]),
            stretched(schedule, count),
            config.chains,
            key_again,
        )
        fields = {}
        for name in ("value", "se", "ess", "unreliable"):
            merged = getattr(estimates, name).copy()
            merged[again] = getattr(rerun, name)[: again.size]
            fields[name] = merged
        estimates = replace(estimates, **fields)
        temperatures[again] = count
    return estimates, temperatures, time.perf_counter() - start


def forward_per_image(
    annealer: ImageAnnealer, theta: Params, x: np.ndarray, schedule: Schedule, chains: int, key: jax.Array
) -> tuple[PerImage, float, float]:
    """Forward AIS from the prior for every image: (estimates, mean acceptance, seconds)."""
    start = time.perf_counter()
    key_prior, key_run = jax.random.split(key)
    u0 = jax.random.normal(key_prior, (x.shape[0], chains, annealer.model.dim))
    log_w, acceptance = annealer.run(theta, x, schedule, u0, key_run)
    return PerImage.of(log_w), acceptance, time.perf_counter() - start


def ais_per_image(
    annealer: ImageAnnealer,
    theta: Params,
    x: np.ndarray,
    config: AISConfig,
    key: jax.Array,
    pilot_images: int = 2,
    schedule: Schedule | None = None,
) -> ImageEvidence:
    """log p_theta(x_i) for every row of x by AIS with ``config.chains`` chains each; the schedule is
    tuned on the first ``pilot_images`` images (module docstring) unless one is given."""
    config.check("vae ais")
    key_tune, key_run = jax.random.split(key)
    start = time.perf_counter()
    if schedule is None:
        pilot = np.asarray(x)[: max(1, pilot_images)]
        schedule = tune_schedule(annealer.model, theta, pilot, config, key_tune).schedule
    tuning_seconds = time.perf_counter() - start
    estimates, temperatures, seconds = forward_with_reruns(
        annealer, theta, np.asarray(x), schedule, config, key_run
    )
    return ImageEvidence(estimates, schedule, temperatures, seconds, tuning_seconds)
