"""One cell of the comparison: fit a guide with a backend, then evaluate it. Pure: no files written.

    log p(x) = ELBO + KL(q || p(z | x))

Each cell reports the three terms and the residual log p(x) - ELBO - KL in units of its noise,
sqrt(SE_ELBO^2 + SE_KL^2 + floor^2), the floor being the float64 rounding of the terms
(``estimators.rounding``): ~N(0, 1) when every number is right, even for q = the exact posterior.

The evaluation is the estimators' own: the same functions, each on its own random stream of the cell
seed (``estimators.streams``), with one ``EvaluationCache`` per cell for what several of them share,
so the ``elbo`` column and the ``kl_identity`` plug-in are one computation, and IS, IWAE and PSIS
share their weights.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from dataclasses import asdict
from typing import Any

import numpy as np

from ppl_suite import backends, estimators
from ppl_suite.cell import Cell, Record
from ppl_suite.checks import CONVERGED_GAP
from ppl_suite.conformance import DRAWS, log_joint_conformance
from ppl_suite.estimate import Estimate
from ppl_suite.estimators.cache import EvaluationCache
from ppl_suite.estimators.elbo import elbo
from ppl_suite.estimators.enumerated import enumerated_terms
from ppl_suite.estimators.kl import kl_analytic, kl_family_minimum, kl_identity, kl_monte_carlo
from ppl_suite.estimators.rounding import rounding_floor
from ppl_suite.estimators.streams import stream_seed
from ppl_suite.problem import Problem
from ppl_suite.spec import ExactPosterior, Latents
from ppl_suite.targets import GuideDensity, Target
from ppl_suite.targets.build import target_for
from ppl_suite.targets.fitted_guide import FittedGuide
from ppl_suite.training_curve import training_curve

MARGINALS = 6  # latent coordinates whose draws are kept for the report's marginal plots
MARGINAL_DRAWS = 4000
TRAINING_CURVE_SAMPLES = 2000  # Monte Carlo draws per ELBO along the training curve


def execute(cell: Cell) -> Record:
    """Run one cell; any exception or non-finite result becomes a failed/diverged row, never a raise."""
    start = time.perf_counter()
    row: dict[str, Any] = {
        "key": cell.key,
        "model": cell.model,
        "backend": cell.backend,
        "guide": cell.guide,
        "data_seed": cell.data_seed,
        "seed": cell.seed,
        "params": json.dumps(dict(cell.overrides), sort_keys=True),
        **{f"svi_{k}": v for k, v in asdict(cell.svi).items()},
    }
    losses, artifacts = np.empty(0), {}
    try:
        problem = Problem.build(cell.model, cell.data_seed, dict(cell.overrides))
        fit = backends.get(cell.backend).fit(problem, cell.guide, cell.svi, cell.seed)
        losses = fit.losses
        row.update(_fit_columns(fit))
        if not np.all(np.isfinite(fit.losses)) or not all(np.all(np.isfinite(v)) for v in fit.phi.values()):
            row.update(status="diverged", error="non-finite loss or guide parameters during SVI")
        else:
            fitted = problem.with_params(fit.theta)
            target, guide, cache = (
                target_for(fitted),
                FittedGuide(fitted, fit.guide, dict(fit.phi)),
                EvaluationCache(),
            )
            columns, artifacts = evaluate(fitted, target, guide, cell.eval_samples, cell.seed, cache)
            columns |= conformance_columns(fitted, guide, cell.seed)
            if problem.spec.learned and problem.spec.oracle is not None:
                artifacts |= training_artifacts(problem, fit, cell.eval_samples, cell.seed)
            # guide-free estimates depend on the problem only, unless theta was learned by this fit
            problem_key = None if problem.spec.learned else (cell.model, cell.overrides, cell.data_seed)
            for name, settings in cell.estimators:
                estimated, arrays = run_estimator(target, guide, name, settings, cell, cache, problem_key)
                columns |= estimated
                artifacts |= arrays
            row.update(columns, status="ok", error="")
    except Exception as error:  # a failing cell is recorded, never raised: the matrix goes on
        row.update(status="failed", error=f"{type(error).__name__}: {error}\n{traceback.format_exc()}")
    row["wall_seconds"] = time.perf_counter() - start
    return Record(row, losses, artifacts)


def conformance_columns(problem: Problem, guide: GuideDensity, seed: int) -> dict[str, Any]:
    """The largest disagreement between the model's log-joint implementations (``conformance``) at
    draws of the fitted guide, or of the exact posterior when the guide samples nothing."""
    rng_seed = stream_seed(seed, "conformance")
    if not guide.samples_nothing:
        latents = guide.sample(rng_seed, DRAWS)
    elif (exact := problem.exact()) is not None:
        latents = exact.sample(np.random.default_rng(rng_seed), DRAWS)
    else:
        return {"log_joint_max_diff": math.nan, "log_joint_pair": ""}
    result = log_joint_conformance(problem, latents)
    return {"log_joint_max_diff": result.max_difference, "log_joint_pair": result.pair}


def _fit_columns(fit: backends.Fit) -> dict[str, Any]:
    library = fit.library_elbo
    return {
        "compile_seconds": fit.compile_seconds,
        "fit_seconds": fit.run_seconds,
        "steps_per_second": fit.steps_per_second,
        "final_loss": float(np.mean(fit.losses[-max(len(fit.losses) // 10, 1) :])),
        "library_elbo": library.value if library else math.nan,
        "library_elbo_se": library.se if library else math.nan,
    }


def _empty_columns() -> dict[str, Any]:
    nan = math.nan
    return dict(
        elbo=nan,
        elbo_se=nan,
        elbo_seconds=nan,
        elbo_reliability="",
        log_evidence=nan,
        kl=nan,
        kl_method="",
        kl_analytic=nan,
        kl_mc=nan,
        kl_mc_se=nan,
        kl_identity=nan,
        residual_se=nan,
        residual_floor=nan,
        kl_family_min=nan,
        optimization_gap=nan,
        converged=None,
        draw_labels="[]",
    )


def family_minimum(problem: Problem, family: str, exact: ExactPosterior) -> float | None:
    """The family's best KL: the model's own answer (``ModelSpec.kl_family_min``) first, else the
    generic closed forms of ``kl_family_minimum``."""
    if problem.spec.kl_family_min is not None:
        known = problem.spec.kl_family_min(family, problem.data, problem.params)
        if known is not None:
            return known
    return kl_family_minimum(problem.sites, family, exact)


def evaluate(
    problem: Problem,
    target: Target,
    guide: GuideDensity,
    n: int,
    seed: int = 0,
    cache: EvaluationCache | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Columns (ELBO, exact log p(x), KL by every route that applies, identity residual, optimization
    gap) and array artifacts (draws of q and of the exact posterior for the first few latent coordinates).

    Monte Carlo draws come from the cell's ``seed``, one stream per quantity: cells with different
    seeds have independent noise, so their residuals are independent draws; cells that differ only
    in backend share it (common random numbers), so sqrt(SE_a^2 + SE_b^2) overstates the noise of a
    backend difference and the agreement check errs on the side of not flagging."""
    out = _empty_columns()
    exact = target.exact
    if guide.samples_nothing:  # the library summed every latent out
        return _evaluate_enumerated(problem, target, guide, out), {}
    estimate = elbo(target, guide, n, seed, cache)
    out.update(
        elbo=estimate.value,
        elbo_se=estimate.se,
        elbo_seconds=estimate.seconds,
        elbo_reliability=estimate.reliability,
    )
    labels, q_draws = marginal_draws(problem, guide.sample(stream_seed(seed, "q_draws"), MARGINAL_DRAWS))
    out["draw_labels"] = json.dumps(labels)
    artifacts = {"q_draws": q_draws}
    if exact is None:
        return out, artifacts
    rng = np.random.default_rng(stream_seed(seed, "posterior_draws"))
    artifacts["posterior_draws"] = marginal_draws(problem, exact.sample(rng, MARGINAL_DRAWS))[1]
    analytic = kl_analytic(guide, exact)
    mc = kl_monte_carlo(guide, exact, n, seed, cache)
    identity = kl_identity(estimate, exact.log_evidence)
    kl = analytic if analytic is not None else mc
    out.update(
        log_evidence=exact.log_evidence,
        kl=kl.value,
        kl_method="analytic" if analytic is not None else "monte_carlo",
        kl_analytic=analytic.value if analytic is not None else math.nan,
        kl_mc=mc.value,
        kl_mc_se=mc.se,
        kl_identity=identity.value,
    )
    floor = rounding_floor(exact.log_evidence, estimate.value, estimate.extras["magnitude"], kl.value)
    out.update(_residual(exact.log_evidence, estimate, kl, floor))
    family_min = family_minimum(problem, guide.family, exact)
    if family_min is not None:
        gap = kl.value - family_min
        out.update(kl_family_min=family_min, optimization_gap=gap, converged=bool(gap < CONVERGED_GAP))
    return out, artifacts


def _residual(log_evidence: float, elbo: Estimate, kl: Estimate, floor: float) -> dict[str, float]:
    """residual_se = (log p(x) - ELBO - KL) / sqrt(SE_ELBO^2 + SE_KL^2 + floor^2), and the floor."""
    noise = math.sqrt(elbo.se**2 + kl.se**2 + floor**2)
    residual = log_evidence - elbo.value - kl.value
    return {"residual_se": residual / noise if noise > 0 else math.nan, "residual_floor": floor}


def _evaluate_enumerated(
    problem: Problem, target: Target, guide: GuideDensity, out: dict[str, Any]
) -> dict[str, Any]:
    """Enumeration: the ELBO and KL of the implied q summed exactly over the discrete states by the
    suite (``estimators.enumerated``), independently of the library's loss (kept as ``library_elbo``)."""
    exact = target.exact
    if exact is None:
        return out
    terms = enumerated_terms(target)
    elbo_, kl = terms.elbo, terms.kl
    out.update(
        elbo=elbo_.value,
        elbo_se=elbo_.se,
        elbo_seconds=elbo_.seconds,
        elbo_reliability=elbo_.reliability,
        log_evidence=exact.log_evidence,
        kl=kl.value,
        kl_method="enumerated",
        kl_identity=exact.log_evidence - elbo_.value,
    )
    out.update(_residual(exact.log_evidence, elbo_, kl, rounding_floor(exact.log_evidence, terms.magnitude)))
    family_min = family_minimum(problem, guide.family, exact)
    if family_min is not None:
        gap = kl.value - family_min
        out.update(kl_family_min=family_min, optimization_gap=gap, converged=bool(gap < CONVERGED_GAP))
    return out


def run_estimator(
    target: Target,
    guide: GuideDensity,
    name: str,
    settings: tuple[tuple[str, Any], ...],
    cell: Cell,
    cache: EvaluationCache,
    problem_key: tuple | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One estimator on the fitted guide: columns est_<name>[_se|_n_evals|_seconds|_kind|_quantity|
    _reliability|_diagnostic], scalar extras as columns est_<name>.<extra>, list extras as artifacts
    est_<name>.<extra>. A skip or an error is recorded in est_<name>_skipped / est_<name>_error and
    never fails the cell. Guide-based estimators draw from the cell seed's streams and share the
    cell's cache; guide-free ones (AIS, Laplace...) run on the data seed and, given a
    ``problem_key``, once per problem in a process, reused by the other cells of the same data."""
    prefix = f"est_{name}"
    estimator = estimators.get(name, **dict(settings))
    reason = estimator.applies(target, guide if estimator.uses_guide else None)
    if reason is not None:
        return {f"{prefix}_skipped": reason}, {}
    try:
        if estimator.uses_guide:
            estimate = estimator.estimate(target, guide, cell.seed, cache)
        elif problem_key is None:
            estimate = estimator.estimate(target, None, cell.data_seed)
        else:
            key = (*problem_key, name, settings)
            if key not in _PROBLEM_ESTIMATES:
                _PROBLEM_ESTIMATES[key] = estimator.estimate(target, None, cell.data_seed)
            estimate = _PROBLEM_ESTIMATES[key]
    except Exception as error:  # one estimator failing leaves the fit and the other numbers standing
        return {f"{prefix}_error": f"{type(error).__name__}: {error}"}, {}
    columns = {
        prefix: estimate.value,
        f"{prefix}_se": estimate.se,
        f"{prefix}_n_evals": estimate.n_evals,
        f"{prefix}_seconds": estimate.seconds,
        f"{prefix}_kind": estimator.kind,
        f"{prefix}_quantity": estimator.quantity,
        f"{prefix}_reliability": estimate.reliability,
        f"{prefix}_diagnostic": estimate.diagnostic,
    }
    arrays = {}
    for key, value in estimate.extras.items():
        if isinstance(value, (list, tuple, np.ndarray)):
            arrays[f"{prefix}.{key}"] = np.asarray(value, dtype=float)
        elif isinstance(value, (int, float, str, bool, np.generic)):
            columns[f"{prefix}.{key}"] = value
    return columns, arrays


_PROBLEM_ESTIMATES: dict[tuple, Estimate] = {}


def training_artifacts(problem: Problem, fit: backends.Fit, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """log p_theta(x), ELBO and KL at the fit's snapshots (learned theta: the ELBO rises through both)."""
    curve = training_curve(
        problem,
        fit.guide,
        fit.trajectory,
        n=min(n, TRAINING_CURVE_SAMPLES),
        seed=seed,
    )
    columns = ("step", "elbo", "elbo_se", "log_evidence", "kl", "kl_se")
    return {f"training.{c}": curve[c].to_numpy(dtype=float) for c in columns}


def marginal_draws(problem: Problem, latents: Latents) -> tuple[list[str], np.ndarray]:
    """The first MARGINALS latent coordinates (sites flattened in order) as labelled columns."""
    labels, columns = [], []
    for site in problem.sites:
        values = np.asarray(latents[site.name], dtype=float)
        flat = values.reshape(values.shape[0], -1)
        for position, index in enumerate(np.ndindex(*site.shape)):
            if len(labels) == MARGINALS:
                break
            labels.append(f"{site.name}[{','.join(map(str, index))}]" if index else site.name)
            columns.append(flat[:, position])
    return labels, np.stack(columns, axis=1)
