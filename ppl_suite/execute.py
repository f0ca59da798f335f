"""One unit of work: a cell fits a guide with a backend, then evaluates it; a problem unit runs the
guide-free estimators of one problem. Pure: no files written.

    log p(x) = ELBO + KL(q || p(z | x))

Each cell reports the three terms and the residual log p(x) - ELBO - KL in units of its noise,
sqrt(SE_ELBO^2 + SE_KL^2 + floor^2), the floor being the float64 rounding of the terms
(``estimators.rounding``): ~N(0, 1) when every number is right, even for q = the exact posterior.

The evaluation is the estimators' own: the same functions, each on its own random stream of the cell
seed (``estimators.streams``), with one ``EvaluationCache`` per cell for what several of them share,
so the ``elbo`` column and the ``kl_identity`` plug-in are one computation, the residual and gap
columns are the ``identity`` and ``optimization_gap`` plug-ins' numbers, and IS, IWAE and PSIS share
their weights. A model without an oracle is measured against its NUTS reference (``reference_of``):
KL = the reference's AIS log p(x) - ELBO, and the plug-ins that compare q with reference draws.

A ``ProblemUnit`` runs the guide-free estimators of one problem once (``execute_problem``); a cell of
a model with learned theta runs them itself, at its fitted theta. Every estimator's result is a row of
the long estimates table (``schema.estimate_record``); column names come from ``ppl_suite.schema``.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from dataclasses import asdict
from typing import Any

import numpy as np

from ppl_suite import backends, estimators, schema
from ppl_suite.cell import Cell, ProblemUnit, Record, Unit
from ppl_suite.checks import CONVERGED_GAP
from ppl_suite.conformance import DRAWS, log_joint_conformance, sources_for
from ppl_suite.estimate import Estimate
from ppl_suite.estimators.cache import EvaluationCache
from ppl_suite.estimators.elbo import elbo
from ppl_suite.estimators.identity import identity_terms
from ppl_suite.estimators.kl import (
    kl_identity,
    kl_monte_carlo,
    kl_reference,
)
from ppl_suite.estimators.optimization_gap import optimization_gap
from ppl_suite.estimators.streams import stream_seed
from ppl_suite.problem import Problem
from ppl_suite.spec import Latents
from ppl_suite.targets import GuideDensity, Target
from ppl_suite.targets.build import target_for
from ppl_suite.targets.fitted_guide import FittedGuide
from ppl_suite.targets.reference_posterior import ReferencePosterior
from ppl_suite.training_curve import training_curve

NO_REFERENCE = "no reference: "  # how reference_of starts the line when none could be built
MARGINALS = 6  # latent coordinates whose draws are kept for the report's marginal plots
MARGINAL_DRAWS = 4000
TRAINING_CURVE_SAMPLES = 2000  # Monte Carlo draws per ELBO along the training curve


def execute(unit: Unit) -> Record:
    """Run one unit of work (a Cell or a ProblemUnit); any exception or non-finite result becomes a
    failed/diverged row, never a raise."""
    if isinstance(unit, ProblemUnit):
        return execute_problem(unit)
    return execute_cell(unit)


def execute_cell(cell: Cell) -> Record:
    """Fit the cell's guide, evaluate it, run its estimators; φ and θ go into its artifacts."""
    start = time.perf_counter()
    row: dict[str, Any] = {
        **cell.identity(),
        **{f"{schema.SVI_PREFIX}{k}": v for k, v in asdict(cell.svi).items()},
    }
    losses, artifacts, estimated = np.empty(0), {}, []
    try:
        problem = Problem.build(cell.model, cell.data_seed, dict(cell.overrides))
        fit = backends.get(cell.backend).fit(problem, cell.guide, cell.svi, cell.seed)
        losses = fit.losses
        artifacts = schema.fitted_arrays(fit.phi, fit.theta)
        row.update(_fit_columns(fit))
        if not np.all(np.isfinite(fit.losses)) or not all(np.all(np.isfinite(v)) for v in fit.phi.values()):
            row.update(
                {
                    schema.STATUS: schema.DIVERGED,
                    schema.ERROR: "non-finite loss or guide parameters during SVI",
                }
            )
        else:
            fitted = problem.with_params(fit.theta)
            reference, row[schema.REFERENCE] = reference_of(problem)
            if row[schema.REFERENCE].startswith(NO_REFERENCE):  # nothing to measure the fit against
                raise RuntimeError(row[schema.REFERENCE])
            target, guide, cache = (
                target_for(fitted, reference),
                FittedGuide(fitted, fit.guide, dict(fit.phi)),
                EvaluationCache(),
            )
            columns, drawn = evaluate(fitted, target, guide, cell.eval_samples, cell.seed, cache)
            columns |= conformance_columns(fitted, guide, cell.seed, sources_for(cell.backend))
            artifacts |= drawn
            if problem.spec.learned and problem.spec.oracle is not None:
                artifacts |= training_artifacts(problem, fit, cell.eval_samples, cell.seed)
            for name, settings in cell.estimators:
                estimator = estimators.get(name, **dict(settings))
                # guide-free estimators listed in a cell (learned theta) run at its fitted theta, seeded
                # by the data seed as a problem unit would be
                seed = cell.seed if estimator.uses_guide else cell.data_seed
                estimated.append(
                    run_estimator(estimator, target, guide, seed, cache, cell.key, schema.SCOPE_CELL)
                )
            row.update(columns, **{schema.STATUS: schema.OK, schema.ERROR: ""})
    except Exception as error:  # a failing cell is recorded, never raised: the matrix goes on
        row.update({schema.STATUS: schema.FAILED, schema.ERROR: _failure(error)})
    row[schema.WALL_SECONDS] = time.perf_counter() - start
    return Record(row, losses, artifacts, estimated)


def execute_problem(unit: ProblemUnit) -> Record:
    """The guide-free estimators of one problem, each once, on its data seed's stream; the row carries
    the exact log p(x) where the model has an oracle."""
    start = time.perf_counter()
    row: dict[str, Any] = {**unit.identity(), schema.LOG_EVIDENCE: math.nan}
    estimated = []
    try:
        problem = Problem.build(unit.model, unit.data_seed, dict(unit.overrides))
        target = target_for(problem)
        if target.exact is not None:
            row[schema.LOG_EVIDENCE] = target.exact.log_evidence
        for name, settings in unit.estimators:
            estimator = estimators.get(name, **dict(settings))
            estimated.append(
                run_estimator(estimator, target, None, unit.data_seed, None, unit.key, schema.SCOPE_PROBLEM)
            )
        row.update({schema.STATUS: schema.OK, schema.ERROR: ""})
    except Exception as error:  # recorded like a cell's failure
        row.update({schema.STATUS: schema.FAILED, schema.ERROR: _failure(error)})
    row[schema.WALL_SECONDS] = time.perf_counter() - start
    return Record(row, np.empty(0), {}, estimated)


def reference_of(problem: Problem) -> tuple[ReferencePosterior | None, str]:
    """The NUTS reference of a model without an oracle (``ppl_suite.references``: built once per
    problem, cached on disk and shared by every cell and later run), and one line describing it or
    saying why there is none. Models with an oracle, or with learned theta (the posterior moves with
    each fit), get none."""
    if problem.spec.oracle is not None or problem.spec.learned:
        return None, ""
    from ppl_suite.references import reference_for  # deferred: ArviZ and NUTS, only for these models

    try:
        reference = reference_for(problem)
    except Exception as error:  # a failed gate or sampler: the fit and its ELBO still stand
        return None, f"{NO_REFERENCE}{type(error).__name__}: {error}"
    return ReferencePosterior.of(reference), ReferencePosterior.describe(reference)


def _failure(error: Exception) -> str:
    return f"{type(error).__name__}: {error}\n{traceback.format_exc()}"


def conformance_columns(
    problem: Problem, guide: GuideDensity, seed: int, sources: tuple[str, ...]
) -> dict[str, Any]:
    """The largest disagreement between the model's log-joint implementations (``conformance``) at
    draws of the fitted guide, or of the exact posterior when the guide samples nothing."""
    rng_seed = stream_seed(seed, "conformance")
    if not guide.samples_nothing:
        latents = guide.sample(rng_seed, DRAWS)
    elif (exact := problem.exact()) is not None:
        latents = exact.sample(np.random.default_rng(rng_seed), DRAWS)
    else:
        return {schema.LOG_JOINT_MAX_DIFF: math.nan, schema.LOG_JOINT_PAIR: ""}
    result = log_joint_conformance(problem, latents, sources)
    return {schema.LOG_JOINT_MAX_DIFF: result.max_difference, schema.LOG_JOINT_PAIR: result.pair}


def _fit_columns(fit: backends.Fit) -> dict[str, Any]:
    library = fit.library_elbo
    return {
        schema.COMPILE_SECONDS: fit.compile_seconds,
        schema.FIT_SECONDS: fit.run_seconds,
        schema.STEPS_PER_SECOND: fit.steps_per_second,
        schema.FINAL_LOSS: float(np.mean(fit.losses[-max(len(fit.losses) // 10, 1) :])),
        schema.LIBRARY_ELBO: library.value if library else math.nan,
        schema.LIBRARY_ELBO_SE: library.se if library else math.nan,
        schema.DRAWS_PATH: fit.draws_path,
    }


def _empty_columns() -> dict[str, Any]:
    nan = math.nan
    return {
        schema.ELBO: nan,
        schema.ELBO_SE: nan,
        schema.ELBO_SECONDS: nan,
        schema.ELBO_RELIABILITY: "",
        schema.LOG_EVIDENCE: nan,
        schema.LOG_EVIDENCE_SE: nan,
        schema.KL: nan,
        schema.KL_SE: nan,
        schema.KL_RELIABILITY: "",
        schema.KL_METHOD: "",
        schema.KL_ANALYTIC: nan,
        schema.KL_MC: nan,
        schema.KL_MC_SE: nan,
        schema.KL_IDENTITY: nan,
        schema.RESIDUAL_SE: nan,
        schema.RESIDUAL_FLOOR: nan,
        schema.KL_FAMILY_MIN: nan,
        schema.OPTIMIZATION_GAP: nan,
        schema.CONVERGED: None,
        schema.DRAW_LABELS: "[]",
    }


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
        return _evaluate_enumerated(target, guide, n, seed, out), {}
    estimate = elbo(target, guide, n, seed, cache)
    out |= _elbo_columns(estimate)
    labels, q_draws = marginal_draws(problem, guide.sample(stream_seed(seed, "q_draws"), MARGINAL_DRAWS))
    out[schema.DRAW_LABELS] = json.dumps(labels)
    artifacts = {schema.Q_DRAWS: q_draws}
    if exact is None:
        if target.reference is not None:
            out |= _reference_columns(estimate, target.reference)
            draws = target.reference.draws
            n = len(next(iter(draws.values())))
            every = np.linspace(0, n - 1, min(n, MARGINAL_DRAWS)).astype(int)  # all chains, evenly
            posterior = {k: np.asarray(v)[every] for k, v in draws.items()}
            artifacts[schema.POSTERIOR_DRAWS] = marginal_draws(problem, posterior)[1]
        return out, artifacts
    rng = np.random.default_rng(stream_seed(seed, "posterior_draws"))
    artifacts[schema.POSTERIOR_DRAWS] = marginal_draws(problem, exact.sample(rng, MARGINAL_DRAWS))[1]
    terms = identity_terms(target, guide, n, seed, cache)  # the ELBO above, through the cache
    mc = kl_monte_carlo(guide, exact, n, seed, cache)
    kl = terms.kl
    out |= {
        schema.LOG_EVIDENCE: exact.log_evidence,
        schema.LOG_EVIDENCE_SE: 0.0,
        schema.KL: kl.value,
        schema.KL_SE: kl.se if kl.reliability == "reliable" else math.nan,
        schema.KL_RELIABILITY: kl.reliability,
        schema.KL_METHOD: terms.kl_method,
        schema.KL_ANALYTIC: kl.value if terms.kl_method == "analytic" else math.nan,
        schema.KL_MC: mc.value,
        schema.KL_MC_SE: mc.se,
        schema.KL_IDENTITY: kl_identity(estimate, exact.log_evidence).value,
    }
    out |= _residual_columns(terms.residual) | _gap_columns(target, guide.family, kl)
    return out, artifacts


def _reference_columns(elbo_: Estimate, reference: ReferencePosterior) -> dict[str, Any]:
    """Without an oracle: log p(x) from the reference's AIS and KL = that - ELBO (``kl_reference``)."""
    kl = kl_reference(elbo_, reference)
    se = reference.log_evidence_se
    return {
        schema.LOG_EVIDENCE: reference.log_evidence,
        schema.LOG_EVIDENCE_SE: se if se is not None else math.nan,
        schema.KL: kl.value,
        schema.KL_SE: kl.se if kl.reliability == "reliable" else math.nan,
        schema.KL_RELIABILITY: kl.reliability,
        schema.KL_METHOD: schema.KL_BY_REFERENCE,
    }


def _elbo_columns(estimate: Estimate) -> dict[str, Any]:
    return {
        schema.ELBO: estimate.value,
        schema.ELBO_SE: estimate.se,
        schema.ELBO_SECONDS: estimate.seconds,
        schema.ELBO_RELIABILITY: estimate.reliability,
    }


def _gap_columns(target: Target, family: str, kl: Estimate) -> dict[str, Any]:
    """The family's smallest KL, the optimization gap KL - that, and whether it is below CONVERGED_GAP."""
    family_min = target.family_minimum(family)
    if family_min is None:
        return {}
    gap = optimization_gap(kl, family_min).value
    return {
        schema.KL_FAMILY_MIN: family_min,
        schema.OPTIMIZATION_GAP: gap,
        schema.CONVERGED: bool(gap < CONVERGED_GAP),
    }


def _residual_columns(residual: Estimate) -> dict[str, float]:
    """residual_se = (log p(x) - ELBO - KL) / sqrt(SE_ELBO^2 + SE_KL^2 + floor^2), and the floor."""
    return {schema.RESIDUAL_SE: residual.extras["z"], schema.RESIDUAL_FLOOR: residual.extras["floor"]}


def _evaluate_enumerated(
    target: Target, guide: GuideDensity, n: int, seed: int, out: dict[str, Any]
) -> dict[str, Any]:
    """Enumeration: the ELBO and KL of the implied q summed exactly over the discrete states by the
    suite (``estimators.enumerated``), independently of the library's loss (kept as ``library_elbo``)."""
    exact = target.exact
    if exact is None:
        return out
    terms = identity_terms(target, guide, n, seed)  # exact sums: n and seed go unused
    out |= _elbo_columns(terms.elbo) | {
        schema.LOG_EVIDENCE: exact.log_evidence,
        schema.LOG_EVIDENCE_SE: 0.0,
        schema.KL: terms.kl.value,
        schema.KL_SE: terms.kl.se,
        schema.KL_RELIABILITY: terms.kl.reliability,
        schema.KL_METHOD: terms.kl_method,
        schema.KL_IDENTITY: exact.log_evidence - terms.elbo.value,
    }
    return out | _residual_columns(terms.residual) | _gap_columns(target, guide.family, terms.kl)


def run_estimator(
    estimator: estimators.Estimator,
    target: Target,
    guide: GuideDensity | None,
    seed: int,
    cache: EvaluationCache | None,
    key: str,
    scope: str,
) -> dict[str, Any]:
    """One estimator as a row of the estimates table for unit ``key``. A guide-based estimator sees the
    fitted ``guide`` and the cell's ``cache``; a guide-free one sees neither. A skip (``applies`` says
    why) or an error is recorded in the row and never fails the unit."""
    given = guide if estimator.uses_guide else None
    reason = estimator.applies(target, given)
    if reason is not None:
        return schema.unfinished_record(key, scope, estimator, schema.ESTIMATE_SKIPPED, reason)
    try:
        estimate = estimator.estimate(target, given, seed, cache if estimator.uses_guide else None)
    except Exception as error:  # one estimator failing leaves the fit and the other numbers standing
        return schema.unfinished_record(
            key, scope, estimator, schema.ESTIMATE_FAILED, f"{type(error).__name__}: {error}"
        )
    return schema.estimate_record(key, scope, estimator, estimate)


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
    return {schema.training_artifact(c): curve[c].to_numpy(dtype=float) for c in columns}


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
