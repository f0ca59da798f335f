"""How far q's posterior means and standard deviations are from a reference posterior's, per latent
coordinate, in units of the reference's posterior standard deviation (as Inference Gym reports them:
Sountsov, Radul and contributors 2020, "Inference Gym").

    mean error_j = (E_q[z_j] - E_ref[z_j]) / sd_ref[z_j]
    sd error_j   = sd_q[z_j] / sd_ref[z_j] - 1

in the constrained space. E_q and sd_q from n draws of q (the ``posterior_moments`` stream); E_ref
and sd_ref from the reference draws, whose Monte Carlo error counts its effective sample size
(``PosteriorReference.ess``, the smallest bulk or tail ESS over coordinates: conservative).
Standard errors by the delta method:

    SE(mean error_j)^2 = (var_q / n + var_ref / ess) / var_ref
    SE(sd_j)^2         ~= sd_j^2 (kurtosis_j - 1) / (4 m)      (m = n for q, ess for the reference)

The row's value is the coordinate with the largest |mean error| (named in ``extras``, with every
coordinate's errors and SEs), with that coordinate's SE. Being the worst of d, it is not a standard
normal draw even when q's means are right: with q = the reference it sits about sqrt(2 ln d) SE from 0
(2.1 SE at d = 10, 2.8 at d = 60), so read it against that, or read the per-coordinate errors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ppl_suite.estimate import Estimate
from ppl_suite.estimators import guide_reason, need_guide, need_positive_int
from ppl_suite.estimators.cache import EvaluationCache
from ppl_suite.estimators.coordinates import coordinate_names, coordinates
from ppl_suite.estimators.streams import stream_seed
from ppl_suite.targets import GuideDensity, PosteriorReference, Target

STREAM = "posterior_moments"


def _sd_and_se(values: np.ndarray, m: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-column sd and its delta-method SE with ``m`` effective draws."""
    sd = values.std(axis=0, ddof=1)
    centred = values - values.mean(axis=0)
    kurtosis = np.mean(centred**4, axis=0) / np.mean(centred**2, axis=0) ** 2  # m4 / m2^2
    return sd, sd * np.sqrt(np.maximum(kurtosis - 1.0, 0.0) / (4.0 * m))


def moment_errors(
    target: Target, guide: GuideDensity, reference: PosteriorReference, n: int = 10_000, seed: int = 0
) -> Estimate:
    """The largest standardized mean error over coordinates, with every coordinate's in ``extras``."""
    start = time.perf_counter()
    names = coordinate_names(target.sites)
    q = coordinates(target.sites, guide.sample(stream_seed(seed, STREAM), n))
    ref = coordinates(target.sites, reference.draws)
    ess = min(float(reference.ess), ref.shape[0])
    sd_q, sd_q_se = _sd_and_se(q, n)
    sd_ref, sd_ref_se = _sd_and_se(ref, ess)
    mean_error = (q.mean(axis=0) - ref.mean(axis=0)) / sd_ref
    mean_error_se = np.sqrt(sd_q**2 / n + sd_ref**2 / ess) / sd_ref
    sd_error = sd_q / sd_ref - 1.0
    sd_error_se = np.sqrt((sd_q_se / sd_ref) ** 2 + (sd_q * sd_ref_se / sd_ref**2) ** 2)
    worst = int(np.argmax(np.abs(mean_error)))
    per_coordinate = {
        name: {
            "mean_error": float(mean_error[j]),
            "mean_error_se": float(mean_error_se[j]),
            "sd_error": float(sd_error[j]),
            "sd_error_se": float(sd_error_se[j]),
        }
        for j, name in enumerate(names)
    }
    worst_sd = int(np.argmax(np.abs(sd_error)))
    return Estimate(
        value=float(mean_error[worst]),
        se=float(mean_error_se[worst]),
        n_evals=n,
        seconds=time.perf_counter() - start,
        extras={
            "coordinate": names[worst],
            "worst_sd_coordinate": names[worst_sd],
            "worst_sd_error": float(sd_error[worst_sd]),
            "worst_sd_error_se": float(sd_error_se[worst_sd]),
            "reference_ess": ess,
            "coordinates": per_coordinate,
        },
    )


@dataclass(frozen=True)
class PosteriorMoments:
    """Plug-in: q's standardized errors of posterior means and sds against the reference posterior."""

    n: int = 10_000
    name: ClassVar[str] = "posterior_moments"
    quantity: ClassVar[str] = "posterior_mean_error"
    kind: ClassVar[str] = "consistent"
    uses_guide: ClassVar[bool] = True

    def __post_init__(self) -> None:
        need_positive_int(self.name, "n (an sd needs two draws)", self.n, minimum=2)

    def applies(self, target: Target, guide: GuideDensity | None) -> str | None:
        if target.reference is None:
            return "needs a reference posterior (models without an oracle: `ppl-suite reference MODEL`)"
        return guide_reason(guide)

    def estimate(
        self, target: Target, guide: GuideDensity | None, seed: int, cache: EvaluationCache | None = None
    ) -> Estimate:
        return moment_errors(target, need_guide(self.name, guide), target.reference, self.n, seed)


ESTIMATORS = (PosteriorMoments(),)
