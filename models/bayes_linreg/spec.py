"""Bayesian linear regression: unknown weights, known noise, Gaussian prior.

    w ~ N(0, prior_scale^2 I_d)
    y_i | w ~ N(x_i . w, noise_scale^2),  i = 1..n

Data: ``X`` (n, d) design with standard Normal entries (generated, part of the data), ``y`` (n,).
Latent site ``w`` (real, shape (d,)).

Posterior: N(m, Lambda^-1) with precision Lambda = I / prior_scale^2 + X^T X / noise_scale^2 and
m = Lambda^-1 X^T y / noise_scale^2.
Evidence: y ~ N(0, noise_scale^2 I_n + prior_scale^2 X X^T), evaluated through the posterior (d x d)
rather than the n x n covariance:
    log p(y) = -0.5 (n log 2 pi + 2 n log noise_scale + 2 d log prior_scale + log det Lambda
                     + |y - X m|^2 / noise_scale^2 + |m|^2 / prior_scale^2)
(matrix determinant lemma and Woodbury; the quadratic form y^T C^-1 y is written as the sum of two
squares, so no cancellation).
Best mean-field KL: 0.5 (sum_i log Lambda_ii - log det Lambda), reached at q_i = N(m_i, 1 / Lambda_ii).
"""

from __future__ import annotations

import numpy as np

from ppl_suite.gaussian_posterior import GaussianPosterior
from ppl_suite.guides.autoguides import autoguide_names
from ppl_suite.lazy_module import lazy_module
from ppl_suite.spec import Data, Domain, Latents, ModelSpec, Params, Site

linalg = lazy_module("scipy.linalg")  # imported when first used: naming a model loads no SciPy
stats = lazy_module("scipy.stats")


def sites(params: Params) -> tuple[Site, ...]:
    return (Site("w", shape=(int(params["d"]),)),)


def generate_data(rng: np.random.Generator, params: Params) -> dict[str, np.ndarray]:
    n, d = int(params["n"]), int(params["d"])
    w = rng.normal(0.0, params["prior_scale"], size=d)
    X = rng.standard_normal((n, d))
    y = X @ w + rng.normal(0.0, params["noise_scale"], size=n)
    return {"X": X, "y": y}


def log_joint(latents: Latents, data: Data, params: Params) -> np.ndarray:
    w = np.asarray(latents["w"], dtype=np.float64)
    X, y = np.asarray(data["X"], dtype=np.float64), np.asarray(data["y"], dtype=np.float64)
    log_prior = stats.norm.logpdf(w, 0.0, params["prior_scale"]).sum(axis=1)
    residual = y[None, :] - w @ X.T
    sigma = float(params["noise_scale"])
    n = y.size
    log_lik = -0.5 * np.einsum("bi,bi->b", residual, residual) / sigma**2 - n * (
        np.log(sigma) + 0.5 * np.log(2 * np.pi)
    )
    return log_prior + log_lik


def oracle(data: Data, params: Params) -> GaussianPosterior:
    X, y = np.asarray(data["X"], dtype=np.float64), np.asarray(data["y"], dtype=np.float64)
    (n, d), s0, sigma = X.shape, float(params["prior_scale"]), float(params["noise_scale"])
    precision = np.eye(d) / s0**2 + X.T @ X / sigma**2
    factor = linalg.cho_factor(precision, lower=True)
    loc = linalg.cho_solve(factor, X.T @ y / sigma**2)
    cov = linalg.cho_solve(factor, np.eye(d))
    cov = 0.5 * (cov + cov.T)
    log_det_precision = 2 * np.log(np.diag(factor[0])).sum()
    residual = y - X @ loc
    quad = residual @ residual / sigma**2 + loc @ loc / s0**2
    log_det = 2 * n * np.log(sigma) + 2 * d * np.log(s0) + log_det_precision
    log_evidence = -0.5 * (n * np.log(2 * np.pi) + log_det + quad)
    return GaussianPosterior("w", loc, cov, float(log_evidence))


def problem_size(params: Params) -> int:
    """X (n, d), y (n,) and w (d,)."""
    n, d = int(params["n"]), int(params["d"])
    return n * (d + 1) + d


SPEC = ModelSpec(
    name="bayes_linreg",
    description="Linear regression weights with known noise; Gaussian prior (conjugate, correlated).",
    defaults={"n": 1000, "d": 10, "prior_scale": 1.0, "noise_scale": 0.5},
    domains={
        "n": Domain.integer(low=1),
        "d": Domain.integer(low=1),
        "prior_scale": Domain.positive(),
        "noise_scale": Domain.positive(),
    },
    problem_size=problem_size,
    sites=sites,
    generate_data=generate_data,
    log_joint=log_joint,
    oracle=oracle,
    guides=("full_rank", "mean_field", *autoguide_names()),
    module=__package__,
)
