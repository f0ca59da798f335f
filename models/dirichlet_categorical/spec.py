"""Dirichlet-Categorical: unknown category probabilities, symmetric Dirichlet prior.

    pi ~ Dirichlet(alpha 1_k)
    x_i | pi ~ Categorical(pi),  i = 1..n

Data: ``x`` (n,) int64 category labels in 0..k-1. Latent site ``pi`` (simplex, shape (k,)).

With counts c_j = #{i : x_i = j}:
Posterior: Dirichlet(a) with a_j = alpha + c_j.
Evidence (of the label sequence, no multinomial coefficient):
    log p(x) = log Gamma(k alpha) - log Gamma(k alpha + n)
               + sum_j [log Gamma(alpha + c_j) - log Gamma(alpha)].

Mean-field (logistic-Normal) optimum. The guide is u ~ N(loc, diag(scale^2)) in R^(k-1), pushed onto the
simplex by the stick-breaking bijection of torch and NumPyro:
    z_i = sigmoid(u_i - log(k - 1 - i)),  pi_i = z_i prod_{j<i} (1 - z_j),  pi_(k-1) = prod_j (1 - z_j).
Under Dirichlet(a) the stick fractions are independent, z_i ~ Beta(a_i, b_i) with b_i = sum_{j>i} a_j
(Connor and Mosimann, 1969), so in u-space the posterior is a product of shifted logit-Beta densities
    log p(v) = a log sigmoid(v) + b log sigmoid(-v) - log B(a, b),  v = u_i - log(k - 1 - i),
and the best mean-field KL is the sum over i of min_{mu, s} KL(N(mu, s^2) || logit-Beta(a_i, b_i)),
each a smooth 2-parameter problem solved by Gauss-Hermite quadrature and BFGS.
"""

from __future__ import annotations

import numpy as np

from ppl_suite.guides.autoguides import autoguide_names
from ppl_suite.lazy_module import lazy_module
from ppl_suite.spec import Data, DistSpec, Domain, Latents, ModelSpec, Params, Site

optimize = lazy_module("scipy.optimize")  # imported when first used: naming a model loads no SciPy
special = lazy_module("scipy.special")

QUADRATURE_NODES = 96
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(QUADRATURE_NODES)
_WEIGHTS = _WEIGHTS / np.sqrt(2 * np.pi)  # E_{t ~ N(0, 1)}[f(t)] = sum_j w_j f(t_j)


def _prior(params: Params) -> np.ndarray:
    return np.full(int(params["k"]), float(params["alpha"]))


def sites(params: Params) -> tuple[Site, ...]:
    prior = DistSpec("Dirichlet", {"concentration": _prior(params)})
    return (Site("pi", shape=(int(params["k"]),), support="simplex", prior=prior),)


def generate_data(rng: np.random.Generator, params: Params) -> dict[str, np.ndarray]:
    pi = rng.dirichlet(_prior(params))
    return {"x": rng.choice(int(params["k"]), size=int(params["n"]), p=pi).astype(np.int64)}


def counts(data: Data, params: Params) -> np.ndarray:
    """c_j = #{i : x_i = j}, j = 0..k-1, as float64."""
    return np.bincount(np.asarray(data["x"]), minlength=int(params["k"])).astype(np.float64)


def _dirichlet_log_density(pi: np.ndarray, concentration: np.ndarray) -> np.ndarray:
    """log Dirichlet(pi; a) for pi of shape (n, k); xlogy keeps zero exponents finite on the boundary."""
    log_norm = special.gammaln(concentration.sum()) - special.gammaln(concentration).sum()
    return log_norm + special.xlogy(concentration - 1.0, pi).sum(axis=-1)


def log_joint(latents: Latents, data: Data, params: Params) -> np.ndarray:
    pi = np.asarray(latents["pi"], dtype=np.float64)
    log_lik = special.xlogy(counts(data, params), pi).sum(axis=-1)
    return _dirichlet_log_density(pi, _prior(params)) + log_lik


class DirichletPosterior:
    """Dirichlet(a) over the site ``pi``, with the evidence of the data that produced it."""

    def __init__(self, concentration: np.ndarray, log_evidence: float, site: str = "pi") -> None:
        self.site = site
        self.concentration = np.asarray(concentration, dtype=np.float64)
        self.log_evidence = float(log_evidence)

    def log_density(self, latents: Latents) -> np.ndarray:
        return _dirichlet_log_density(np.asarray(latents[self.site], dtype=np.float64), self.concentration)

    def sample(self, rng: np.random.Generator, n: int) -> Latents:
        return {self.site: rng.dirichlet(self.concentration, size=n)}

    def mean(self) -> dict[str, np.ndarray]:
        return {self.site: self.concentration / self.concentration.sum()}

    def covariance(self) -> np.ndarray:
        """Cov(pi) = (diag(m) - m m^T) / (a_0 + 1), m = a / a_0: singular (the coordinates sum to 1)."""
        m = self.mean()[self.site]
        return (np.diag(m) - np.outer(m, m)) / (self.concentration.sum() + 1.0)

    def factors(self) -> dict[str, DistSpec]:
        return {self.site: DistSpec("Dirichlet", {"concentration": self.concentration})}


def oracle(data: Data, params: Params) -> DirichletPosterior:
    c, alpha, k = counts(data, params), float(params["alpha"]), int(params["k"])
    log_evidence = (
        special.gammaln(k * alpha)
        - special.gammaln(k * alpha + c.sum())
        + (special.gammaln(alpha + c) - special.gammaln(alpha)).sum()
    )
    return DirichletPosterior(alpha + c, log_evidence)


def _logit_beta_kl(x: np.ndarray, a: float, b: float) -> tuple[float, np.ndarray]:
    """KL(N(mu, s^2) || logit-Beta(a, b)) and its gradient in x = (mu, log s), by quadrature.

    KL = -0.5 log(2 pi e) - log s - E[f(v)] + log B(a, b),  f(v) = a log sigmoid(v) + b log sigmoid(-v),
    dKL/dmu = -E[f'(v)],  dKL/dlog s = -1 - s E[f'(v) t],  v = mu + s t,  f'(v) = a - (a + b) sigmoid(v).
    """
    mu, s = x[0], np.exp(x[1])
    v = mu + s * _NODES
    f = -a * np.logaddexp(0.0, -v) - b * np.logaddexp(0.0, v)
    df = a - (a + b) * special.expit(v)
    kl = -0.5 * np.log(2 * np.pi * np.e) - x[1] - _WEIGHTS @ f + special.betaln(a, b)
    return float(kl), np.array([-(_WEIGHTS @ df), -1.0 - s * (_WEIGHTS @ (df * _NODES))])


def mean_field_optimum(data: Data, params: Params) -> tuple[np.ndarray, np.ndarray, float]:
    """The best logistic-Normal guide: (loc, log_scale), each (k-1,), and its KL to the posterior."""
    a = oracle(data, params).concentration
    k = a.size
    loc, log_scale, total = np.empty(k - 1), np.empty(k - 1), 0.0
    for i in range(k - 1):
        ai, bi = a[i], a[i + 1 :].sum()
        # Laplace approximation as the start: mode log(a / b), variance 1/a + 1/b.
        start = np.array([np.log(ai / bi), 0.5 * np.log(1.0 / ai + 1.0 / bi)])
        result = optimize.minimize(
            _logit_beta_kl, start, args=(ai, bi), jac=True, method="BFGS", options={"gtol": 1e-12}
        )
        loc[i], log_scale[i] = result.x[0] + np.log(k - 1 - i), result.x[1]
        total += result.fun
    return loc, log_scale, float(total)


def kl_family_min(guide: str, data: Data, params: Params) -> float | None:
    """Best mean-field KL by quadrature (see the module docstring); other families: the generic rules."""
    return mean_field_optimum(data, params)[2] if guide == "mean_field" else None


def problem_size(params: Params) -> int:
    """x (n,) and pi (k,)."""
    return int(params["n"]) + int(params["k"])


SPEC = ModelSpec(
    name="dirichlet_categorical",
    description="Category probabilities of categorical data; symmetric Dirichlet prior (conjugate).",
    defaults={"n": 200, "k": 5, "alpha": 1.0},
    domains={"n": Domain.integer(low=1), "k": Domain.integer(low=2), "alpha": Domain.positive()},
    problem_size=problem_size,
    sites=sites,
    generate_data=generate_data,
    log_joint=log_joint,
    oracle=oracle,
    guides=("conjugate", "mean_field", *autoguide_names()),
    kl_family_min=kl_family_min,
    module=__package__,
)
