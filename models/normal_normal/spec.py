"""Normal-Normal: unknown mean, known noise.

    mu ~ N(prior_loc, prior_scale^2)
    x_i | mu ~ N(mu, noise_scale^2),  i = 1..n

Posterior: N(m, s^2) with 1/s^2 = 1/prior_scale^2 + n/noise_scale^2 and
m = s^2 (prior_loc/prior_scale^2 + sum(x)/noise_scale^2).
Evidence: x ~ N(prior_loc 1, noise_scale^2 I + prior_scale^2 1 1^T).
"""

from __future__ import annotations

import numpy as np

from ppl_suite.gaussian_posterior import GaussianPosterior
from ppl_suite.guides.autoguides import autoguide_names
from ppl_suite.lazy_module import lazy_module
from ppl_suite.spec import Data, DistSpec, Domain, Latents, ModelSpec, Params, Site

stats = lazy_module("scipy.stats")  # imported when first used: naming a model loads no SciPy


def sites(params: Params) -> tuple[Site, ...]:
    prior = DistSpec(
        "Normal",
        {
            "loc": np.asarray(params["prior_loc"], dtype=float),
            "scale": np.asarray(params["prior_scale"], dtype=float),
        },
    )
    return (Site("mu", prior=prior),)


def generate_data(rng: np.random.Generator, params: Params) -> dict[str, np.ndarray]:
    mu = rng.normal(params["prior_loc"], params["prior_scale"])
    return {"x": rng.normal(mu, params["noise_scale"], size=int(params["n"]))}


def log_joint(latents: Latents, data: Data, params: Params) -> np.ndarray:
    mu = np.asarray(latents["mu"], dtype=float)
    log_prior = stats.norm.logpdf(mu, params["prior_loc"], params["prior_scale"])
    log_lik = stats.norm.logpdf(data["x"][None, :], mu[:, None], params["noise_scale"]).sum(axis=1)
    return log_prior + log_lik


def oracle(data: Data, params: Params) -> GaussianPosterior:
    x = np.asarray(data["x"], dtype=float)
    n, m0, s0, sigma = x.size, params["prior_loc"], params["prior_scale"], params["noise_scale"]
    precision = 1.0 / s0**2 + n / sigma**2
    loc = (m0 / s0**2 + x.sum() / sigma**2) / precision
    # log N(x; m0 1, sigma^2 I + s0^2 1 1^T) by the matrix determinant lemma and Sherman-Morrison.
    r = x - m0
    quad = (r @ r - s0**2 * r.sum() ** 2 / (sigma**2 + n * s0**2)) / sigma**2
    log_det = 2 * n * np.log(sigma) + np.log1p(n * s0**2 / sigma**2)
    log_evidence = -0.5 * (n * np.log(2 * np.pi) + log_det + quad)
    return GaussianPosterior("mu", np.asarray(loc), np.asarray(1.0 / precision), float(log_evidence))


def problem_size(params: Params) -> int:
    """x (n,) and mu."""
    return int(params["n"]) + 1


SPEC = ModelSpec(
    name="normal_normal",
    description="Unknown mean of Gaussian data with known noise; Gaussian prior (conjugate).",
    defaults={"n": 100, "prior_loc": 0.0, "prior_scale": 2.0, "noise_scale": 1.0},
    domains={
        "n": Domain.integer(low=1),
        "prior_loc": Domain.real(),
        "prior_scale": Domain.positive(),
        "noise_scale": Domain.positive(),
    },
    problem_size=problem_size,
    sites=sites,
    generate_data=generate_data,
    log_joint=log_joint,
    oracle=oracle,
    guides=("mean_field", "conjugate", *autoguide_names(flows=False)),
    module=__package__,
)
