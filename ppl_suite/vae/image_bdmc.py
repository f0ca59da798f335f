"""Bidirectional Monte Carlo on images simulated from the decoder: how far is AIS from log p_theta(x)?

    z_i ~ p(z),  x_i ~ p_theta(x | z_i)            => z_i is an exact draw of p_theta(z | x_i)
    forward AIS from p(z):           E[log mean_c w_ic]           <= log p_theta(x_i)   (lower bound)
    reverse AIS from z_i, beta 1->0: E[-log mean_c w^rev_ic]      >= log p_theta(x_i)   (upper bound)

Grosse, Ghahramani and Adams (2015), "Sandwiching the marginal likelihood using bidirectional Monte
Carlo"; Wu, Burda, Salakhutdinov and Grosse (2017), "On the quantitative analysis of decoder-based
generative models", ICLR (BDMC on data simulated from a trained decoder, to validate AIS on real data).
The gap upper - lower bounds the error of either bound on these images, for the schedule used: run
at several schedule lengths (the pilot's schedule re-gridded), it shows how the error falls with T.
All C reverse chains of image i start at its one exact draw z_i, as in Wu et al.: the bound holds in
expectation over z_i, not given it (a z_i in the posterior's tail gives an "upper" bound below
log p(x_i)), and the chains' weights are not independent, so the per-image reverse SE (over chains)
misses the spread due to z_i. The averages over images therefore take, for the upper bound and the
gap, the between-image SE sd_i / sqrt(n), which contains it (each image's (z_i, x_i) is an independent
draw); the lower bound's average takes the Monte Carlo SE sqrt(sum SE_i^2) / n (``mean_over_images``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ppl_suite.annealing import Schedule
from ppl_suite.vae.image_ais import ImageAnnealer, PerImage, forward_per_image, mean_over_images, stretched
from ppl_suite.vae.latent import Params


@dataclass(frozen=True)
class Sandwich:
    """Per image (n,): lower and upper bounds with SEs, at one schedule length."""

    temperatures: int
    lower: PerImage
    upper: PerImage  # value = -log mean w_rev; se = its delta-method SE; ess of the reverse weights
    seconds: float

    def summary(self) -> dict[str, float]:
        """Averages over images: lower, upper, gap, each with its SE (module docstring), unreliable counts."""
        lower, lower_se, _ = mean_over_images(self.lower.value, self.lower.se)
        upper, _, upper_se = mean_over_images(self.upper.value, self.upper.se)
        gap, _, gap_se = mean_over_images(
            self.upper.value - self.lower.value, np.hypot(self.upper.se, self.lower.se)
        )
        return {
            "temperatures": self.temperatures,
            "lower": lower,
            "lower_se": lower_se,
            "upper": upper,
            "upper_se": upper_se,
            "gap": gap,
            "gap_se": gap_se,
            "unreliable_lower": int(self.lower.unreliable.sum()),
            "unreliable_upper": int(self.upper.unreliable.sum()),
            "seconds": self.seconds,
        }


def simulate(annealer: ImageAnnealer, theta: Params, n: int, key: jax.Array) -> tuple[np.ndarray, np.ndarray]:
    """(z (n, d) ~ p(z), x (n, D) ~ p_theta(x | z)): z_i is an exact posterior draw given x_i."""
    key_z, key_x = jax.random.split(key)
    z = jax.random.normal(key_z, (n, annealer.model.dim))
    return np.asarray(z), np.asarray(annealer.model.simulate(theta, key_x, z))


def sandwich(
    annealer: ImageAnnealer,
    theta: Params,
    x: np.ndarray,
    z: np.ndarray,
    schedule: Schedule,
    chains: int,
    key: jax.Array,
) -> Sandwich:
    """Forward and reverse AIS on images x with exact posterior draws z, on ``schedule``."""
    start = time.perf_counter()
    key_forward, key_reverse = jax.random.split(key)
    lower, _, _ = forward_per_image(annealer, theta, x, schedule, chains, key_forward)
    u0 = jnp.broadcast_to(jnp.asarray(z)[:, None, :], (z.shape[0], chains, z.shape[1]))
    log_w_reverse, _ = annealer.run(theta, x, schedule.reversed(), u0, key_reverse)
    inverse = PerImage.of(log_w_reverse)
    upper = PerImage(-inverse.value, inverse.se, inverse.ess, inverse.unreliable)
    return Sandwich(schedule.temperatures, lower, upper, time.perf_counter() - start)


def sandwiches(
    annealer: ImageAnnealer,
    theta: Params,
    schedule: Schedule,
    lengths: tuple[int, ...],
    n: int,
    chains: int,
    key: jax.Array,
) -> list[Sandwich]:
    """BDMC on n images simulated from the decoder, at each schedule length in ``lengths``."""
    key_simulate, key = jax.random.split(key)
    z, x = simulate(annealer, theta, n, key_simulate)
    return [
        sandwich(annealer, theta, x, z, stretched(schedule, length), chains, key_length)
        for length, key_length in zip(lengths, jax.random.split(key, len(lengths)), strict=True)
    ]
