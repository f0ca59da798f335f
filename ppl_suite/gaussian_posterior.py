"""Exact Gaussian posteriors, for conjugate Gaussian models: over one real latent site
(``GaussianPosterior``) or over several sites correlated across them (``JointGaussianPosterior``).

p(z | x) = N(z; m, S), with z scalar (shape ()) or a vector (shape (d,)), or the sites' values
flattened and concatenated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ppl_suite.lazy_module import lazy_module
from ppl_suite.spec import DistSpec, Latents, Site

stats = lazy_module("scipy.stats")  # imported when first used: naming a model loads no SciPy


@dataclass(frozen=True)
class GaussianPosterior:
    site: str
    loc: np.ndarray
    cov: np.ndarray
    log_evidence: float

    @property
    def _scalar(self) -> bool:
        return np.ndim(self.loc) == 0

    def _flat(self, latents: Latents) -> np.ndarray:
        value = np.asarray(latents[self.site], dtype=float)
        return value.reshape(value.shape[0], -1)

    def log_density(self, latents: Latents) -> np.ndarray:
        flat = self._flat(latents)
        return (
            stats.multivariate_normal(np.atleast_1d(self.loc), np.atleast_2d(self.cov))
            .logpdf(flat)
            .reshape(flat.shape[0])
        )

    def sample(self, rng: np.random.Generator, n: int) -> Latents:
        draws = rng.multivariate_normal(np.atleast_1d(self.loc), np.atleast_2d(self.cov), size=n)
        return {self.site: draws[:, 0] if self._scalar else draws}

    def mean(self) -> dict[str, np.ndarray]:
        return {self.site: np.asarray(self.loc, dtype=float)}

    def covariance(self) -> np.ndarray:
        return np.atleast_2d(self.cov).astype(float)

    def factors(self) -> dict[str, DistSpec]:
        if self._scalar:
            scale = np.sqrt(np.asarray(self.cov, dtype=float))
            return {self.site: DistSpec("Normal", {"loc": np.asarray(self.loc), "scale": scale})}
        scale_tril = np.linalg.cholesky(self.cov)
        return {self.site: DistSpec("MultivariateNormal", {"loc": self.loc, "scale_tril": scale_tril})}


@dataclass(frozen=True)
class JointGaussianPosterior:
    """An exact Gaussian posterior over several real sites, correlated across them:

    p(z | x) = N(concat_site z_site; m, S),   each z_site flattened in row-major order

    ``shapes`` names the sites and their shapes in declaration order. It does not factor over sites,
    so ``factors`` is None (KL to it is estimated by Monte Carlo; ``gaussian_over_real_sites`` tells
    the Gaussian guide rules it is Gaussian)."""

    shapes: tuple[tuple[str, tuple[int, ...]], ...]
    loc: np.ndarray
    cov: np.ndarray
    log_evidence: float

    def _flat(self, latents: Latents) -> np.ndarray:
        parts = [np.asarray(latents[name], dtype=float) for name, _ in self.shapes]
        return np.concatenate([p.reshape(p.shape[0], -1) for p in parts], axis=1)

    def log_density(self, latents: Latents) -> np.ndarray:
        return np.atleast_1d(stats.multivariate_normal(self.loc, self.cov).logpdf(self._flat(latents)))

    def sample(self, rng: np.random.Generator, n: int) -> Latents:
        return self._sites(rng.multivariate_normal(self.loc, self.cov, size=n))

    def mean(self) -> dict[str, np.ndarray]:
        return {name: part[0] for name, part in self._sites(self.loc[None]).items()}

    def _sites(self, flat: np.ndarray) -> Latents:
        """Flat points (n, d) as latents keyed by site."""
        out, start = {}, 0
        for name, shape in self.shapes:
            stop = start + int(np.prod(shape, dtype=int))
            out[name], start = flat[:, start:stop].reshape(flat.shape[0], *shape), stop
        return out

    def covariance(self) -> np.ndarray:
        return np.asarray(self.cov, dtype=float)

    def factors(self) -> None:
        return None


def gaussian_over_real_sites(exact: object, sites: tuple[Site, ...]) -> bool:
    """Whether an exact posterior is Gaussian over every latent coordinate, every site real: a
    ``JointGaussianPosterior``, or per-site factors all Normal or MultivariateNormal."""
    if any(s.support != "real" for s in sites):
        return False
    if isinstance(exact, JointGaussianPosterior):
        return {name for name, _ in exact.shapes} == {s.name for s in sites}
    factors = exact.factors() if exact is not None else None
    if factors is None or set(factors) != {s.name for s in sites}:
        return False
    return all(f.family in {"Normal", "MultivariateNormal"} for f in factors.values())
