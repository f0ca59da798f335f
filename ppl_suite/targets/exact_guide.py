"""Guides built from the oracle: the exact posterior q = p(z | x) where a declared family holds it, and
Gaussians around the exact Gaussian posterior with a chosen spread.

- ``exact_guide``: the conjugate family (the prior's family per site), per-point categoricals for an
  enumerated mixture, or a Gaussian family for a Gaussian posterior on real latents; None where no
  declared family holds the posterior.
- ``gaussian_guide(problem, family, scale)``: with N(m, S) the exact posterior of the flattened
  latents, the guide q = N(m, scale^2 S) of ``family``; scale 1 is the posterior itself, scale < 1 a
  guide narrower than it in every direction (what VI's mode seeking tends to produce). ``full_rank``
  (one Gaussian over every coordinate) always holds it, ``mean_field`` when S is diagonal;
  ``gaussian_family`` says which family of the model's does.
"""

from __future__ import annotations

import numpy as np

from ppl_suite import guides
from ppl_suite.gaussian_posterior import gaussian_over_real_sites
from ppl_suite.guides.base import unconstrained_shape
from ppl_suite.guides.conjugate import to_phi
from ppl_suite.guides.full_rank import LOC, LOG_DIAG, TRIL
from ppl_suite.guides.joint import blocks
from ppl_suite.problem import Problem
from ppl_suite.spec import ExactPosterior
from ppl_suite.targets.fitted_guide import FittedGuide

# an off-diagonal covariance entry counts as zero below this fraction of sqrt(S_ii S_jj)
ZERO_CORRELATION = 1e-10
GAUSSIAN_FAMILIES = ("full_rank", "mean_field")  # in order of preference


def gaussian_posterior(problem: Problem) -> ExactPosterior | None:
    """The exact posterior when it is Gaussian over real latents (a ``JointGaussianPosterior``, or
    every site a Normal or MultivariateNormal factor), else None."""
    exact = problem.exact()
    return exact if gaussian_over_real_sites(exact, problem.sites) else None


def _blocks(problem: Problem, family: str) -> list[np.ndarray]:
    """Index blocks of the flattened latents that ``family`` correlates: one over every coordinate
    (full_rank) or one per coordinate (mean_field)."""
    size = sum(s.size for s in problem.sites)
    if family == "mean_field":
        return [np.array([i]) for i in range(size)]
    return [np.arange(size)]


def _holds(problem: Problem, family: str, cov: np.ndarray) -> bool:
    """Whether ``family`` (declared by the model, supporting its sites) can hold N(m, cov): every
    correlation between two of its blocks is zero."""
    if family not in problem.spec.guides or guides.get(family).unsupported(problem.sites) is not None:
        return False
    inside = np.zeros(cov.shape, dtype=bool)
    for block in _blocks(problem, family):
        inside[np.ix_(block, block)] = True
    sd = np.sqrt(np.diag(cov))
    return bool(np.all(np.abs(cov[~inside]) <= ZERO_CORRELATION * np.outer(sd, sd)[~inside]))


def gaussian_family(problem: Problem) -> str | None:
    """The model's Gaussian guide family that holds its exact Gaussian posterior (full_rank preferred),
    or None (no Gaussian posterior, or no declared family holds its correlations)."""
    exact = gaussian_posterior(problem)
    if exact is None:
        return None
    cov = exact.covariance()
    return next((family for family in GAUSSIAN_FAMILIES if _holds(problem, family, cov)), None)


def gaussian_guide(problem: Problem, family: str, scale: float = 1.0) -> FittedGuide:
    """q = N(m, scale^2 S), N(m, S) the exact Gaussian posterior of the flattened latents, as a guide
    of ``family``; a ValueError when the posterior is not Gaussian or ``family`` cannot hold it."""
    exact = gaussian_posterior(problem)
    if exact is None:
        raise ValueError(f"model {problem.spec.name!r} has no exact Gaussian posterior over real latents")
    if not scale > 0:
        raise ValueError(f"the scale factor must be positive, got {scale!r}")
    cov = exact.covariance()
    if not _holds(problem, family, cov):
        raise ValueError(f"guide family {family!r} of model {problem.spec.name!r} cannot hold its posterior")
    mean = exact.mean()
    if family == "full_rank":
        chol = scale * np.linalg.cholesky(cov)
        loc = np.concatenate([np.asarray(mean[s.name], dtype=float).reshape(-1) for s in problem.sites])
        phi = {LOC: loc, LOG_DIAG: np.log(np.diag(chol)), TRIL: np.tril(chol, -1)}
        return FittedGuide(problem, family, phi)
    phi, log_sd = {}, 0.5 * np.log(np.diag(cov)) + np.log(scale)
    for site, start, stop in blocks(problem.sites):
        shape = unconstrained_shape(site)
        phi[f"{site.name}.loc"] = np.asarray(mean[site.name], dtype=float).reshape(shape)
        phi[f"{site.name}.log_scale"] = log_sd[start:stop].reshape(shape)
    return FittedGuide(problem, family, phi)


def exact_guide(problem: Problem) -> FittedGuide | None:
    """A guide holding the exact posterior (see the module docstring), or None."""
    exact, declared = problem.exact(), problem.spec.guides
    factors = exact.factors() if exact is not None else None
    if factors is None or set(factors) != {s.name for s in problem.sites}:
        family = gaussian_family(problem)  # a Gaussian posterior that does not factor over the sites
        return None if family is None else gaussian_guide(problem, family)
    if "conjugate" in declared and all(
        s.prior and factors[s.name].family == s.prior.family for s in problem.sites
    ):
        phi = {}
        for site in problem.sites:
            spec = factors[site.name]
            phi |= {
                f"{site.name}.{k}": np.asarray(v, float) for k, v in to_phi(spec.family, spec.params).items()
            }
        return FittedGuide(problem, "conjugate", phi)
    if {f.family for f in factors.values()} == {"Categorical"} and "categorical" in declared:
        (site,) = problem.sites
        return FittedGuide(
            problem, "categorical", {f"{site.name}.logits": np.log(factors[site.name].params["probs"])}
        )
    family = gaussian_family(problem)
    return None if family is None else gaussian_guide(problem, family)
