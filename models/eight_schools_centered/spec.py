"""Eight schools, centered: a hierarchical Normal model of the effects of coaching on SAT scores.

    mu ~ Normal(0, mu_prior_scale)
    tau ~ HalfCauchy(tau_prior_scale)
    theta_j | mu, tau ~ Normal(mu, tau),        j = 1..8
    y_j | theta_j ~ Normal(theta_j, sigma_j)    (sigma_j known)

Data (fixed, the same for every seed): the estimated effects ``y`` and their standard errors
``sigma`` of the eight schools of Rubin (1981), "Estimation in parallel randomized experiments",
J. Educational Statistics 6(4); Gelman et al., Bayesian Data Analysis (3rd ed.), section 5.5.
Latent sites ``mu`` (real), ``tau`` (positive), ``theta`` (real, shape (8,)).

No closed form: the posterior has a funnel (theta contracts onto mu as tau -> 0), where NUTS on this
parametrization diverges; ``eight_schools_noncentered`` is the same posterior in coordinates without
the funnel.
"""

from __future__ import annotations

import numpy as np

from ppl_suite.guides.autoguides import autoguide_names
from ppl_suite.lazy_module import lazy_module
from ppl_suite.spec import Data, DistSpec, Domain, Latents, ModelSpec, Params, Site

stats = lazy_module("scipy.stats")  # imported when first used: naming a model loads no SciPy

EFFECTS = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
STANDARD_ERRORS = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
SCHOOLS = EFFECTS.size
DEFAULTS = {"mu_prior_scale": 5.0, "tau_prior_scale": 5.0}
DOMAINS = {"mu_prior_scale": Domain.positive(), "tau_prior_scale": Domain.positive()}


def hyperprior_sites(params: Params) -> tuple[Site, Site]:
    """The sites ``mu`` and ``tau`` shared by both parametrizations, with their priors."""
    mu_prior = DistSpec(
        "Normal", {"loc": np.asarray(0.0), "scale": np.asarray(float(params["mu_prior_scale"]))}
    )
    tau_prior = DistSpec("HalfCauchy", {"scale": np.asarray(float(params["tau_prior_scale"]))})
    return Site("mu", prior=mu_prior), Site("tau", support="positive", prior=tau_prior)


def sites(params: Params) -> tuple[Site, ...]:
    return (*hyperprior_sites(params), Site("theta", shape=(SCHOOLS,)))


def generate_data(rng: np.random.Generator, params: Params) -> dict[str, np.ndarray]:
    """The classic data; ``rng`` is not used (every seed gives the same data set)."""
    return {"y": EFFECTS.copy(), "sigma": STANDARD_ERRORS.copy()}


def hyperprior_log_density(mu: np.ndarray, tau: np.ndarray, params: Params) -> np.ndarray:
    """log Normal(mu; 0, mu_prior_scale) + log HalfCauchy(tau; tau_prior_scale), batched."""
    return stats.norm.logpdf(mu, 0.0, params["mu_prior_scale"]) + stats.halfcauchy.logpdf(
        tau, scale=params["tau_prior_scale"]
    )


def effects_log_likelihood(theta: np.ndarray, data: Data) -> np.ndarray:
    """sum_j log Normal(y_j; theta_j, sigma_j) for theta of shape (n, 8)."""
    return stats.norm.logpdf(data["y"], theta, data["sigma"]).sum(axis=-1)


def log_joint(latents: Latents, data: Data, params: Params) -> np.ndarray:
    mu, tau = np.asarray(latents["mu"], float), np.asarray(latents["tau"], float)
    theta = np.asarray(latents["theta"], float)
    log_theta = stats.norm.logpdf(theta, mu[:, None], tau[:, None]).sum(axis=-1)
    return hyperprior_log_density(mu, tau, params) + log_theta + effects_log_likelihood(theta, data)


def problem_size(params: Params) -> int:
    """y and sigma (8 each), mu, tau and theta (8)."""
    return 3 * SCHOOLS + 2


SPEC = ModelSpec(
    name="eight_schools_centered",
    description="Eight schools (Rubin 1981), centered: theta_j ~ N(mu, tau^2); a funnel, no closed form.",
    defaults=DEFAULTS,
    domains=DOMAINS,
    problem_size=problem_size,
    sites=sites,
    generate_data=generate_data,
    log_joint=log_joint,
    guides=("mean_field", "full_rank", *autoguide_names(laplace=False)),
    fixed_data=True,
    module=__package__,
)
