"""Eight schools, non-centered: the posterior of ``eight_schools_centered`` in coordinates without its
funnel (Papaspiliopoulos, Roberts and Skold 2007, "A general framework for the parametrization of
hierarchical models", Statistical Science 22(1)).

    mu ~ Normal(0, mu_prior_scale)
    tau ~ HalfCauchy(tau_prior_scale)
    eta_j ~ Normal(0, 1),                        j = 1..8
    theta_j = mu + tau eta_j                     (recorded as the deterministic site ``theta``)
    y_j | theta_j ~ Normal(theta_j, sigma_j)

The map (mu, tau, eta) -> (mu, tau, mu + tau eta) has Jacobian determinant tau^8, so
p_centered(mu, tau, theta | y) tau^8 = p_noncentered(mu, tau, eta | y): one posterior, and both models
have the same evidence. Data as in ``eight_schools_centered``. Latent sites ``mu`` (real), ``tau``
(positive), ``eta`` (real, shape (8,)).
"""

from __future__ import annotations

import numpy as np

from models.eight_schools_centered.spec import (
    DEFAULTS,
    DOMAINS,
    SCHOOLS,
    effects_log_likelihood,
    generate_data,
    hyperprior_log_density,
    hyperprior_sites,
    problem_size,
)
from ppl_suite.guides.autoguides import autoguide_names
from ppl_suite.lazy_module import lazy_module
from ppl_suite.spec import Data, DistSpec, Latents, ModelSpec, Params, Site

stats = lazy_module("scipy.stats")  # imported when first used: naming a model loads no SciPy


def sites(params: Params) -> tuple[Site, ...]:
    eta_prior = DistSpec("Normal", {"loc": np.zeros(SCHOOLS), "scale": np.ones(SCHOOLS)}, event_dims=1)
    return (*hyperprior_sites(params), Site("eta", shape=(SCHOOLS,), prior=eta_prior))


def log_joint(latents: Latents, data: Data, params: Params) -> np.ndarray:
    mu, tau = np.asarray(latents["mu"], float), np.asarray(latents["tau"], float)
    eta = np.asarray(latents["eta"], float)
    theta = mu[:, None] + tau[:, None] * eta
    log_eta = stats.norm.logpdf(eta).sum(axis=-1)
    return hyperprior_log_density(mu, tau, params) + log_eta + effects_log_likelihood(theta, data)


SPEC = ModelSpec(
    name="eight_schools_noncentered",
    description="Eight schools (Rubin 1981), non-centered: theta_j = mu + tau eta_j; no closed form.",
    defaults=DEFAULTS,
    domains=DOMAINS,
    problem_size=problem_size,
    sites=sites,
    generate_data=generate_data,
    log_joint=log_joint,
    guides=("mean_field", "full_rank", *autoguide_names()),
    fixed_data=True,
    module=__package__,
)
