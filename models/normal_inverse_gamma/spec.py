"""Normal-inverse-gamma: unknown mean and variance of Gaussian data, conjugate NIG prior.

    sigma2 ~ InvGamma(a0, b0)                      (a0 = prior_concentration, b0 = prior_rate)
    mu | sigma2 ~ N(m0, sigma2 / k0)               (m0 = prior_loc, k0 = prior_kappa)
    x_i | mu, sigma2 ~ N(mu, sigma2),  i = 1..n

Data: ``x``, shape (n,), float64. With xbar the sample mean and SS = sum((x - xbar)^2):
Posterior: NIG(m, k, a, b), i.e. sigma2 | x ~ InvGamma(a, b) and mu | sigma2, x ~ N(m, sigma2 / k), with
    k = k0 + n,  m = (k0 m0 + n xbar) / k,  a = a0 + n / 2,  b = b0 + SS / 2 + k0 n (xbar - m0)^2 / (2 k).
Its moments: E[mu] = m, E[sigma2] = b / (a - 1), Var(mu) = b / ((a - 1) k),
Var(sigma2) = b^2 / ((a - 1)^2 (a - 2)), Cov(mu, sigma2) = 0 (mu - m has mean 0 given sigma2).
Evidence (the ratio of NIG normalisers; x is multivariate Student-t):
    log p(x) = log Gamma(a) - log Gamma(a0) + a0 log b0 - a log b + 0.5 log(k0 / k) - (n / 2) log(2 pi).

The posterior couples mu and sigma2, so neither guide family holds it. For q(mu) q(sigma2) with
q(mu) = N(m, v) (optimal in both families, by symmetry about m):

    KL = -0.5 log(2 pi e v) + E_q[log q(sigma2)] + (a + 3/2) E_q[log sigma2] + (b + k v / 2) E_q[1 / sigma2]
         - a log b + log Gamma(a) + 0.5 log(2 pi / k).

- ``conjugate`` (Normal x InverseGamma): coordinate ascent (CAVI) sets q(mu) = N(m, 1 / (k E[1 / sigma2]))
  and q(sigma2) = InvGamma(a + 1/2, b + k v / 2); its fixed point is closed-form,
  v = b / (k a), q(sigma2) = InvGamma(a + 1/2, b (a + 1/2) / a). This is the best factorized q of any form,
  so also the family's optimum.
- ``mean_field`` (Normal x LogNormal, log sigma2 ~ N(l, t^2)): E[log sigma2] = l, E[1 / sigma2] =
  exp(-l + t^2 / 2); setting the gradient to zero gives v = b / (k a), t^2 = 1 / (a + 1/2),
  l = t^2 / 2 - log(a / b).
Both minima depend on a alone (mu and sigma2 can be rescaled to m = 0, k = b = 1).
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
    a0, b0, k0 = params["prior_concentration"], params["prior_rate"], params["prior_kappa"]
    # q(mu) starts at the Normal with the location and scale of mu's Student-t prior marginal.
    mu_prior = DistSpec(
        "Normal",
        {"loc": np.asarray(params["prior_loc"], dtype=float), "scale": np.asarray(np.sqrt(b0 / (a0 * k0)))},
    )
    sigma2_prior = DistSpec(
        "InverseGamma", {"concentration": np.asarray(a0, dtype=float), "rate": np.asarray(b0, dtype=float)}
    )
    return (Site("mu", prior=mu_prior), Site("sigma2", support="positive", prior=sigma2_prior))


def generate_data(rng: np.random.Generator, params: Params) -> dict[str, np.ndarray]:
    sigma2 = params["prior_rate"] / rng.gamma(params["prior_concentration"])
    mu = rng.normal(params["prior_loc"], np.sqrt(sigma2 / params["prior_kappa"]))
    return {"x": rng.normal(mu, np.sqrt(sigma2), size=int(params["n"]))}


def log_joint(latents: Latents, data: Data, params: Params) -> np.ndarray:
    mu = np.asarray(latents["mu"], dtype=float)
    sigma2 = np.asarray(latents["sigma2"], dtype=float)
    log_prior = stats.invgamma.logpdf(sigma2, params["prior_concentration"], scale=params["prior_rate"])
    log_prior += stats.norm.logpdf(mu, params["prior_loc"], np.sqrt(sigma2 / params["prior_kappa"]))
    log_lik = stats.norm.logpdf(data["x"][None, :], mu[:, None], np.sqrt(sigma2)[:, None]).sum(axis=1)
    return log_prior + log_lik


@dataclass(frozen=True)
class NormalInverseGammaPosterior:
    """p(mu, sigma2 | x) = InvGamma(sigma2; concentration, rate) N(mu; loc, sigma2 / kappa)."""

    loc: float
    kappa: float
    concentration: float
    rate: float
    log_evidence: float

    def log_density(self, latents: Latents) -> np.ndarray:
        mu = np.asarray(latents["mu"], dtype=float)
        sigma2 = np.asarray(latents["sigma2"], dtype=float)
        return stats.invgamma.logpdf(sigma2, self.concentration, scale=self.rate) + stats.norm.logpdf(
            mu, self.loc, np.sqrt(sigma2 / self.kappa)
        )

    def sample(self, rng: np.random.Generator, n: int) -> Latents:
        sigma2 = self.rate / rng.gamma(self.concentration, size=n)
        return {"mu": rng.normal(self.loc, np.sqrt(sigma2 / self.kappa)), "sigma2": sigma2}

    def mean(self) -> dict[str, np.ndarray]:
        return {"mu": np.asarray(self.loc), "sigma2": np.asarray(self.rate / (self.concentration - 1))}

    def covariance(self) -> np.ndarray:
        a, b = self.concentration, self.rate
        return np.diag([b / ((a - 1) * self.kappa), b**2 / ((a - 1) ** 2 * (a - 2))])

    def factors(self) -> None:
        return None

    def factorized_kl(
        self, mu_var: float, e_log_sigma2: float, e_inv_sigma2: float, neg_entropy: float
    ) -> float:
        """KL(N(loc, mu_var) q(sigma2) || posterior) from q(sigma2)'s E[log sigma2], E[1 / sigma2] and
        E[log q(sigma2)] (see the module docstring)."""
        a, b, k = self.concentration, self.rate, self.kappa
        return float(
            -0.5 * np.log(2 * np.pi * np.e * mu_var) + neg_entropy
            + (a + 1.5) * e_log_sigma2 + (b + 0.5 * k * mu_var) * e_inv_sigma2
            - a * np.log(b) + special.gammaln(a) + 0.5 * np.log(2 * np.pi / k)
        )  # fmt: skip

    def cavi_optimum(self) -> tuple[float, float, float]:
        """The CAVI fixed point: (v, concentration, rate) of q(mu) = N(loc, v), q(sigma2) = InvGamma."""
        a, b = self.concentration, self.rate
        return b / (self.kappa * a), a + 0.5, b * (a + 0.5) / a

    def lognormal_optimum(self) -> tuple[float, float, float]:
        """The best Normal x LogNormal: (v, l, t) of q(mu) = N(loc, v), log sigma2 ~ N(l, t^2)."""
        a, b = self.concentration, self.rate
        t2 = 1.0 / (a + 0.5)
        return b / (self.kappa * a), 0.5 * t2 - np.log(a / b), np.sqrt(t2)


def inverse_gamma_moments(concentration: float, rate: float) -> tuple[float, float, float]:
    """E[log s], E[1 / s] and E[log q(s)] (minus the entropy) of s ~ InvGamma(concentration, rate)."""
    alpha, beta = concentration, rate
    entropy = alpha + np.log(beta) + special.gammaln(alpha) - (1 + alpha) * special.digamma(alpha)
    return np.log(beta) - special.digamma(alpha), alpha / beta, -entropy


def lognormal_moments(loc: float, scale: float) -> tuple[float, float, float]:
    """E[log s], E[1 / s] and E[log q(s)] of s = exp(u), u ~ N(loc, scale^2)."""
    return loc, np.exp(-loc + 0.5 * scale**2), -0.5 * np.log(2 * np.pi * np.e * scale**2) - loc


def oracle(data: Data, params: Params) -> NormalInverseGammaPosterior:
    x = np.asarray(data["x"], dtype=float)
    n, xbar = x.size, x.mean()
    m0, k0 = float(params["prior_loc"]), float(params["prior_kappa"])
    a0, b0 = float(params["prior_concentration"]), float(params["prior_rate"])
    k = k0 + n
    m = (k0 * m0 + n * xbar) / k
    a = a0 + 0.5 * n
    b = b0 + 0.5 * np.sum((x - xbar) ** 2) + k0 * n * (xbar - m0) ** 2 / (2 * k)
    log_evidence = (
        special.gammaln(a) - special.gammaln(a0) + a0 * np.log(b0) - a * np.log(b)
        + 0.5 * np.log(k0 / k) - 0.5 * n * np.log(2 * np.pi)
    )  # fmt: skip
    return NormalInverseGammaPosterior(float(m), float(k), float(a), float(b), float(log_evidence))


def kl_family_min(guide: str, data: Data, params: Params) -> float | None:
    """Best KL(q || p(mu, sigma2 | x)) in closed form: the CAVI fixed point for ``conjugate``, the
    stationary point of the Normal x LogNormal KL for ``mean_field``."""
    posterior = oracle(data, params)
    if guide == "conjugate":
        v, alpha, beta = posterior.cavi_optimum()
        return posterior.factorized_kl(v, *inverse_gamma_moments(alpha, beta))
    if guide == "mean_field":
        v, loc, scale = posterior.lognormal_optimum()
        return posterior.factorized_kl(v, *lognormal_moments(loc, scale))
    return None


def problem_size(params: Params) -> int:
    """x (n,), mu and sigma2."""
    return int(params["n"]) + 2


SPEC = ModelSpec(
    name="normal_inverse_gamma",
    description="Unknown mean and variance of Gaussian data; normal-inverse-gamma prior (conjugate).",
    defaults={"n": 100, "prior_loc": 0.0, "prior_kappa": 1.0, "prior_concentration": 3.0, "prior_rate": 2.0},
    domains={
        "n": Domain.integer(low=1),
        "prior_loc": Domain.real(),
        "prior_kappa": Domain.positive(),
        "prior_concentration": Domain.positive(),
        "prior_rate": Domain.positive(),
    },
    problem_size=problem_size,
    sites=sites,
    generate_data=generate_data,
    log_joint=log_joint,
    oracle=oracle,
    guides=("mean_field", "conjugate", *autoguide_names()),
    kl_family_min=kl_family_min,
    module=__package__,
)
