"""Calibration of the suite's standard errors: is (estimate - exact) / SE a standard normal draw?

    ppl-suite calibrate --models normal_normal bayes_linreg ppca --replicates 200 --out results/calibration

Each estimator runs R times, each replicate with its own seed (the estimator draws from its own
stream of it), on fixed guides built from the oracle's exact Gaussian posterior N(m, S)
(``targets.exact_guide``):

    exact         q = N(m, S), the posterior itself
    slightly_off  q = N(m, 0.8^2 S): narrower in every direction, as VI's mode seeking makes guides
                  (PSIS k-hat about 1 - 0.8^2 = 0.36 in the limit of many draws)
    badly_off     q = N(m, 0.3^2 S): k-hat about 1 - 0.3^2 = 0.91 > 0.7, importance sampling breaks
    scaled_s      q = N(m, s^2 S), s = 0.9, 0.85, 0.75, 0.7: the k-hat range of fitted guides (0.4-0.9
                  at 10^5 draws, far above 1 - s^2 in many dimensions): medians 0.23, 0.56 and 0.65
                  on bayes_linreg (0.9, 0.75, 0.7; 0.45 at slightly_off), 0.39 and 0.60 on ppca
                  (0.9, 0.85; 0.79 at slightly_off)

in the model's Gaussian family that holds N(m, S) (full_rank, one Gaussian over every coordinate, where
the model declares it; else mean_field where S is diagonal). A guide regime's
``khat`` is its guide's PSIS k-hat from one run of 100 000 draws. Guide-free estimators
(AIS, BDMC, Laplace, the harmonic mean) run once per replicate on the model alone: regime "none".
The i-th name of ``SEED_BLOCKS`` (exact, slightly_off, badly_off, none, then the scaled_s) uses seeds
i R .. (i + 1) R - 1, so
its rows are independent of the other regimes' (with one seed for all, the ELBO's z's would be the
same numbers in every regime: for q = N(m, s^2 S) its terms are affine in |eps|^2 of the same eps).
The exact values, with d the latent dimension and s the scale factor:

    log p(x)                  the oracle's
    KL(q || p(z | x))         d/2 (s^2 - 1 - 2 log s)     (Gaussians of one mean, covariances s^2 S, S)
    KL(p(z | x) || q)         d/2 (1/s^2 - 1 + 2 log s)
    ELBO                      log p(x) - KL(q || p(z | x))

Models that learn theta are calibrated at their maximum-likelihood theta where their package declares
it in closed form (``at_maximum_likelihood``: PPCA's, Tipping and Bishop 1999), data seed 0.

Per model x estimator x regime, z_r = (estimate_r - exact) / SE_r over the replicates; if R z's are
i.i.d. N(0, 1), their sd s satisfies (R - 1) s^2 ~ chi^2(R - 1) and their mean ~ N(0, 1 / R), so
with probability ``level`` (default 0.99) each lies in

    s      in [sqrt(chi2_{(1-level)/2}(R - 1) / (R - 1)), sqrt(chi2_{(1+level)/2}(R - 1) / (R - 1))]
    mean   in [-z_{(1+level)/2} / sqrt(R), +z_{(1+level)/2} / sqrt(R)]     (one side only for a bound:
           a lower bound may sit below its exact value, an upper bound above)

Verdicts: "ok" when both hold, "fail: ..." otherwise. The replicates an estimator labels reliable are
judged, the others left out (``judged``), however many are labelled unreliable: a label is a promise
wherever it is given. When at least half are labelled unreliable the verdict reads "unreliable
(labelled in F of replicates; the N others ok)", or "fail: ..." when those N fail. A bound whose gap
to the truth is no SE (IWAE, ``GAP_NOT_AN_SE``) is never z-scored against the exact value: its SE is
judged about its own mean and the bound must hold (``bound_summary``).

Besides the table, every replicate of an estimator with z's is one row (``REPLICATE_COLUMNS``: value,
SE, the k-hat of its weights, label, z), and ``khat_table`` bins their z's by k-hat (``KHAT_BINS``):
count, z mean and sd of all and of those labelled reliable, with a verdict on the latter.
"approximation" (Laplace: its error in nats, no z), "diagnostic" (PSIS k-hat), and "exact" for an
estimator with SE 0 (the closed-form KL), whose errors must stay within 4 float64 rounding floors;
likewise "rounding-limited" where the replicates spread less than their own rounding floor (q = the
posterior: every draw gives the same number, so rounding, not sampling, sets the error).
Each verdict tests two statistics at ``level``: a correct estimator fails about 2 (1 - level) of its
rows by chance (2% at 0.99), so a table of m rows holds about 0.02 m chance failures.

Besides the registered estimators, ``pyro_trace_elbo`` and ``numpyro_trace_elbo``: each library's own
Trace_ELBO of the same guide (the function a backend declares as ``BackendInfo.library_elbo``), the
number a fit reports as ``library_elbo``.

This module computes; the study around it is ``ppl_suite.calibration`` (its settings, tables, plug-in,
report section and ``ppl-suite calibrate``, which writes the tables into a results folder, exports them
as DIR/calibration.csv, DIR/calibration_by_khat.csv, DIR/calibration_replicates.csv with the figure
DIR/calibration.png, prints them, and exits 0 when every verdict (rows and k-hat bins) is ok, labelled,
an approximation or a diagnostic, 3 when the replicates an estimator labels reliable fail).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from ppl_suite import backends, estimators, registry
from ppl_suite.backends.base import SVIConfig
from ppl_suite.calibration.tables import (
    BY_KHAT,
    CALIBRATION,
    COLUMNS,
    DEFAULT_REPLICATES,
    KHAT_COLUMNS,
    LEVEL,
    REPLICATE_COLUMNS,
    REPLICATES,
    failed,
)
from ppl_suite.estimate import Estimate
from ppl_suite.estimators import Estimator
from ppl_suite.estimators.cache import EvaluationCache
from ppl_suite.estimators.draws import guide_draws
from ppl_suite.estimators.rounding import labelled_by_floor, rounding_floor
from ppl_suite.estimators.streams import stream_seed
from ppl_suite.problem import Problem
from ppl_suite.targets import GuideDensity, Target
from ppl_suite.targets.build import target_for
from ppl_suite.targets.exact_guide import gaussian_family, gaussian_guide
from ppl_suite.targets.fitted_guide import FittedGuide

# guide sd / posterior sd; the scaled_* regimes put the PSIS k-hat of 10^5 draws where fitted guides
# put it (0.4-0.9): about 0.66 (0.7) and 0.55 (0.75) on bayes_linreg, 0.6-0.7 (0.9, 0.85) on ppca
REGIMES = {
    "exact": 1.0, "slightly_off": 0.8, "badly_off": 0.3,
    "scaled_0.9": 0.9, "scaled_0.85": 0.85, "scaled_0.75": 0.75, "scaled_0.7": 0.7,
}  # fmt: skip
NO_REGIME = "none"
# the i-th name draws seeds i R .. (i + 1) R - 1 (regimes added later come after "none", so the
# seeds of the first four never change)
SEED_BLOCKS = ("exact", "slightly_off", "badly_off", NO_REGIME, "scaled_0.9", "scaled_0.85", "scaled_0.75",
               "scaled_0.7")  # fmt: skip
MAGNITUDE_DRAWS = 256  # draws that size a library ELBO's terms, for its rounding floor
GAP_NOT_AN_SE = {"iwae"}  # bounds judged on one side only: their gap to the truth is no SE
DATA_SEED = 0
EXACT_TOLERANCE = 4  # rounding floors an SE-0 estimate may be off by
KHAT_DRAWS = 100_000  # draws of the one PSIS run that gives a regime its k-hat
KHAT_BINS = (0.5, 0.6, 0.7, 0.8, 0.9)  # edges of the k-hat bins of ``khat_table``

CALIBRATION_MODULE = "calibration"  # <model package>.calibration.at_maximum_likelihood(problem), optional


def at_maximum_likelihood(problem: Problem) -> Problem:
    """``problem`` at the maximum-likelihood theta its model declares in closed form (a function
    ``at_maximum_likelihood(problem)`` in the module ``calibration`` of the model's package: PPCA's,
    Tipping and Bishop 1999), else ``problem`` itself."""
    name = f"{problem.spec.module}.{CALIBRATION_MODULE}"
    try:
        found = problem.spec.module and importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a model defined in a module, not a package
        found = False
    return importlib.import_module(name).at_maximum_likelihood(problem) if found else problem


def calibration_problem(model: str) -> Problem:
    """The model on data seed 0, at its maximum-likelihood theta where the model declares it."""
    return at_maximum_likelihood(Problem.build(model, DATA_SEED))


@dataclass(frozen=True)
class LibraryELBO:
    """A library's own Trace_ELBO of a fixed guide, as an estimator (n particles, the library's SE)."""

    backend: str
    n: int = SVIConfig.eval_particles  # what a fit's library_elbo uses by default
    quantity: ClassVar[str] = "elbo"
    kind: ClassVar[str] = "unbiased"
    uses_guide: ClassVar[bool] = True

    @property
    def name(self) -> str:
        return f"{self.backend}_trace_elbo"

    def applies(self, target: Target, guide: GuideDensity | None) -> str | None:
        if not isinstance(guide, FittedGuide):
            return "needs a guide of a suite family (a FittedGuide)"
        if registry.implementation(guide.problem.spec.name, self.backend) is None:
            return f"model {guide.problem.spec.name!r} has no {self.backend} implementation"
        return None

    def estimate(
        self, target: Target, guide: GuideDensity | None, seed: int, cache: EvaluationCache | None = None
    ) -> Estimate:
        library_elbo = library_elbos()[self.backend]
        seed = stream_seed(seed, self.name)
        estimate = library_elbo(guide.problem, guide.family, guide.params, self.n, seed)
        # the library's terms are not returned: their magnitude from draws of the same guide
        return labelled_by_floor(estimate, guide_draws(target, guide, MAGNITUDE_DRAWS, seed).magnitude)


@functools.cache
def library_elbos() -> dict[str, Callable[..., Estimate]]:
    """Each backend's own ELBO of a fixed guide, ``library_elbo(problem, family, phi, n, seed)``, where
    its descriptor declares one (``BackendInfo.library_elbo``: Pyro's and NumPyro's Trace_ELBO)."""
    found = {}
    for name in backends.names():
        if (function := backends.info(name).load_library_elbo()) is not None:
            found[name] = function
    return found


def library_estimators() -> dict[str, LibraryELBO]:
    """The ``LibraryELBO`` of every backend with a ``library_elbo``, by estimator name."""
    return {e.name: e for e in (LibraryELBO(backend) for backend in library_elbos())}


def estimator_names() -> list[str]:
    return [*estimators.names(), *library_estimators()]


def get_estimator(name: str) -> Estimator:
    library = library_estimators()
    return library[name] if name in library else estimators.get(name)


def calibratable_models() -> list[str]:
    """Models whose exact posterior is Gaussian and held by one of their guide families."""
    return [m for m in registry.names() if gaussian_family(calibration_problem(m)) is not None]


# ---------------------------------------------------------------------------------------------------
# the acceptance intervals and verdicts


def sd_interval(replicates: int, level: float = LEVEL) -> tuple[float, float]:
    """The interval the sd (ddof 1) of R i.i.d. N(0, 1) draws falls in with probability ``level``:
    (R - 1) s^2 ~ chi^2(R - 1)."""
    if replicates < 2:
        raise ValueError(f"an sd needs at least 2 replicates, got {replicates}")
    dof = replicates - 1
    tail = (1 - level) / 2
    return (math.sqrt(stats.chi2.ppf(tail, dof) / dof), math.sqrt(stats.chi2.ppf(1 - tail, dof) / dof))


def mean_limit(replicates: int, level: float = LEVEL) -> float:
    """The half-width of the interval the mean of R i.i.d. N(0, 1) draws falls in with probability
    ``level``: z_{(1 + level) / 2} / sqrt(R)."""
    return float(stats.norm.ppf((1 + level) / 2) / math.sqrt(replicates))


def z_summary(z: np.ndarray) -> dict[str, float]:
    """Mean, sd (ddof 1) and the fractions beyond 2 and 3 of the z's."""
    z = np.asarray(z, dtype=float)
    if z.size == 0:
        return {
            "z_mean": math.nan,
            "z_sd": math.nan,
            "frac_abs_z_gt_2": math.nan,
            "frac_abs_z_gt_3": math.nan,
        }
    with np.errstate(invalid="ignore"):  # an infinite z (SE 0, error not 0) makes the sd NaN: a fail
        sd = float(np.std(z, ddof=1)) if z.size > 1 else math.nan
    return {
        "z_mean": float(np.mean(z)),
        "z_sd": sd,
        "frac_abs_z_gt_2": float(np.mean(np.abs(z) > 2)),
        "frac_abs_z_gt_3": float(np.mean(np.abs(z) > 3)),
    }


def calibration_verdict(z: np.ndarray, kind: str = "unbiased", level: float = LEVEL) -> str:
    """The verdict on R z's: "ok" when their sd lies in ``sd_interval`` and their mean within
    ``mean_limit`` (only the side a bound may not cross for a lower_bound / upper_bound ``kind``);
    else "fail: " and why."""
    z = np.asarray(z, dtype=float)
    if z.size < 2:
        return f"fail: {z.size} replicate(s) to judge, need 2"
    summary = z_summary(z)
    low, high = sd_interval(z.size, level)
    limit = mean_limit(z.size, level)
    reasons = []
    if not low <= summary["z_sd"] <= high:  # NaN (an infinite z) fails too
        reasons.append(f"z_sd {summary['z_sd']:.3g} outside [{low:.2f}, {high:.2f}]")
    mean = summary["z_mean"]
    # A bound whose gap is not a standard error (IWAE) may sit on its side of the truth by any number
    # of SEs; AIS and BDMC, though bounds in expectation, are biased by only about SE^2 / 2 and are
    # judged on both sides like any estimator whose SE measures its error.
    if not mean <= limit and kind != "upper_bound":
        reasons.append(f"z_mean {mean:+.3g} above +{limit:.2f}")
    if not mean >= -limit and kind != "lower_bound":
        reasons.append(f"z_mean {mean:+.3g} below -{limit:.2f}")
    return "ok" if not reasons else "fail: " + "; ".join(reasons)


# ---------------------------------------------------------------------------------------------------
# regimes and exact values


@dataclass(frozen=True)
class Regime:
    """A fixed guide (None for guide-free estimators) and the exact value of each quantity under it."""

    name: str
    guide: FittedGuide | None
    exact: dict[str, float]
    kl_floor: float  # float64 rounding floor of a closed-form Gaussian KL under this guide


def regimes(problem: Problem) -> list[Regime]:
    """The three guide regimes of ``problem`` (see the module docstring)."""
    exact = problem.exact()
    family = gaussian_family(problem)
    if exact is None or family is None:
        raise ValueError(f"model {problem.spec.name!r}: no guide family holds an exact Gaussian posterior")
    d = exact.covariance().shape[0]
    log_det = abs(np.linalg.slogdet(exact.covariance())[1])
    out = []
    for name, s in REGIMES.items():
        kl = 0.5 * d * (s**2 - 1 - 2 * math.log(s))
        values = {
            "log_evidence": exact.log_evidence,
            "kl_to_posterior": kl,
            "kl_from_posterior": 0.5 * d * (1 / s**2 - 1 + 2 * math.log(s)),
            "elbo": exact.log_evidence - kl,
            "identity_residual": 0.0,
            "optimization_gap": kl,  # the family holds the posterior: its smallest KL is 0
        }
        # a closed-form KL adds log dets of both Gaussians, a trace and the dimension
        floor = rounding_floor(log_det, log_det + 2 * d * abs(math.log(s)), d * s**2, d)
        out.append(Regime(name, gaussian_guide(problem, family, s), values, floor))
    return out


def guide_free_regime(problem: Problem) -> Regime:
    return Regime(NO_REGIME, None, {"log_evidence": problem.exact().log_evidence}, math.nan)


# ---------------------------------------------------------------------------------------------------
# running and summarizing


def run_replicates(
    target: Target, regime: Regime, chosen: Sequence[Estimator], seeds: Sequence[int]
) -> dict[str, list[Estimate]]:
    """Every estimator of ``chosen`` at each seed; one EvaluationCache per replicate, as one cell's."""
    results: dict[str, list[Estimate]] = {e.name: [] for e in chosen}
    for seed in seeds:
        cache = EvaluationCache()
        for estimator in chosen:
            results[estimator.name].append(estimator.estimate(target, regime.guide, seed, cache))
    return results


def summarize(
    estimator: Estimator, regime: Regime, results: list[Estimate], level: float = LEVEL
) -> dict[str, object]:
    """One row of the calibration table (``COLUMNS`` but model and khat)."""
    exact = regime.exact.get(estimator.quantity, math.nan)
    value = np.array([r.value for r in results], dtype=float)
    se = np.array([r.se for r in results], dtype=float)
    unreliable = np.array([r.reliability == "unreliable" for r in results])
    row: dict[str, object] = {
        "estimator": estimator.name,
        "regime": regime.name,
        "replicates": len(results),
        "fraction_unreliable": float(unreliable.mean()),
        "exact": exact,
        "mean_estimate": float(np.mean(value)),
        "mean_se": float(np.mean(se)),
        "error_nats": float(np.mean(value) - exact),
        "seconds": float(np.mean([r.seconds for r in results])),
    }
    floors = [r.extras.get("floor", r.extras.get("rounding_floor")) for r in results]
    verdict = _verdict_without_z(estimator, value, se, exact, floors, regime.kl_floor)
    if verdict is not None:
        return row | {"judged": 0, **z_summary(np.array([]))} | {"verdict": verdict}
    if estimator.name in GAP_NOT_AN_SE:
        return row | bound_summary(estimator.kind, value, se, exact, unreliable, level)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (value - exact) / se
    return row | z_verdict(z, unreliable, level)


def _verdict_without_z(
    estimator: Estimator,
    value: np.ndarray,
    se: np.ndarray,
    exact: float,
    floors: list[float | None],
    kl_floor: float,
) -> str | None:
    """The verdict on replicates judged without z's: a diagnostic, an approximation, values whose
    spread is below their rounding floor, an SE-0 closed form; None for the others."""
    if estimator.kind == "diagnostic":
        return f"diagnostic (median {np.median(value):.2f})"
    if estimator.kind == "approximation":
        spread = np.max(np.abs(value - exact))
        return f"approximation (error {np.mean(value) - exact:+.2g} nats, max |error| {spread:.2g})"
    if all(f is not None for f in floors) and np.std(value) <= np.mean(floors):
        # float64 rounding, not sampling, sets the error (q = the posterior: every draw gives the same
        # number), so the replicates' spread says nothing about the SE: judged like an SE-0 value
        worst, floor = float(np.max(np.abs(value - exact))), float(np.max(floors))
        floors_text = f"{EXACT_TOLERANCE} rounding floors {floor:.2g}"
        if worst <= EXACT_TOLERANCE * floor:
            return f"rounding-limited (max |error| {worst:.2g} <= {floors_text})"
        return f"fail: off by {worst:.3g} nats with no sampling spread, beyond {floors_text}"
    if estimator.kind == "exact" or bool(np.all(se == 0)):  # a closed form in every replicate
        worst = float(np.max(np.abs(value - exact)))
        floors_text = f"{EXACT_TOLERANCE} rounding floors {kl_floor:.2g}"
        if worst <= EXACT_TOLERANCE * kl_floor:
            return f"exact (max |error| {worst:.2g} <= {floors_text})"
        return f"fail: an SE-0 value off by {worst:.3g} nats, beyond {floors_text}"
    return None


def z_verdict(z: np.ndarray, unreliable: np.ndarray, level: float) -> dict[str, object]:
    """The z columns and the verdict of replicates with z's: those labelled reliable are judged
    (``calibration_verdict``) however many others are labelled unreliable, since a label must be
    calibrated wherever it is given; "unreliable" when fewer than two, or at least half, are labelled."""
    fraction = float(unreliable.mean())
    reliable = z[~unreliable]
    judged = reliable if reliable.size >= 2 else z
    labelled_text = f"labelled unreliable in {fraction:.0%} of replicates"
    if reliable.size < 2:
        verdict = f"unreliable (labelled in {fraction:.0%} of replicates)"
    else:
        verdict = calibration_verdict(reliable, "unbiased", level)
        if failed(verdict) and fraction > 0:
            verdict = f"{verdict} (the {reliable.size} labelled reliable; {labelled_text})"
        elif fraction >= 0.5:
            verdict = f"unreliable (labelled in {fraction:.0%} of replicates; the {reliable.size} others ok)"
    low, high = sd_interval(max(judged.size, 2), level)
    return z_summary(judged) | {
        "judged": int(reliable.size),
        "verdict": verdict,
        "z_sd_low": low,
        "z_sd_high": high,
        "z_mean_limit": mean_limit(max(judged.size, 1), level),
    }


def bound_summary(
    kind: str, value: np.ndarray, se: np.ndarray, exact: float, unreliable: np.ndarray, level: float
) -> dict[str, object]:
    """The verdict on a bound whose gap to the truth is not an SE (IWAE): its SE is judged about the
    bound's own mean, z_r = (estimate_r - mean estimate) / SE_r (sd in ``sd_interval``), and the bound
    must hold: mean estimate - exact within ``mean_limit`` mean SEs on its side. No z against the
    exact value is formed (z_mean NaN): the gap is ``error_nats``, in nats."""
    centred = (value - value.mean()) / se
    low, high = sd_interval(max(value.size, 2), level)
    limit = mean_limit(max(value.size, 1), level)
    summary = z_summary(centred)
    reasons = []
    if not low <= summary["z_sd"] <= high:
        reasons.append(f"z_sd about the bound's mean {summary['z_sd']:.3g} outside [{low:.2f}, {high:.2f}]")
    crossing = (value.mean() - exact) / se.mean() * (1 if kind == "lower_bound" else -1)
    if not crossing <= limit:
        reasons.append(f"the bound crosses log p(x) by {crossing:.3g} mean SEs (limit {limit:.2f})")
    gap = f"bound, {value.mean() - exact:+.3g} nats from the exact value, SE calibrated about its mean"
    return summary | {
        "z_mean": math.nan,
        "judged": int(value.size),
        "verdict": "fail: " + "; ".join(reasons) if reasons else f"ok ({gap})",
        "z_sd_low": low,
        "z_sd_high": high,
        "z_mean_limit": limit,
        "fraction_unreliable": float(unreliable.mean()),
    }


def not_applicable(estimator: Estimator, regime: str, reason: str) -> dict[str, object]:
    return {
        "estimator": estimator.name,
        "regime": regime,
        "replicates": 0,
        "judged": 0,
        "verdict": f"not applicable: {reason}",
    }


def regime_khat(target: Target, guide: GuideDensity, seed: int) -> float:
    """The guide's PSIS k-hat as importance proposal, from KHAT_DRAWS draws."""
    return estimators.get("psis", n=KHAT_DRAWS).estimate(target, guide, seed).value


def replicate_rows(
    estimator: Estimator, regime: Regime, results: list[Estimate], seeds: Sequence[int]
) -> list[dict[str, object]]:
    """One row per replicate (``REPLICATE_COLUMNS`` but model): its estimate, SE, k-hat (NaN where the
    estimator has none), label and z; for a bound whose gap is not an SE (``GAP_NOT_AN_SE``) z is taken
    about the regime's mean estimate, never about the exact value (``bound_summary``)."""
    exact = regime.exact.get(estimator.quantity, math.nan)
    value = np.array([r.value for r in results], dtype=float)
    centre = float(np.mean(value)) if estimator.name in GAP_NOT_AN_SE else exact
    rows = []
    for seed, result, v in zip(seeds, results, value, strict=True):
        with np.errstate(divide="ignore", invalid="ignore"):
            z = float((v - centre) / np.float64(result.se))
        rows.append(
            {
                "estimator": estimator.name,
                "regime": regime.name,
                "seed": int(seed),
                "value": float(v),
                "se": float(result.se),
                "k_hat": float(result.extras.get("k_hat", math.nan)),
                "reliable": result.reliability != "unreliable",
                "exact": exact,
                "z": z,
                "z_about": "regime mean" if estimator.name in GAP_NOT_AN_SE else "exact",
            }
        )
    return rows


def calibrate_regime(
    target: Target,
    regime: Regime,
    group: Sequence[Estimator],
    seeds: Sequence[int],
    level: float = LEVEL,
    replicates: list[dict[str, object]] | None = None,
) -> list[dict[str, object]]:
    """The rows of one regime (``COLUMNS`` but model): each estimator of ``group`` at every seed, and
    for a guide regime its k-hat (``regime_khat`` at the first seed); the replicates' own rows
    (``replicate_rows``) are appended to ``replicates`` when given."""
    reasons = {e.name: e.applies(target, regime.guide) for e in group}
    running = [e for e in group if reasons[e.name] is None]
    results = run_replicates(target, regime, running, seeds)
    if replicates is not None:
        for estimator in running:
            if estimator.kind not in ("diagnostic", "approximation", "exact"):
                replicates += replicate_rows(estimator, regime, results[estimator.name], seeds)
    khat = math.nan if regime.guide is None else regime_khat(target, regime.guide, seeds[0])
    rows = []
    for estimator in group:
        reason = reasons[estimator.name]
        if reason is not None:
            rows.append(not_applicable(estimator, regime.name, reason))
        else:
            rows.append(summarize(estimator, regime, results[estimator.name], level) | {"khat": khat})
    return rows


def calibrate(
    models: Sequence[str],
    chosen: Sequence[Estimator],
    replicates: int = DEFAULT_REPLICATES,
    level: float = LEVEL,
    progress: Callable[[str], None] = lambda line: None,
    record: list[dict[str, object]] | None = None,
) -> pd.DataFrame:
    """The calibration table: one row per model x estimator x regime (``COLUMNS``); one row per
    replicate (``REPLICATE_COLUMNS``) is appended to ``record`` when given."""
    rows = []
    for model in models:
        problem = calibration_problem(model)
        target = target_for(problem)
        guided = [e for e in chosen if e.uses_guide]
        free = [e for e in chosen if not e.uses_guide]
        plan = [(r, guided) for r in regimes(problem)] if guided else []
        if free:
            plan.append((guide_free_regime(problem), free))
        for regime, group in plan:
            start = time.perf_counter()
            index = SEED_BLOCKS.index(regime.name)
            seeds = range(index * replicates, (index + 1) * replicates)
            own: list[dict[str, object]] = []
            rows += [
                {"model": model} | row for row in calibrate_regime(target, regime, group, seeds, level, own)
            ]
            if record is not None:
                record += [{"model": model} | row for row in own]
            progress(
                f"{model} {regime.name}: {len(group)} estimators x {replicates} replicates in "
                f"{time.perf_counter() - start:.1f} s"
            )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def khat_bin(k_hat: float) -> str:
    """The ``KHAT_BINS`` interval [low, high) that holds ``k_hat`` ("none" for NaN)."""
    if math.isnan(k_hat):
        return "none"
    index = int(np.searchsorted(KHAT_BINS, k_hat, side="right"))
    edges = [-math.inf, *KHAT_BINS, math.inf]
    return f"[{edges[index]:g}, {edges[index + 1]:g})"


def khat_table(replicates: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """The z's of the replicates that have a k-hat, by model x estimator x k-hat bin (``KHAT_COLUMNS``):
    all of them (count, z mean, z sd), the fraction labelled reliable, and the z's of those labelled
    reliable with their verdict (``calibration_verdict``, on both sides: a label promises a
    calibrated SE at every k-hat). A bound whose z's are about its regime's mean (IWAE) gets no verdict
    per bin: a bin cuts across regimes, and k-hat correlates with the bound within one."""
    if replicates.empty:
        return pd.DataFrame(columns=list(KHAT_COLUMNS))
    have = replicates[np.isfinite(replicates["k_hat"].astype(float))].copy()
    have["khat_bin"] = have["k_hat"].map(khat_bin)
    rows = []
    for (model, name, khat_range), group in have.groupby(["model", "estimator", "khat_bin"], sort=False):
        z = group["z"].to_numpy(dtype=float)
        reliable = z[group["reliable"].to_numpy(dtype=bool)]
        every, labelled = z_summary(z), z_summary(reliable)
        if group["z_about"].iloc[0] != "exact":
            # z about each regime's own mean: a k-hat bin cuts across regimes, which shifts the mean
            verdict = "bound: judged per regime, about its own mean (the calibration table)"
        elif reliable.size >= 2:
            verdict = calibration_verdict(reliable, "unbiased", level)
        else:
            verdict = f"{reliable.size} labelled reliable: nothing to judge"
        rows.append(
            {
                "model": model,
                "estimator": name,
                "khat_bin": khat_range,
                "z_about": group["z_about"].iloc[0],
                "count": int(z.size),
                "z_mean": every["z_mean"],
                "z_sd": every["z_sd"],
                "fraction_reliable": float(reliable.size / z.size),
                "reliable_count": int(reliable.size),
                "reliable_z_mean": labelled["z_mean"],
                "reliable_z_sd": labelled["z_sd"],
                "error_nats": float(np.mean(group["value"] - group["exact"])),
                "verdict": verdict,
            }
        )
    table = pd.DataFrame(rows, columns=list(KHAT_COLUMNS))
    return table.sort_values(["model", "estimator", "khat_bin"], kind="stable", ignore_index=True)


# ---------------------------------------------------------------------------------------------------
# the study's step


def calibration_tables(
    settings: Any, progress: Callable[[str], None] = lambda line: None
) -> dict[str, pd.DataFrame]:
    """The study's tables (``ppl_suite.calibration.tables``) for ``settings``
    (``ppl_suite.calibration.settings.Settings``: no models or estimators named means every one):
    the calibration table, one row per replicate and the k-hat table."""
    models = list(settings.models or calibratable_models())
    chosen = [get_estimator(name) for name in settings.estimators or estimator_names()]
    replicates: list[dict[str, object]] = []
    table = calibrate(models, chosen, settings.replicates, settings.level, progress, record=replicates)
    each = pd.DataFrame(replicates, columns=list(REPLICATE_COLUMNS))
    return {CALIBRATION: table, REPLICATES: each, BY_KHAT: khat_table(each, settings.level)}
