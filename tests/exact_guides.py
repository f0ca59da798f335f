"""Guides that hold the exact posterior (q = p(z | x)), built from the oracle, for the zoo models whose
families contain it: the conjugate family (its prior's family), a Gaussian on real latents, per-point
categoricals for the mixture. None where no declared family holds the posterior."""

from __future__ import annotations

import numpy as np

from ppl_suite.guides.conjugate import to_phi
from ppl_suite.problem import Problem
from ppl_suite.targets.fitted_guide import FittedGuide


def exact_guide(problem: Problem) -> FittedGuide | None:
    exact, guides = problem.exact(), problem.spec.guides
    factors = exact.factors() if exact is not None else None
    if factors is None or set(factors) != {s.name for s in problem.sites}:
        return None
    families = {f.family for f in factors.values()}
    if "conjugate" in guides and all(
        s.prior and factors[s.name].family == s.prior.family for s in problem.sites
    ):
        phi = {}
        for site in problem.sites:
            spec = factors[site.name]
            phi |= {
                f"{site.name}.{k}": np.asarray(v, float) for k, v in to_phi(spec.family, spec.params).items()
            }
        return FittedGuide(problem, "conjugate", phi)
    if families == {"Categorical"} and "categorical" in guides:
        (site,) = problem.sites
        return FittedGuide(
            problem, "categorical", {f"{site.name}.logits": np.log(factors[site.name].params["probs"])}
        )
    if families <= {"Normal", "MultivariateNormal"} and all(s.support == "real" for s in problem.sites):
        if len(problem.sites) != 1 or problem.sites[0].local:
            return None
        (site,) = problem.sites
        loc, cov = np.asarray(exact.mean()[site.name], float), exact.covariance()
        if site.shape == () and "mean_field" in guides:
            phi = {f"{site.name}.loc": loc, f"{site.name}.log_scale": np.asarray(0.5 * np.log(cov[0, 0]))}
            return FittedGuide(problem, "mean_field", phi)
        if "full_rank" in guides:
            chol = np.linalg.cholesky(cov)
            phi = {f"{site.name}.loc": loc, f"{site.name}.log_diag": np.log(np.diag(chol)),
                   f"{site.name}.tril": np.tril(chol, -1)}  # fmt: skip
            return FittedGuide(problem, "full_rank", phi)
    return None
