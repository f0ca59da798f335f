"""Gamma-Poisson: unknown rate of counts, Gamma prior (conjugate).

    lambda ~ Gamma(prior_concentration, prior_rate)        (shape a0, rate b0: mean a0 / b0)
    x_i | lambda ~ Poisson(lambda),  i = 1..n

Data: ``x``, shape (n,), float64 non-negative whole numbers (counts as floats, as torch's Poisson
wants). With S = sum(x):
Posterior: Gamma(a, b) with a = a0 + S and b = b0 + n.
Evidence: log p(x) = a0 log b0 - log Gamma(a0) + log Gamma(a) - a log b - sum_i log(x_i!).

Guide families: ``conjugate`` (Gamma) holds the posterior; ``mean_field`` is the LogNormal
lambda = exp(u), u ~ N(loc, scale^2), which does not. Its KL to Gamma(a, b) is closed-form,

    KL(loc, scale) = -0.5 log(2 pi e scale^2) - a loc + b exp(loc + scale^2 / 2) - a log b + log Gamma(a),

minimized at scale^2 = 1 / a and loc = log(a / b) - 1 / (2 a), where it equals Stirling's remainder

    KL_min(a) = log Gamma(a) - (a - 1/2) log a + a - 0.5 log(2 pi)  (~ 1 / (12 a)),

whatever the rate b.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ppl_suite.guides.autoguides import autoguide_names
from ppl_suite.lazy_module import lazy_module
from ppl_suite.spec import Data, DistSpec, Domain, Latents, ModelSpec, Params, Site

special = lazy_module("scipy.special")  # imported when first used: naming a model loads no SciPy
stats = lazy_module("scipy.stats")


def sites(params: Params) -> tuple[Site, ...]:
    prior = DistSpec(
        "Gamma",
        {
            "concentration": np.asarray(params["prior_concentration"], dtype=float),
            "rate": np.asarray(params["prior_rate"], dtype=float),
        },
    )
    return (Site("lambda", support="positive", prior=prior),)


def generate_data(rng: np.random.Generator, params: Params) -> dict[str, np.ndarray]:
    lam = rng.gamma(params["prior_concentration"], 1.0 / params["prior_rate"])
    return {"x": rng.poisson(lam, size=int(params["n"])).astype(np.float64)}


def log_joint(latents: Latents, data: Data, params: Params) -> np.ndarray:
    lam = np.asarray(latents["lambda"], dtype=float)
    log_prior = stats.gamma.logpdf(lam, params["prior_concentration"], scale=1.0 / params["prior_rate"])
    log_lik = stats.poisson.logpmf(data["x"][None, :], lam[:, None]).sum(axis=1)
    return log_prior + log_lik


@dataclass(frozen=True)
class GammaPosterior:
    """p(lambda | x) = Gamma(lambda; concentration, rate) over the site ``lambda``."""

    concentration: float
    rate: float
    log_evidence: float

    def log_density(self, latents: Latents) -> np.ndarray:
        lam = np.asarray(latents["lambda"], dtype=float)
        return stats.gamma.logpdf(lam, self.concentration, scale=1.0 / self.rate)

    def sample(self, rng: np.random.Generator, n: int) -> Latents:
        return {"lambda": rng.gamma(self.concentration, 1.0 / self.rate, size=n)}

    def mean(self) -> dict[str, np.ndarray]:
        return {"lambda": np.asarray(self.concentration / self.rate)}

    def covariance(self) -> np.ndarray:
        return np.array([[self.concentration / self.rate**2]])

    def factors(self) -> dict[str, DistSpec]:
        params = {"concentration": np.asarray(self.concentration), "rate": np.asarray(self.rate)}
        return {"lambda": DistSpec("Gamma", params)}


def oracle(data: Data, params: Params) -> GammaPosterior:
    x = np.asarray(data["x"], dtype=float)
    a0, b0 = float(params["prior_concentration"]), float(params["prior_rate"])
    a, b = a0 + x.sum(), b0 + x.size
    log_evidence = (
        a0 * np.log(b0) - special.gammaln(a0) + special.gammaln(a) - a * np.log(b)
        - special.gammaln(x + 1).sum()
    )  # fmt: skip
    return GammaPosterior(a, b, float(log_evidence))


def lognormal_kl(loc: float, scale: float, concentration: float, rate: float) -> float:
    """KL(LogNormal(loc, scale) || Gamma(concentration, rate)) in closed form (see module docstring)."""
    a, b = concentration, rate
    return float(
        -0.5 * np.log(2 * np.pi * np.e * scale**2) - a * loc + b * np.exp(loc + 0.5 * scale**2)
        - a * np.log(b) + special.gammaln(a)
    )  # fmt: skip


def lognormal_optimum(concentration: float, rate: float) -> tuple[float, float, float]:
    """The LogNormal closest to Gamma(concentration, rate) in KL(q || p): (KL, loc, scale)."""
    a = concentration
    loc, scale = np.log(a / rate) - 0.5 / a, np.sqrt(1.0 / a)
    stirling_remainder = special.gammaln(a) - (a - 0.5) * np.log(a) + a - 0.5 * np.log(2 * np.pi)
    return float(stirling_remainder), float(loc), float(scale)


def kl_family_min(guide: str, data: Data, params: Params) -> float | None:
    """Best KL(q || p(lambda | x)): 0 for the Gamma family, Stirling's remainder for the LogNormal."""
    posterior = oracle(data, params)
    if guide == "conjugate":
        return 0.0
    if guide == "mean_field":
        return lognormal_optimum(posterior.concentration, posterior.rate)[0]
    return None


def problem_size(params: Params) -> int:
    """x (n,) and lambda."""
    return int(params["n"]) + 1


SPEC = ModelSpec(
    name="gamma_poisson",
    description="Rate of Poisson counts; Gamma prior (conjugate).",
    defaults={"n": 100, "prior_concentration": 2.0, "prior_rate": 0.5},
    domains={
        "n": Domain.integer(low=1),
        "prior_concentration": Domain.positive(),
        "prior_rate": Domain.positive(),
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
