"""ELBO, log p_theta(x) and KL(q || p_theta(z | x)) along a fit's training trajectory.

For every parameter snapshot (phi_c, theta_c) of ``Fit.trajectory``,

    log p_theta_c(x) = ELBO(phi_c, theta_c) + KL(q_phi_c || p_theta_c(z | x)),

with log p_theta_c(x) and the posterior exact from the model's oracle under theta_c
(``problem.with_params(theta_c)``), the KL closed form where the library registry has the pair and
Monte Carlo otherwise, and the ELBO by Monte Carlo, through the estimators' own functions and streams
(every snapshot uses the same streams of ``seed``: common random numbers along the curve).
When theta is learned, raising the ELBO moves both terms: log p_theta(x) goes up (theta approaches
maximum likelihood) and the KL goes down (q approaches
the posterior of the current theta). Without learned parameters log p(x) is constant and the ELBO rises
only through the KL.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ppl_suite import guides
from ppl_suite.estimators.elbo import elbo
from ppl_suite.estimators.kl import kl_to_posterior
from ppl_suite.problem import Problem
from ppl_suite.targets.build import target_for
from ppl_suite.targets.fitted_guide import FittedGuide

COLUMNS = ("step", "elbo", "elbo_se", "log_evidence", "kl", "kl_se", "kl_method")


def training_curve(
    problem: Problem,
    guide: str,
    trajectory: Mapping[str, Any],
    n: int = 10_000,
    seed: int = 0,
    include_start: bool = True,
) -> pd.DataFrame:
    """One row per snapshot: step, elbo, elbo_se, log_evidence, kl, kl_se (0 when closed form), kl_method.

    ``problem`` is the problem the fit started from: its params hold theta_0, and with
    ``include_start`` a first row at step 0 evaluates (phi_0, theta_0), phi_0 being the family's initial
    parameters. ``trajectory`` is ``Fit.trajectory``: {"step": (C,), "phi": {name: (C, ...)},
    "theta": {name: (C, ...)}}. ``n`` Monte Carlo draws per estimate; the ELBO uses ``seed`` and a Monte
    Carlo KL ``seed + 1``, so the two are independent and their SEs add in quadrature. log_evidence and
    kl are NaN for a model without an oracle. For an enumerating family (the guide samples nothing and
    the implied q is the exact posterior) ELBO = log p_theta(x) and KL = 0 exactly.
    """
    family = guides.get(guide)
    learned = problem.spec.learned
    snapshots: list[tuple[int, dict[str, np.ndarray], dict[str, np.ndarray]]] = []
    if include_start:
        phi0 = family.init_params(problem.sites, problem.data, problem.params)
        theta0 = {name: np.asarray(problem.params[name], dtype=float) for name in learned}
        snapshots.append((0, phi0, theta0))
    phis, thetas = trajectory.get("phi", {}), trajectory.get("theta", {})
    missing = sorted(set(learned) - set(thetas))
    if missing:
        raise ValueError(f"the trajectory lacks learned parameters {missing} of {problem.spec.name!r}")
    for c, step in enumerate(np.asarray(trajectory["step"])):
        snapshots.append(
            (
                int(step),
                {name: np.asarray(value[c]) for name, value in phis.items()},
                {name: np.asarray(thetas[name][c]) for name in learned},
            )
        )
    # a family without parameters samples nothing (enumeration); an autoguide's live in its library
    enumerated = not guides.is_autoguide(guide) and not family.init_params(
        problem.sites, problem.data, problem.params
    )
    rows = [
        _row(problem.with_params(theta), guide, phi, step, n, seed, enumerated)
        for step, phi, theta in snapshots
    ]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _row(
    problem: Problem, guide: str, phi: dict[str, np.ndarray], step: int, n: int, seed: int, enumerated: bool
) -> dict[str, Any]:
    exact = problem.exact()
    nan = math.nan
    if enumerated:
        value = nan if exact is None else exact.log_evidence
        kl = nan if exact is None else 0.0
        return dict(
            step=step, elbo=value, elbo_se=0.0, log_evidence=value, kl=kl, kl_se=0.0, kl_method="enumerated"
        )
    fitted = FittedGuide(problem, guide, phi)
    estimate = elbo(target_for(problem), fitted, n, seed)
    row = dict(
        step=step, elbo=estimate.value, elbo_se=estimate.se, log_evidence=nan, kl=nan, kl_se=nan, kl_method=""
    )
    if exact is None:
        return row
    kl, route = kl_to_posterior(fitted, exact, n, seed)
    row.update(log_evidence=exact.log_evidence, kl=kl.value, kl_se=kl.se, kl_method=route)
    return row
