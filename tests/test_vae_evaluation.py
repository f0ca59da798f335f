"""The VAE evaluation's estimators against exact answers on tiny decoders: a 1-D and a 2-D latent with
Bernoulli pixels, where log p_theta(x) is a dense-grid quadrature, and a linear-Gaussian decoder, where
the posterior and the best diagonal Gaussian are known in closed form.

Tolerances are standard errors: an estimate within 4 of its SE of the truth; z-scores over n images
with mean within 4 / sqrt(n) of 0 and sd within 4 sqrt(1 / (2 n)) of 1 (the sampling bands of a mean
and an sd of n standard-normal draws).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from ppl_suite.estimators.ais import AISConfig
from ppl_suite.vae.best_guide import FitSettings, GuideFitter
from ppl_suite.vae.gaps import decompose
from ppl_suite.vae.image_ais import ImageAnnealer, ais_per_image, mean_over_images
from ppl_suite.vae.image_bdmc import sandwich, simulate
from ppl_suite.vae.image_iwae import ImageWeights, elbo_estimates, proposal_estimates
from ppl_suite.vae.latent import LatentModel, log_prior
from ppl_suite.vae.training_split import split

PIXELS, HIDDEN, IMAGES = 16, 4, 40
CONFIG = AISConfig(temperatures=2000, chains=64, leapfrog_steps=3)


def logits(theta, z):
    return jnp.tanh(z @ theta["dec_w1"] + theta["dec_b1"]) @ theta["dec_w2"] + theta["dec_b2"]


def bernoulli_log_likelihood(theta, z, x):
    value = logits(theta, z)
    return jnp.sum(x * value - jnp.logaddexp(0.0, value), axis=-1)


def bernoulli_simulate(theta, key, z):
    return (jax.random.uniform(key, (*z.shape[:-1], PIXELS)) < jax.nn.sigmoid(logits(theta, z))).astype(float)


def tiny_decoder(dim: int) -> dict[str, jax.Array]:
    """A decoder in the digits VAE's form (dec_w1 (d, H), dec_b1, dec_w2 (H, D), dec_b2), strong enough
    that the posterior is far narrower than the prior."""
    rng = np.random.default_rng(dim)
    theta = {
        "dec_w1": 3.0 * rng.normal(size=(dim, HIDDEN)),
        "dec_b1": rng.normal(size=HIDDEN),
        "dec_w2": 3.0 * rng.normal(size=(HIDDEN, PIXELS)),
        "dec_b2": rng.normal(size=PIXELS),
    }
    return {k: jnp.asarray(v) for k, v in theta.items()}


def quadrature(theta, dim: int, x: np.ndarray) -> np.ndarray:
    """log p_theta(x_i) = log int p(z) p(x_i | z) dz on a dense grid over [-9, 9]^d (the prior's mass
    outside is below 1e-18; the integrand is smooth on the grid's scale)."""
    axis = np.linspace(-9.0, 9.0, 1201 if dim == 1 else 301)
    grid = jnp.asarray(axis[:, None] if dim == 1 else np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2))
    log_joint = jax.vmap(lambda xi: log_prior(grid) + bernoulli_log_likelihood(theta, grid, xi))(
        jnp.asarray(x)
    )
    return logsumexp(np.asarray(log_joint), axis=1) + dim * np.log(axis[1] - axis[0])


class Tiny:
    """A tiny Bernoulli decoder with simulated images, their exact posterior draws and exact log p."""

    def __init__(self, dim: int) -> None:
        self.model = LatentModel(dim, bernoulli_log_likelihood, bernoulli_simulate)
        self.theta = tiny_decoder(dim)
        self.annealer = ImageAnnealer(self.model, CONFIG.leapfrog_steps)
        z, x = simulate(self.annealer, self.theta, IMAGES, jax.random.PRNGKey(10 + dim))
        self.z, self.x = z, x
        self.truth = quadrature(self.theta, dim, x)
        self.evidence = ais_per_image(
            self.annealer, self.theta, x, CONFIG, jax.random.PRNGKey(dim), pilot_images=1
        )


@pytest.fixture(scope="module", params=[1, pytest.param(2, marks=pytest.mark.slow)], ids=["1d", "2d"])
def tiny(request) -> Tiny:
    return Tiny(request.param)


def test_ais_per_image_is_within_its_standard_error_of_quadrature(tiny):
    """Every image whose SE the estimator calls valid (after its reruns, at most a tenth are not)."""
    estimates = tiny.evidence.estimates
    assert estimates.unreliable.sum() <= IMAGES // 10
    assert np.all(tiny.evidence.temperatures >= tiny.evidence.schedule.temperatures)
    reliable = ~estimates.unreliable
    z = ((estimates.value - tiny.truth) / estimates.se)[reliable]
    assert np.all(np.abs(z) < 4.0), z
    assert abs(z.mean()) < 4.0 / np.sqrt(z.size)
    assert abs(z.std(ddof=1) - 1.0) < 4.0 * np.sqrt(1.0 / (2 * z.size))


def test_mean_over_images_takes_the_root_sum_of_squares_of_the_ses():
    value, se = np.array([1.0, 2.0, 4.0]), np.array([0.3, 0.4, 1.2])
    mean, mc_se, spread = mean_over_images(value, se)
    assert mean == pytest.approx(7.0 / 3.0)
    assert mc_se == pytest.approx(np.sqrt(0.09 + 0.16 + 1.44) / 3.0)
    assert spread == pytest.approx(np.std(value, ddof=1) / np.sqrt(3.0))


def test_iwae_lies_below_quadrature_and_approaches_it_as_k_grows(tiny):
    """A wide proposal N(0, 1.5^2) for every image: the ELBO (K = 1) < IWAE-100 < IWAE-50 000 ~ log p,
    each a stochastic lower bound, and IWAE stays below the AIS estimate within noise."""
    weights = ImageWeights(tiny.model)
    loc, scale = np.zeros((IMAGES, tiny.model.dim)), np.full((IMAGES, tiny.model.dim), 1.5)
    ais, ais_se, _ = mean_over_images(tiny.evidence.estimates.value, tiny.evidence.estimates.se)
    gaps, ses = [], []
    for k in (100, 50_000):
        estimates = proposal_estimates(weights, tiny.theta, tiny.x, loc, scale, k, jax.random.PRNGKey(k))
        if not gaps:  # K = 1: the ELBO, from the same draws
            gap, gap_se, _ = mean_over_images(tiny.truth - estimates.elbo, estimates.elbo_se)
            gaps.append(gap), ses.append(gap_se)
        gap, gap_se, _ = mean_over_images(tiny.truth - estimates.iwae, estimates.iwae_se)
        gaps.append(gap), ses.append(gap_se)
        iwae, iwae_se, _ = mean_over_images(estimates.iwae, estimates.iwae_se)
        assert iwae < ais + 4.0 * np.hypot(iwae_se, ais_se)
    assert all(gap > -4.0 * se for gap, se in zip(gaps, ses, strict=True))  # below log p within noise
    assert gaps[0] - gaps[1] > 4.0 * np.hypot(ses[0], ses[1])  # K = 100 beats K = 1 beyond noise
    assert gaps[1] - gaps[2] > -4.0 * np.hypot(ses[1], ses[2])  # and K = 50 000 is no worse
    assert abs(gaps[2]) < 4.0 * ses[2]  # reaching log p within noise


def test_bdmc_sandwiches_the_quadrature_with_exact_posterior_starts(tiny):
    result = sandwich(
        tiny.annealer,
        tiny.theta,
        tiny.x,
        tiny.z,
        tiny.evidence.schedule,
        CONFIG.chains,
        jax.random.PRNGKey(5),
    )
    """The lower bound holds per image; the upper bound in expectation over the exact draw z_i, so on
    average over images, with the between-image SE (``image_bdmc`` docstring)."""
    assert np.all(result.lower.value < tiny.truth + 4.0 * result.lower.se)
    summary = result.summary()
    assert summary["gap"] > -4.0 * summary["gap_se"]
    assert summary["lower"] < tiny.truth.mean() + 4.0 * summary["lower_se"]
    assert summary["upper"] > tiny.truth.mean() - 4.0 * summary["upper_se"]
    excess, _, excess_se = mean_over_images(result.upper.value - tiny.truth, result.upper.se)
    assert excess > -4.0 * excess_se


# ---------------------------------------------------------------- linear-Gaussian decoder: q* exactly
NOISE = 0.5


def gaussian_log_likelihood(theta, z, x):
    mean = z @ theta["w"] + theta["b"]
    return jnp.sum(-0.5 * ((x - mean) / NOISE) ** 2 - jnp.log(NOISE) - 0.5 * jnp.log(2 * jnp.pi), axis=-1)


def gaussian_simulate(theta, key, z):
    mean = z @ theta["w"] + theta["b"]
    return mean + NOISE * jax.random.normal(key, mean.shape)


def test_best_guide_is_the_closed_form_best_diagonal_gaussian_and_gaps_add_up():
    """Posterior N(m, Lambda^-1), Lambda = I + W W^T / s^2, m = Lambda^-1 W (x - b) / s^2; the best
    diagonal Gaussian under KL(q || p) has mean m and variances 1 / diag(Lambda). The fit's tolerance
    comes from its S common draws: mean exact for antithetic draws and a quadratic log density up to
    the optimizer's convergence, scales within 4 sqrt(2 / S) relative (the empirical second moments of
    S draws, sd sqrt(2 / S), set the fitted scale)."""
    rng = np.random.default_rng(0)
    dim, pixels, n = 2, 5, 30
    theta = {"w": jnp.asarray(rng.normal(size=(dim, pixels))), "b": jnp.asarray(rng.normal(size=pixels))}
    model = LatentModel(dim, gaussian_log_likelihood, gaussian_simulate)
    x = np.asarray(
        gaussian_simulate(theta, jax.random.PRNGKey(0), jax.random.normal(jax.random.PRNGKey(1), (n, dim)))
    )
    w, b = np.asarray(theta["w"]), np.asarray(theta["b"])
    precision = np.eye(dim) + w @ w.T / NOISE**2
    mean = np.linalg.solve(precision, w @ (x - b).T / NOISE**2).T
    best_scale = 1.0 / np.sqrt(np.diag(precision))
    settings = FitSettings(lr=0.05, draws=256, window=100, max_steps=5000)
    fitted = GuideFitter(model, settings).fit(
        theta, x, np.zeros((n, dim)), np.ones((n, dim)), jax.random.PRNGKey(2)
    )
    assert fitted.converged.all()
    np.testing.assert_allclose(fitted.loc, mean, atol=1e-3 * best_scale.min())
    tolerance = 4.0 * np.sqrt(2.0 / settings.draws)
    assert np.all(np.abs(fitted.scale / best_scale - 1.0) < tolerance)

    weights = ImageWeights(model)
    elbo_best, elbo_best_se = elbo_estimates(
        weights, theta, x, fitted.loc, fitted.scale, 4000, jax.random.PRNGKey(3)
    )
    encoder_loc, encoder_scale = mean + 0.3, np.full((n, dim), 0.5)
    elbo_enc, elbo_enc_se = elbo_estimates(
        weights, theta, x, encoder_loc, encoder_scale, 4000, jax.random.PRNGKey(4)
    )
    # log p(x) exactly: x ~ N(b, W^T W + s^2 I)
    covariance = w.T @ w + NOISE**2 * np.eye(pixels)
    from scipy.stats import multivariate_normal

    log_p = multivariate_normal(b, covariance).logpdf(x)
    gaps = decompose(log_p, np.zeros(n), elbo_best, elbo_best_se, elbo_enc, elbo_enc_se)
    np.testing.assert_allclose(gaps.approximation + gaps.amortization, gaps.kl, rtol=0, atol=1e-12)
    np.testing.assert_allclose(gaps.kl_se, elbo_enc_se)
    np.testing.assert_allclose(gaps.amortization_se, np.hypot(elbo_best_se, elbo_enc_se))
    # the approximation gap is KL(q* || p(z | x)), exactly known: 0.5 (sum log diag(Lambda) - log det Lambda)
    exact_gap = 0.5 * (np.sum(np.log(np.diag(precision))) - np.linalg.slogdet(precision)[1])
    gap, gap_se, _ = mean_over_images(gaps.approximation, gaps.approximation_se)
    assert abs(gap - exact_gap) < 4.0 * gap_se + 0.5 * tolerance**2  # the fit's own error is second order
    assert np.all(gaps.amortization > -4.0 * gaps.amortization_se)


def test_gaps_add_up_exactly_and_their_ses_combine_in_quadrature():
    rng = np.random.default_rng(1)
    log_p, elbo_best, elbo_enc = rng.normal(size=(3, 50))
    ses = rng.uniform(0.01, 0.1, size=(3, 50))
    gaps = decompose(log_p, ses[0], elbo_best, ses[1], elbo_enc, ses[2])
    np.testing.assert_allclose(gaps.approximation + gaps.amortization, log_p - elbo_enc, rtol=0, atol=1e-14)
    np.testing.assert_allclose(gaps.approximation_se**2, ses[0] ** 2 + ses[1] ** 2)
    np.testing.assert_allclose(gaps.amortization_se**2, ses[1] ** 2 + ses[2] ** 2)
    np.testing.assert_allclose(gaps.kl_se**2, ses[0] ** 2 + ses[2] ** 2)


def test_training_split_adds_up_to_the_elbo_gain_and_ses_add_in_quadrature():
    steps = np.array([0, 1, 10, 100])
    log_p, elbo = np.array([-60.0, -50.0, -40.0, -35.0]), np.array([-70.0, -58.0, -44.0, -37.0])
    log_p_se, elbo_se = np.array([0.1, 0.2, 0.1, 0.3]), np.array([0.05, 0.02, 0.04, 0.01])
    parts = split(steps, log_p, log_p_se, elbo, elbo_se)
    np.testing.assert_array_equal(parts.step_from, [0, 1, 10])
    np.testing.assert_allclose(parts.log_p_gain + parts.kl_fall, np.diff(elbo), rtol=0, atol=1e-12)
    np.testing.assert_allclose(parts.kl_fall, -np.diff(log_p - elbo))
    np.testing.assert_allclose(parts.log_p_gain_se**2, log_p_se[1:] ** 2 + log_p_se[:-1] ** 2)
    np.testing.assert_allclose(parts.elbo_gain_se**2, elbo_se[1:] ** 2 + elbo_se[:-1] ** 2)
    np.testing.assert_allclose(
        parts.kl_fall_se**2, log_p_se[1:] ** 2 + log_p_se[:-1] ** 2 + elbo_se[1:] ** 2 + elbo_se[:-1] ** 2
    )
    with pytest.raises(ValueError, match="must increase"):
        split(steps[::-1], log_p, log_p_se, elbo, elbo_se)
