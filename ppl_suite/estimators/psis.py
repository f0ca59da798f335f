"""PSIS k-hat: is the guide good enough as an importance proposal for the posterior?

    w_s = p(x, z_s) / q(z_s),  z_s ~ q,  s = 1..S
    fit a generalized Pareto distribution to the M = ceil(min(S / 5, 3 sqrt(S))) largest w_s;
    k-hat = its shape parameter (Zhang and Stephens 2009 fit, weakly regularized towards 0.5).

    k-hat < 0.5          good: the weights have finite variance, q is close to p(z | x)
    0.5 <= k-hat < 0.7   ok: finite mean, IS estimates usable but noisy
    k-hat >= 0.7         unreliable: q misses mass of p(z | x); IS (and the fit) should not be trusted

Yao, Vehtari, Simpson and Gelman (2018), "Yes, but did it work?: Evaluating variational inference",
ICML; Vehtari, Simpson, Gelman, Yao and Gabry (2024), "Pareto smoothed importance sampling", JMLR.

The value is ArviZ's k-hat (``arviz.psislw``, reff = 1 for independent draws). It has no standard
error (SE is NaN, marking it as neither exact nor a mean). With ``cross_check`` the same weights
also go through Pyro's tail fit (``pyro.ops.stats.fit_generalized_pareto``, with the tail rule of
``pyro.infer.importance.psis_diagnostic``) and NumPyro's (``numpyro.infer.importance``, the k-hat
routine behind ``psis_diagnostic``); both public ``psis_diagnostic`` functions draw their own weights
from a model and a guide, so they are called here on their internals to compare like with like.
Extras also hold the PSIS estimate of log p(x): log mean of the smoothed, unnormalized weights.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ppl_suite.estimate import Estimate
from ppl_suite.estimators import need_guide, need_positive_int
from ppl_suite.estimators.importance import log_weights
from ppl_suite.estimators.weights import check_log_weights
from ppl_suite.fitted_guide import FittedGuide
from ppl_suite.numerics import log_mean_exp
from ppl_suite.problem import Problem
from ppl_suite.spec import ExactPosterior

GOOD, OK = 0.5, 0.7


def interpret(k_hat: float) -> str:
    """'good' (k < 0.5), 'ok' (0.5 <= k < 0.7) or 'unreliable' (k >= 0.7, or not a number)."""
    if not math.isfinite(k_hat) and k_hat != -math.inf:
        return "unreliable"
    return "good" if k_hat < GOOD else "ok" if k_hat < OK else "unreliable"


def arviz_psis(log_w: np.ndarray) -> tuple[np.ndarray, float]:
    """(smoothed unnormalized log weights, k-hat) by ``arviz.psislw`` with reff = 1."""
    import arviz as az

    log_w = check_log_weights(log_w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ warns when k-hat is high; the value says so already
        smoothed, k_hat = az.psislw(log_w.copy(), reff=1.0, normalize=False)
    return np.asarray(smoothed), float(k_hat)


def pyro_k_hat(log_w: np.ndarray) -> float:
    """k-hat as ``pyro.infer.importance.psis_diagnostic`` computes it, on the given weights."""
    import torch
    from pyro.ops.stats import fit_generalized_pareto

    log_w = torch.as_tensor(check_log_weights(log_w), dtype=torch.float64)
    log_w = torch.sort(log_w - log_w.max())[0]
    n = log_w.numel()
    cutoff = max(math.log(1.0e-15), float(log_w[-(math.ceil(min(0.2 * n, 3.0 * math.sqrt(n)))) - 1]))
    tail = log_w[log_w > cutoff]
    if tail.numel() < 10:
        return math.inf
    return float(fit_generalized_pareto(tail.exp() - math.exp(cutoff))[0])


def numpyro_k_hat(log_w: np.ndarray) -> float:
    """k-hat by the routine behind ``numpyro.infer.importance.psis_diagnostic``, on the given weights."""
    from numpyro.infer import importance

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(importance._psis_khat(check_log_weights(log_w)))


def psis_diagnostic(guide: FittedGuide, n: int = 10_000, seed: int = 0, cross_check: bool = True) -> Estimate:
    """k-hat of the guide as proposal (SE NaN); extras: interpretation, library k-hats, PSIS log p(x)."""
    need_guide("psis", guide)
    need_positive_int("psis", "n (the tail fit needs many draws)", n, minimum=100)
    start = time.perf_counter()
    log_w = log_weights(guide, n, seed)
    smoothed, k_hat = arviz_psis(log_w)
    extras = {
        "interpretation": interpret(k_hat),
        "psis_log_evidence": float(log_mean_exp(smoothed)),
        "thresholds": [GOOD, OK],
    }
    if cross_check:
        extras.update(pyro_k_hat=pyro_k_hat(log_w), numpyro_k_hat=numpyro_k_hat(log_w))
    return Estimate(k_hat, math.nan, n_evals=n, seconds=time.perf_counter() - start, extras=extras)


@dataclass(frozen=True)
class PSIS:
    """Plug-in: PSIS k-hat of the guide as importance proposal (a diagnostic, with interpretation)."""

    n: int = 10_000
    cross_check: bool = True
    name: ClassVar[str] = "psis"
    quantity: ClassVar[str] = "pareto_k"
    kind: ClassVar[str] = "diagnostic"
    uses_guide: ClassVar[bool] = True

    def __post_init__(self) -> None:
        need_positive_int(self.name, "n", self.n, minimum=100)

    def applies(self, problem: Problem, exact: ExactPosterior | None, guide: str | None = None) -> str | None:
        return None

    def estimate(
        self, problem: Problem, guide: FittedGuide | None, exact: ExactPosterior | None, seed: int = 0
    ) -> Estimate:
        return psis_diagnostic(need_guide(self.name, guide), self.n, seed, self.cross_check)


ESTIMATORS = (PSIS(),)
