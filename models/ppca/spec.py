"""Probabilistic PCA as a linear VAE: local Gaussian latents, learned loading matrix, mean and noise.

    z_n ~ N(0, I_k),  x_n | z_n ~ N(W z_n + mu, sigma^2 I_d),  n = 1..N,  sigma = exp(log_sigma)

Latent site ``z`` (real, shape (N, k), local). theta = (W, mu, log_sigma) is learned by SVI
(``learned``); the values in ``params`` are its starting point: W = the first k coordinate axes of R^d,
mu = 0, log_sigma = 0. d and k are the shape of W (override ``W`` and ``mu`` to change them).
The data are simulated from separate true values drawn from the data seed: W_true and mu_true with
standard Normal entries, noise scale ``data_noise``.

Oracle, for any theta (see posterior.py): log p_theta(X) = sum_n log N(x_n; mu, W W^T + sigma^2 I) and
p(z_n | x_n) = N(M^-1 W^T (x_n - mu), sigma^2 M^-1), M = W^T W + sigma^2 I.

Guide families, a pair that separates the two ways a variational fit can fall short:
- ``amortized`` (guides.py): linear encoder with a shared full covariance; it contains the exact
  posterior for every theta, so its best KL is 0 and the ELBO's maximum over theta is the
  maximum-likelihood value (Tipping and Bishop, 1999).
- ``mean_field``: a free Normal per coordinate z_nj, not amortized and diagonal. Per point the posterior
  precision is Lambda = M / sigma^2, so the family's best KL at a given theta is
      N/2 (sum_j log M_jj - log det M),
  zero exactly when W has orthogonal columns. The likelihood is invariant to W -> W R (R orthogonal),
  so learning theta rotates W until the diagonal family is exact and the ELBO still reaches the
  maximum likelihood: the KL term picks the rotation. Lucas, Tucker, Grosse and Norouzi (2019),
  "Don't blame the ELBO! A linear VAE perspective on posterior collapse".

Implementations: z is one (N, k) event and x one (N, d) event, with no plate over N (the log joint is
the same sum over n). Every guide family samples a site as one event, and with z under a data plate
(event (k,)) neither backend accepts that guide: NumPyro's Trace_ELBO checks model and guide event
dims (ValueError "event_dims disagree at site 'z': 1 vs 2"), and Pyro's vectorized particles put the
particle axis at batch dim -(max_plate_nesting + 1) = -2, so the guide's z is (P, 1, N, k), which the
model site (batch (P, N)) broadcasts to (P, P, N): a wrong ELBO with no error (validation is off).
"""

from __future__ import annotations

import numpy as np

from models.ppca.guides import AMORTIZED
from models.ppca.posterior import oracle, theta
from ppl_suite import guides
from ppl_suite.spec import Data, DistSpec, Domain, Latents, ModelSpec, Params, Site

guides.register(AMORTIZED)


def sites(params: Params) -> tuple[Site, ...]:
    n, k = int(params["n"]), np.shape(params["W"])[1]
    prior = DistSpec("Normal", {"loc": np.zeros((n, k)), "scale": np.ones((n, k))})
    return (Site("z", shape=(n, k), local=True, prior=prior),)


def generate_data(rng: np.random.Generator, params: Params) -> dict[str, np.ndarray]:
    """x_n = W_true z_n + mu_true + data_noise eps_n with W_true, mu_true, z, eps all standard Normal."""
    W, _, _ = theta(params)
    (d, k), n = W.shape, int(params["n"])
    W_true = rng.standard_normal((d, k))
    mu_true = rng.standard_normal(d)
    z = rng.standard_normal((n, k))
    return {"x": z @ W_true.T + mu_true + params["data_noise"] * rng.standard_normal((n, d))}


def log_joint(latents: Latents, data: Data, params: Params) -> np.ndarray:
    """log p(X, z) = sum_n [log N(z_n; 0, I) + log N(x_n; W z_n + mu, sigma^2 I)], z of shape (b, N, k)."""
    W, mu, sigma = theta(params)
    z = np.asarray(latents["z"], dtype=np.float64)
    x = np.asarray(data["x"], dtype=np.float64)
    (n, d), k = x.shape, W.shape[1]
    residual = x[None] - (z @ W.T + mu)
    log_prior = -0.5 * np.sum(z**2, axis=(1, 2)) - 0.5 * n * k * np.log(2 * np.pi)
    log_lik = -0.5 * np.sum(residual**2, axis=(1, 2)) / sigma**2 - n * d * (
        np.log(sigma) + 0.5 * np.log(2 * np.pi)
    )
    return log_prior + log_lik


def kl_family_min(guide: str, data: Data, params: Params) -> float | None:
    """amortized: 0 (exact family). mean_field: N/2 (sum_j log M_jj - log det M), M = W^T W + sigma^2 I."""
    if guide == AMORTIZED.name:
        return 0.0
    if guide == "mean_field":
        W, _, sigma = theta(params)
        M = W.T @ W + sigma**2 * np.eye(W.shape[1])
        n = np.shape(data["x"])[0]
        return float(0.5 * n * (np.log(np.diag(M)).sum() - np.linalg.slogdet(M)[1]))
    return None


def problem_size(params: Params) -> int:
    """X (n, d) and z (n, k)."""
    d, k = np.shape(params["W"])
    return int(params["n"]) * (int(d) + int(k))


SPEC = ModelSpec(
    name="ppca",
    description="Probabilistic PCA (linear VAE): local Gaussian latents; W, mu, noise learned by SVI.",
    defaults={
        "n": 30,
        "W": ((1.0, 0.0), (0.0, 1.0), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0)),
        "mu": (0.0, 0.0, 0.0, 0.0, 0.0),
        "log_sigma": 0.0,
        "data_noise": 0.5,
    },
    domains={
        "n": Domain.integer(low=1),
        "W": Domain.array(lambda p: (None, None), "(d, k), any d, k >= 1"),
        "mu": Domain.array(lambda p: (np.shape(p["W"])[0],), "(d,), d = the rows of W"),
        "log_sigma": Domain.real(),
        "data_noise": Domain.real(0.0),
    },
    problem_size=problem_size,
    sites=sites,
    generate_data=generate_data,
    log_joint=log_joint,
    oracle=oracle,
    guides=(AMORTIZED.name, "mean_field"),
    learned=("W", "mu", "log_sigma"),
    kl_family_min=kl_family_min,
    module=__package__,
)
