"""Beta-Bernoulli: unknown success probability of coin flips, Beta prior (conjugate).

    p ~ Beta(prior_concentration1, prior_concentration0)
    x_i | p ~ Bernoulli(p),  i = 1..n

Data: ``x``, shape (n,), float64 zeros and ones. With k = sum(x):
Posterior: Beta(a, b) with a = prior_concentration1 + k and b = prior_concentration0 + n - k.
Evidence: log p(x) = log B(a, b) - log B(prior_concentration1, prior_concentration0), B the Beta function.

Guide families: ``conjugate`` (Beta) holds the posterior; ``mean_field`` is the logit-Normal
p = sigmoid(u), u ~ N(loc, scale^2), which does not. Its best KL to Beta(a, b) is

    KL(loc, scale) = -0.5 log(2 pi e scale^2) - a E[log sigmoid(u)] - b E[log sigmoid(-u)] + log B(a, b)

(the Jacobian 1 / (p (1 - p)) of the logit absorbs the -1 of each Beta exponent), minimized over
(loc, log scale) by BFGS with the expectations by Gauss-Hermite quadrature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ppl_suite.guides.autoguides import autoguide_names
from ppl_suite.lazy_module import lazy_module
from ppl_suite.spec import Data, DistSpec, Domain, Latents, ModelSpec, Params, Site

optimize = lazy_module("scipy.optimize")  # imported when first used: naming a model loads no SciPy
special = lazy_module("scipy.special")
stats = lazy_module("scipy.stats")

HERMITE_NODES = 128
_nodes, _weights = np.polynomial.hermite_e.hermegauss(HERMITE_NODES)
_weights = _weights / _weights.sum()  # E_{z ~ N(0, 1)}[f(z)] ~= sum_j w_j f(z_j)


def sites(params: Params) -> tuple[Site, ...]:
    prior = DistSpec(
        "Beta",
        {
            "concentration1": np.asarray(params["prior_concentration1"], dtype=float),
            "concentration0": np.asarray(params["prior_concentration0"], dtype=float),
        },
    )
    return (Site("p", support="unit_interval", prior=prior),)


def generate_data(rng: np.random.Generator, params: Params) -> dict[str, np.ndarray]:
    p = rng.beta(params["prior_concentration1"], params["prior_concentration0"])
    return {"x": (rng.random(int(params["n"])) < p).astype(np.float64)}


def log_joint(latents: Latents, data: Data, params: Params) -> np.ndarray:
    p = np.asarray(latents["p"], dtype=float)
    log_prior = stats.beta.logpdf(p, params["prior_concentration1"], params["prior_concentration0"])
    log_lik = stats.bernoulli.logpmf(data["x"][None, :], p[:, None]).sum(axis=1)
    return log_prior + log_lik


@dataclass(frozen=True)
class BetaPosterior:
    """p(p | x) = Beta(p; concentration1, concentration0) over the site ``p``."""

    concentration1: float
    concentration0: float
    log_evidence: float

    def log_density(self, latents: Latents) -> np.ndarray:
        p = np.asarray(latents["p"], dtype=float)
        return stats.beta.logpdf(p, self.concentration1, self.concentration0)

    def sample(self, rng: np.random.Generator, n: int) -> Latents:
        return {"p": rng.beta(self.concentration1, self.concentration0, size=n)}

    def mean(self) -> dict[str, np.ndarray]:
        a, b = self.concentration1, self.concentration0
        return {"p": np.asarray(a / (a + b))}

    def covariance(self) -> np.ndarray:
        a, b = self.concentration1, self.concentration0
        return np.array([[a * b / ((a + b) ** 2 * (a + b + 1))]])

    def factors(self) -> dict[str, DistSpec]:
        params = {
            "concentration1": np.asarray(self.concentration1),
            "concentration0": np.asarray(self.concentration0),
        }
        return {"p": DistSpec("Beta", params)}


def oracle(data: Data, params: Params) -> BetaPosterior:
    x = np.asarray(data["x"], dtype=float)
    a0, b0 = float(params["prior_concentration1"]), float(params["prior_concentration0"])
    a, b = a0 + x.sum(), b0 + x.size - x.sum()
    log_evidence = special.betaln(a, b) - special.betaln(a0, b0)
    return BetaPosterior(a, b, float(log_evidence))


def logit_normal_kl(loc: float, log_scale: float, a: float, b: float) -> tuple[float, np.ndarray]:
    """KL(sigmoid#N(loc, scale^2) || Beta(a, b)) and its gradient in (loc, log_scale).

    d/dloc = E[g(u)], d/dlog_scale = -1 + scale E[z g(u)], with u = loc + scale z and
    g(u) = -a sigmoid(-u) + b sigmoid(u) the derivative of -a log sigmoid(u) - b log sigmoid(-u).
    """
    scale = np.exp(log_scale)
    u = loc + scale * _nodes
    log_sig, log_sig_neg = -np.logaddexp(0.0, -u), -np.logaddexp(0.0, u)
    g = -a * special.expit(-u) + b * special.expit(u)
    value = (
        -0.5 * np.log(2 * np.pi * np.e) - log_scale
        - _weights @ (a * log_sig + b * log_sig_neg) + special.betaln(a, b)
    )  # fmt: skip
    grad = np.array([_weights @ g, -1.0 + scale * (_weights @ (_nodes * g))])
    return float(value), grad


def logit_normal_optimum(a: float, b: float) -> tuple[float, float, float]:
    """The logit-Normal closest to Beta(a, b) in KL(q || p): (KL, loc, scale).

    Started at the mean and standard deviation of logit(p) under Beta(a, b):
    digamma(a) - digamma(b) and sqrt(trigamma(a) + trigamma(b)).
    """
    start = [special.digamma(a) - special.digamma(b), 0.5 * np.log(special.polygamma(1, [a, b]).sum())]
    result = optimize.minimize(lambda w: logit_normal_kl(w[0], w[1], a, b), start, jac=True,
                               method="BFGS", options={"gtol": 1e-10})  # fmt: skip
    return float(result.fun), float(result.x[0]), float(np.exp(result.x[1]))


def kl_family_min(guide: str, data: Data, params: Params) -> float | None:
    """Best KL(q || p(p | x)): 0 for the Beta family, the logit-Normal optimum for mean_field."""
    posterior = oracle(data, params)
    if guide == "conjugate":
        return 0.0
    if guide == "mean_field":
        return logit_normal_optimum(posterior.concentration1, posterior.concentration0)[0]
    return None


def problem_size(params: Params) -> int:
    """x (n,) and p."""
    return int(params["n"]) + 1


SPEC = ModelSpec(
    name="beta_bernoulli",
    description="Success probability of Bernoulli data; Beta prior (conjugate).",
    defaults={"n": 100, "prior_concentration1": 2.0, "prior_concentration0": 2.0},
    domains={
        "n": Domain.integer(low=1),
        "prior_concentration1": Domain.positive(),
        "prior_concentration0": Domain.positive(),
    },
    problem_size=problem_size,
    sites=sites,
    generate_data=generate_data,
    log_joint=log_joint,
    oracle=oracle,
    guides=("conjugate", "mean_field", *autoguide_names(flows=False)),
    kl_family_min=kl_family_min,
    module=__package__,
)
