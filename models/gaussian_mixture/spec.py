"""Gaussian mixture with known components and learned mixing weights: discrete local latents.

    pi = softmax(logits)
    z_n ~ Categorical(pi),                      n = 1..n
    x_n | z_n ~ N(means[z_n], scale^2)

``means`` (K of them) and ``scale`` are fixed; ``logits`` (shape (K,)) are learned by SVI, started at 0
(uniform weights), so maximizing the ELBO over them is EM's M-step done by gradient. The data are
simulated with mixing weights ``data_weights`` (positive, normalized to sum to 1).

Evidence, by summing each z_n out (the points are independent given pi):
    log p(x) = sum_n logsumexp_k [log pi_k + log N(x_n; means_k, scale^2)].
Posterior: it factorizes over n, p(z | x) = prod_n p(z_n | x_n), with responsibilities
    r_nk = p(z_n = k | x_n) = exp(log pi_k + log N(x_n; means_k, scale^2) - logsumexp_j [...]).
Because the posterior is a product of categoricals, a mean-field categorical guide is exact
(its best KL is 0), and enumerating z in the model makes the ELBO equal log p(x).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.gaussian_mixture.guides import CATEGORICAL, ENUMERATE
from ppl_suite import guides
from ppl_suite.lazy_module import lazy_module
from ppl_suite.spec import Data, DistSpec, Domain, Latents, ModelSpec, Params, Site

special = lazy_module("scipy.special")  # imported when first used: naming a model loads no SciPy
stats = lazy_module("scipy.stats")

guides.register(CATEGORICAL)
guides.register(ENUMERATE)


def log_weights(params: Params) -> np.ndarray:
    """log pi = log softmax(logits), shape (K,)."""
    return special.log_softmax(np.asarray(params["logits"], dtype=float))


def log_components(x: np.ndarray, params: Params) -> np.ndarray:
    """log pi_k + log N(x_n; means_k, scale^2), shape (n, K)."""
    means = np.asarray(params["means"], dtype=float)
    log_lik = stats.norm.logpdf(np.asarray(x, dtype=float)[:, None], means[None, :], params["scale"])
    return log_weights(params)[None, :] + log_lik


def sites(params: Params) -> tuple[Site, ...]:
    k = len(params["means"])
    return (Site("z", shape=(int(params["n"]),), support="integer", cardinality=k, local=True),)


def generate_data(rng: np.random.Generator, params: Params) -> dict[str, np.ndarray]:
    weights = np.asarray(params["data_weights"], dtype=float)
    means = np.asarray(params["means"], dtype=float)
    if weights.shape != means.shape:
        raise ValueError(f"data_weights has shape {weights.shape}, means has {means.shape}")
    z = rng.choice(means.size, size=int(params["n"]), p=weights / weights.sum())
    return {"x": rng.normal(means[z], params["scale"])}


def log_joint(latents: Latents, data: Data, params: Params) -> np.ndarray:
    """log p(x, z) = sum_n [log pi_{z_n} + log N(x_n; means_{z_n}, scale^2)], batched: z of shape (b, n)."""
    z = np.asarray(latents["z"]).astype(np.int64)
    table = log_components(data["x"], params)  # (n, K)
    return np.take_along_axis(table[None, :, :], z[:, :, None], axis=2)[:, :, 0].sum(axis=1)


@dataclass(frozen=True)
class MixturePosterior:
    """p(z | x) = prod_n Categorical(z_n; r_n) with responsibilities r (n, K), and log p(x)."""

    log_responsibilities: np.ndarray
    log_evidence: float

    @property
    def responsibilities(self) -> np.ndarray:
        return np.exp(self.log_responsibilities)

    def log_density(self, latents: Latents) -> np.ndarray:
        z = np.asarray(latents["z"]).astype(np.int64)
        table = self.log_responsibilities[None, :, :]
        return np.take_along_axis(table, z[:, :, None], axis=2)[:, :, 0].sum(axis=1)

    def sample(self, rng: np.random.Generator, n: int) -> Latents:
        """Inverse-CDF draws: z_n = #{k : u > cumsum(r_n)_k}, u ~ U(0, 1)."""
        cdf = np.cumsum(self.responsibilities, axis=1)
        u = rng.random((n, cdf.shape[0], 1))
        z = (u > cdf[None, :, :]).sum(axis=2)
        return {"z": np.minimum(z, cdf.shape[1] - 1)}

    def mean(self) -> dict[str, np.ndarray]:
        """E[z_n] = sum_k k r_nk."""
        return {"z": self.responsibilities @ np.arange(self.responsibilities.shape[1], dtype=float)}

    def covariance(self) -> np.ndarray:
        """Diagonal (the z_n are independent): Var[z_n] = sum_k k^2 r_nk - E[z_n]^2."""
        k = np.arange(self.responsibilities.shape[1], dtype=float)
        mean = self.responsibilities @ k
        return np.diag(self.responsibilities @ k**2 - mean**2)

    def factors(self) -> dict[str, DistSpec]:
        return {"z": DistSpec("Categorical", {"probs": self.responsibilities}, event_dims=1)}


def oracle(data: Data, params: Params) -> MixturePosterior:
    table = log_components(data["x"], params)
    log_marginals = special.logsumexp(table, axis=1)  # log p(x_n), shape (n,)
    return MixturePosterior(table - log_marginals[:, None], float(log_marginals.sum()))


def kl_family_min(guide: str, data: Data, params: Params) -> float | None:
    """Both families contain the exact posterior (it is a product of per-point categoricals)."""
    return 0.0 if guide in (CATEGORICAL.name, ENUMERATE.name) else None


def n_components(params: Params) -> tuple[int]:
    """(K,): data_weights and logits have one entry per component mean."""
    return (len(params["means"]),)


def problem_size(params: Params) -> int:
    """x (n,), z (n,) and the responsibilities (n, K)."""
    return int(params["n"]) * (len(params["means"]) + 2)


SPEC = ModelSpec(
    name="gaussian_mixture",
    description="1-D Gaussian mixture, known components, learned weights; discrete local latents.",
    defaults={
        "n": 50,
        "means": (-2.0, 0.0, 2.0),
        "scale": 1.5,
        "data_weights": (0.5, 0.3, 0.2),
        "logits": (0.0, 0.0, 0.0),
    },
    domains={
        "n": Domain.integer(low=1),
        "means": Domain.array(lambda p: (None,), "(K,), K >= 1 components"),
        "scale": Domain.positive(),
        "data_weights": Domain.array(n_components, "(K,), K = the length of means", low=0.0, low_open=True),
        "logits": Domain.array(n_components, "(K,), K = the length of means"),
    },
    problem_size=problem_size,
    sites=sites,
    generate_data=generate_data,
    log_joint=log_joint,
    oracle=oracle,
    guides=(ENUMERATE.name, CATEGORICAL.name),
    learned=("logits",),
    kl_family_min=kl_family_min,
    module=__package__,
)
