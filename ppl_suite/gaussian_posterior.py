"""An exact Gaussian posterior over one real latent site, for conjugate Gaussian models.

p(z | x) = N(z; m, S), with z scalar (shape ()) or a vector (shape (d,)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ppl_suite.lazy_module import lazy_module
from ppl_suite.spec import DistSpec, Latents

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
