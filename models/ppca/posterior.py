"""The exact posterior and evidence of probabilistic PCA, for any value of the model parameters.

    z_n ~ N(0, I_k),  x_n | z_n ~ N(W z_n + mu, sigma^2 I_d),  n = 1..N

Evidence (z_n integrated out, points independent):
    log p(X) = sum_n log N(x_n; mu, C),  C = W W^T + sigma^2 I_d.
Posterior (independent over n, one shared covariance):
    p(z_n | x_n) = N(M^-1 W^T (x_n - mu), sigma^2 M^-1),  M = W^T W + sigma^2 I_k.
Tipping and Bishop (1999), "Probabilistic principal component analysis", section 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ppl_suite.lazy_module import lazy_module
from ppl_suite.spec import Data, DistSpec, Latents, Params

linalg = lazy_module("scipy.linalg")  # imported when first used: naming a model loads no SciPy


def theta(params: Params) -> tuple[np.ndarray, np.ndarray, float]:
    """(W (d, k), mu (d,), sigma) from params; d and k are W's shape."""
    W = np.asarray(params["W"], dtype=np.float64)
    mu = np.asarray(params["mu"], dtype=np.float64)
    if W.ndim != 2 or mu.shape != (W.shape[0],):
        raise ValueError(f"W must be (d, k) and mu (d,); got W {W.shape} and mu {mu.shape}")
    return W, mu, float(np.exp(params["log_sigma"]))


def log_evidence(x: np.ndarray, W: np.ndarray, mu: np.ndarray, sigma: float) -> float:
    """sum_n log N(x_n; mu, W W^T + sigma^2 I), by one Cholesky factor of the d x d covariance."""
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    chol = linalg.cholesky(W @ W.T + sigma**2 * np.eye(d), lower=True)
    white = linalg.solve_triangular(chol, (x - mu).T, lower=True)  # (d, n)
    log_det = 2.0 * np.log(np.diag(chol)).sum()
    return float(-0.5 * (n * (d * np.log(2 * np.pi) + log_det) + np.sum(white**2)))


@dataclass(frozen=True)
class PPCAPosterior:
    """p(z | X) = prod_n N(z_n; loc_n, cov) with loc (N, k) and one shared cov (k, k); and log p(X)."""

    loc: np.ndarray
    cov: np.ndarray
    log_evidence: float

    @property
    def scale_tril(self) -> np.ndarray:
        return np.linalg.cholesky(self.cov)

    def log_density(self, latents: Latents) -> np.ndarray:
        """sum_n log N(z_n; loc_n, cov) for z of shape (b, N, k); returns (b,)."""
        z = np.asarray(latents["z"], dtype=np.float64)
        n, k = self.loc.shape
        chol = self.scale_tril
        white = linalg.solve_triangular(chol, (z - self.loc).reshape(-1, k).T, lower=True)
        quad = np.sum(white.T.reshape(z.shape[0], n * k) ** 2, axis=1)
        log_det = 2.0 * np.log(np.diag(chol)).sum()
        return -0.5 * (quad + n * (k * np.log(2 * np.pi) + log_det))

    def sample(self, rng: np.random.Generator, n: int) -> Latents:
        eps = rng.standard_normal((n, *self.loc.shape))
        return {"z": self.loc + eps @ self.scale_tril.T}

    def mean(self) -> dict[str, np.ndarray]:
        return {"z": self.loc.copy()}

    def covariance(self) -> np.ndarray:
        """Of z flattened row-major (index n k + j): block diagonal, N blocks equal to cov."""
        return np.kron(np.eye(self.loc.shape[0]), self.cov)

    def factors(self) -> dict[str, DistSpec]:
        scale_tril = np.broadcast_to(self.scale_tril, (*self.loc.shape, self.loc.shape[1])).copy()
        return {
            "z": DistSpec("MultivariateNormal", {"loc": self.loc, "scale_tril": scale_tril}, event_dims=1)
        }


def oracle(data: Data, params: Params) -> PPCAPosterior:
    """Exact posterior and evidence under the parameters in ``params`` (initial, learned, or any)."""
    W, mu, sigma = theta(params)
    x = np.asarray(data["x"], dtype=np.float64)
    k = W.shape[1]
    factor = linalg.cho_factor(W.T @ W + sigma**2 * np.eye(k), lower=True)
    loc = linalg.cho_solve(factor, W.T @ (x - mu).T).T
    cov = sigma**2 * linalg.cho_solve(factor, np.eye(k))
    return PPCAPosterior(loc, 0.5 * (cov + cov.T), log_evidence(x, W, mu, sigma))


@dataclass(frozen=True)
class MaximumLikelihood:
    """The closed-form PPCA maximum-likelihood parameters and the maximized log p(X)."""

    W: np.ndarray
    mu: np.ndarray
    sigma: float
    log_likelihood: float


def maximum_likelihood(x: np.ndarray, k: int) -> MaximumLikelihood:
    """Tipping and Bishop (1999), section 3.2: with S the sample covariance (divisor N) and its
    eigenvalues l_1 >= ... >= l_d and eigenvectors U,

        mu_ML = mean(x),  sigma_ML^2 = mean(l_{k+1}, ..., l_d),  W_ML = U_k (L_k - sigma_ML^2 I)^(1/2) R

    for any rotation R (here R = I); needs l_k > sigma_ML^2. The maximum is
        log p(X) = -N/2 (d log 2 pi + sum_{j<=k} log l_j + (d - k) log sigma_ML^2 + d).
    """
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    if not 0 < k < d:
        raise ValueError(f"need 0 < k < d, got k={k}, d={d}")
    mu = x.mean(axis=0)
    values, vectors = np.linalg.eigh((x - mu).T @ (x - mu) / n)
    values, vectors = values[::-1], vectors[:, ::-1]
    sigma2 = float(values[k:].mean())
    if values[k - 1] <= sigma2:
        raise ValueError("the k-th eigenvalue does not exceed the noise estimate: no PPCA maximum of rank k")
    W = vectors[:, :k] * np.sqrt(values[:k] - sigma2)
    log_lik = -0.5 * n * (d * np.log(2 * np.pi) + np.log(values[:k]).sum() + (d - k) * np.log(sigma2) + d)
    return MaximumLikelihood(W, mu, float(np.sqrt(sigma2)), float(log_lik))
