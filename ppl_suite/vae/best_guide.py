"""q*: the best diagonal Gaussian for each image's posterior, fitted per image, vectorized over images.

    q*_i = argmax_{mu, sigma} ELBO_i(mu, sigma),
    ELBO_i(mu, sigma) = E_{eps ~ N(0, I)} [log p(z) + log p_theta(x_i | z) - log N(z; mu, sigma^2)],
    z = mu + sigma eps

Cremer, Li and Duvenaud (2018), "Inference suboptimality in variational autoencoders", ICML: the
ELBO of q* separates the approximation gap (the family) from the amortization gap (the encoder).

Fit: Adam (Kingma and Ba 2015) on (mu, log sigma), initialized at the encoder's output, on the
reparametrized ELBO with common random numbers (S antithetic draws eps, -eps per image, fixed through
the fit: a deterministic objective, so its change measures convergence and not noise), with the step
size decaying as lr / (1 + t / DECAY_STEPS). Adam is elementwise, so the sum of the images' objectives
fits each image independently. Convergence, per image: the objective changed over the last ``window``
steps by less than its own Monte Carlo SE (sd over draws / sqrt(S)); the fit stops when every image has
converged, or at ``max_steps`` (the images not converged are counted). ELBO[q*] is then estimated with
fresh draws (``image_iwae.elbo_estimates``), so that it is not biased up by the fit's own draws.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.example_libraries import optimizers

from ppl_suite.vae.latent import LatentModel, Params, log_normal_diag

DECAY_STEPS = 1000


@dataclass(frozen=True)
class FitSettings:
    """Adam's step size, the common random draws per image (even: antithetic pairs), the convergence
    window and the most steps."""

    lr: float = 0.01
    draws: int = 256
    window: int = 100
    max_steps: int = 5000

    def problems(self) -> list[str]:
        found = []
        if not self.lr > 0:
            found.append(f"vae.qstar: lr must be > 0, got {self.lr}")
        if not (isinstance(self.draws, int) and self.draws >= 2 and self.draws % 2 == 0):
            found.append(
                f"vae.qstar: draws must be an even integer >= 2 (antithetic pairs), got {self.draws}"
            )
        for name in ("window", "max_steps"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                found.append(f"vae.qstar: {name} must be an integer >= 1, got {value}")
        return found


@dataclass(frozen=True)
class BestGuide:
    """Per image (n, d): q*'s loc and scale; per image (n,): converged, and the steps taken overall."""

    loc: np.ndarray
    scale: np.ndarray
    converged: np.ndarray
    steps: int
    seconds: float


class GuideFitter:
    """The compiled fit of a ``LatentModel`` (one compilation per image count, draws and window)."""

    def __init__(self, model: LatentModel, settings: FitSettings) -> None:
        self.model, self.settings = model, settings
        init, update, get_params = optimizers.adam(
            optimizers.inverse_time_decay(settings.lr, DECAY_STEPS, 1.0)
        )
        self._init = init

        def objective(params, theta, x, eps):
            """Per image: the common-random-number ELBO, and its SE."""
            loc, log_scale = params
            scale = jnp.exp(log_scale)
            z = loc[:, None, :] + scale[:, None, :] * eps
            log_w = model.log_joint(theta, z, x[:, None, :]) - log_normal_diag(
                z, loc[:, None, :], scale[:, None, :]
            )
            return jnp.mean(log_w, axis=1), jnp.std(log_w, axis=1, ddof=1) / jnp.sqrt(eps.shape[1])

        def loss(params, theta, x, eps):
            return -jnp.sum(objective(params, theta, x, eps)[0])

        grad = jax.grad(loss)

        def window(state, step0, theta, x, eps):
            def body(state, i):
                return update(step0 + i, grad(get_params(state), theta, x, eps), state), None

            state, _ = jax.lax.scan(body, state, jnp.arange(settings.window))
            return state, *objective(get_params(state), theta, x, eps)

        self._window = jax.jit(window)
        self._objective = jax.jit(objective)
        self._get_params = get_params

    def fit(
        self, theta: Params, x: np.ndarray, loc: np.ndarray, scale: np.ndarray, key: jax.Array
    ) -> BestGuide:
        """q* of every image (module docstring), started at (loc, scale)."""
        start = time.perf_counter()
        half = jax.random.normal(key, (x.shape[0], self.settings.draws // 2, self.model.dim))
        eps = jnp.concatenate([half, -half], axis=1)
        x = jnp.asarray(x)
        state = self._init((jnp.asarray(loc), jnp.log(jnp.asarray(scale))))
        previous, _ = self._objective(self._get_params(state), theta, x, eps)
        converged = np.zeros(x.shape[0], dtype=bool)
        steps = 0
        while steps < self.settings.max_steps:
            state, value, se = self._window(state, steps, theta, x, eps)
            steps += self.settings.window
            converged = np.asarray(jnp.abs(value - previous) <= se)
            previous = value
            if converged.all():
                break
        loc_star, log_scale_star = self._get_params(state)
        return BestGuide(
            np.asarray(loc_star),
            np.exp(np.asarray(log_scale_star)),
            converged,
            steps,
            time.perf_counter() - start,
        )
