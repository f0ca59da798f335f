"""Robust linear regression: a Student-t likelihood, fitted to simulated data with outliers.

    beta ~ Normal(0, prior_scale^2 I_d)
    sigma ~ HalfNormal(scale_prior_scale)
    y_i | beta, sigma ~ StudentT(nu, x_i . beta, sigma),  i = 1..n      (nu fixed)

The degrees of freedom are fixed (nu = 4 by default, the value Lange, Little and Taylor 1989, "Robust
statistical modeling using the t distribution", JASA 84(408), found to work across their examples):
with nu latent, its posterior is wide and barely identified by a hundred points, and it trades off
against sigma; a fixed nu keeps the heavy tails where they come from, the likelihood.

Data (simulated): ``X`` (n, d) with standard Normal entries, true weights drawn from the prior,
Normal noise of sd ``noise_scale``; the first round(outlier_fraction n) points are outliers, moved by
outlier_shift noise_scale up or down (a fair coin each). Order carries no meaning in the model, so
the outliers' place only lets a test find them. Latent sites ``beta`` (real, shape (d,)) and
``sigma`` (positive).

No closed form. Outliers pull a Gaussian likelihood's fit; under the t likelihood each point's
influence is bounded, and the posterior has heavier than Gaussian tails, most visibly in sigma.
"""

from __future__ import annotations

import numpy as np

from ppl_suite.guides.autoguides import autoguide_names
from ppl_suite.lazy_module import lazy_module
from ppl_suite.spec import Data, DistSpec, Domain, Latents, ModelSpec, Params, Site

stats = lazy_module("scipy.stats")  # imported when first used: naming a model loads no SciPy


def outlier_count(params: Params) -> int:
    """round(outlier_fraction n): how many of the first points are outliers."""
    return round(float(params["outlier_fraction"]) * int(params["n"]))


def sites(params: Params) -> tuple[Site, ...]:
    d = int(params["d"])
    beta_prior = DistSpec(
        "Normal", {"loc": np.zeros(d), "scale": np.full(d, float(params["prior_scale"]))}, event_dims=1
    )
    sigma_prior = DistSpec("HalfNormal", {"scale": np.asarray(float(params["scale_prior_scale"]))})
    return Site("beta", shape=(d,), prior=beta_prior), Site("sigma", support="positive", prior=sigma_prior)


def generate_data(rng: np.random.Generator, params: Params) -> dict[str, np.ndarray]:
    n, d, noise = int(params["n"]), int(params["d"]), float(params["noise_scale"])
    X = rng.standard_normal((n, d))
    beta = rng.normal(0.0, params["prior_scale"], size=d)
    residual = rng.normal(0.0, noise, size=n)
    m = outlier_count(params)
    residual[:m] += rng.choice([-1.0, 1.0], size=m) * float(params["outlier_shift"]) * noise
    return {"X": X, "y": X @ beta + residual}


def log_joint(latents: Latents, data: Data, params: Params) -> np.ndarray:
    beta, sigma = np.asarray(latents["beta"], float), np.asarray(latents["sigma"], float)
    X, y = np.asarray(data["X"], float), np.asarray(data["y"], float)
    log_prior = stats.norm.logpdf(beta, 0.0, params["prior_scale"]).sum(axis=1)
    log_prior += stats.halfnorm.logpdf(sigma, scale=params["scale_prior_scale"])
    log_lik = stats.t.logpdf(y, params["nu"], beta @ X.T, sigma[:, None]).sum(axis=1)
    return log_prior + log_lik


def problem_size(params: Params) -> int:
    """X (n, d), y (n,), beta (d,) and sigma."""
    n, d = int(params["n"]), int(params["d"])
    return n * (d + 1) + d + 1


SPEC = ModelSpec(
    name="robust_regression",
    description="Student-t linear regression on simulated data with outliers; no closed form.",
    defaults={
        "n": 100,
        "d": 5,
        "nu": 4.0,
        "prior_scale": 2.5,
        "scale_prior_scale": 2.5,
        "noise_scale": 1.0,
        "outlier_fraction": 0.1,
        "outlier_shift": 10.0,
    },
    domains={
        "n": Domain.integer(low=1),
        "d": Domain.integer(low=1),
        "nu": Domain.positive(),
        "prior_scale": Domain.positive(),
        "scale_prior_scale": Domain.positive(),
        "noise_scale": Domain.positive(),
        "outlier_fraction": Domain.real(0.0, 1.0),
        "outlier_shift": Domain.real(low=0.0),
    },
    problem_size=problem_size,
    sites=sites,
    generate_data=generate_data,
    log_joint=log_joint,
    guides=("mean_field", "full_rank", *autoguide_names()),
    module=__package__,
)
