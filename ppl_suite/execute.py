"""One unit of work: a cell fits a guide with a backend, then evaluates it; a problem unit runs the
guide-free estimators of one problem. Pure: no files written.

    log p(x) = ELBO + KL(q || p(z | x))

Every number of a cell's evaluation is an estimator plug-in's row of the long estimates table: the
plug-ins of ``cell_columns.EVALUATION`` (ELBO, KL by every route that applies, the identity residual
log p(x) - ELBO - KL in units of its noise sqrt(SE_ELBO^2 + SE_KL^2 + floor^2), the optimization
gap), then the configured ones, each on its own random stream of the cell seed
(``estimators.streams``) with one ``EvaluationCache`` per cell for what several of them share (the
ELBO's draws serve ``elbo``, ``kl_identity``, ``identity`` and ``kl_reference``; IS, IWAE and PSIS
share their weights). The cell's evaluation columns are derived from those rows by
``cell_columns.evaluation_columns``, and nowhere else. A model without an oracle is measured against
its NUTS reference (``reference_of``): KL = the reference's AIS log p(x) - ELBO (``kl_reference``),
and the plug-ins that compare q with reference draws.

A ``ProblemUnit`` runs the guide-free estimators of one problem once (``execute_problem``); a cell of
a model with learned theta runs them itself, at its fitted theta. Column names come from
``ppl_suite.schema``.
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
from ppl_suite.cell_columns import EVALUATION, evaluation_columns
from ppl_suite.checks import CONVERGED_GAP as CONVERGED_GAP  # re-exported: the models' tests read it here
from ppl_suite.conformance import DRAWS, log_joint_conformance, sources_for
from ppl_suite.estimators.cache import EvaluationCache
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
            reference, row[schema.REFERENCE] = reference_of(problem)
            if row[schema.REFERENCE].startswith(NO_REFERENCE):  # nothing to measure the fit against
                raise RuntimeError(row[schema.REFERENCE])
            columns, drawn, estimated = evaluate_fit(cell, problem, fit, reference)
            artifacts |= drawn
            row.update(columns, **{schema.STATUS: schema.OK, schema.ERROR: ""})
    except Exception as error:  # a failing cell is recorded, never raised: the matrix goes on
        row.update({schema.STATUS: schema.FAILED, schema.ERROR: _failure(error)})
    row[schema.WALL_SECONDS] = time.perf_counter() - start
    return Record(row, losses, artifacts, estimated)


def evaluate_fit(
    cell: Cell, problem: Problem, fit: backends.Fit, reference: ReferencePosterior | None
) -> tuple[dict[str, Any], dict[str, np.ndarray], list[dict[str, Any]]]:
    """A finished fit's columns (the truth, the draws' labels, conformance and the evaluation columns
    derived from its estimates), arrays (draws; the training curve of learned θ) and rows of the
    estimates table (``evaluate``). Raises when an estimator of the evaluation raises."""
    fitted = problem.with_params(fit.theta)
    target, guide = target_for(fitted, reference), FittedGuide(fitted, fit.guide, dict(fit.phi))
    estimated = evaluate(cell, target, guide, EvaluationCache())
    labels, drawn = marginal_artifacts(fitted, target, guide, cell.seed)
    columns = {**truth_columns(target), schema.DRAW_LABELS: json.dumps(labels)}
    columns |= conformance_columns(fitted, guide, cell.seed, sources_for(cell.backend))
    if problem.spec.learned and problem.spec.oracle is not None:
        drawn |= training_artifacts(problem, fit, cell.eval_samples, cell.seed)
    return columns | evaluation_columns(estimated), drawn, estimated


def cell_estimators(cell: Cell) -> list[estimators.Estimator]:
    """The estimators a cell runs, each once: its evaluation (``cell_columns.EVALUATION``, each with
    the cell's evaluation samples as ``n`` where it has that setting), then the configured ones. A
    configured estimator of the evaluation is run there, its settings replacing the defaults."""
    configured = {name: dict(settings) for name, settings in cell.estimators}
    chosen: dict[str, dict[str, Any]] = {}
    for name in EVALUATION:
        samples = {"n": cell.eval_samples} if "n" in estimators.settings_of(estimators.get(name)) else {}
        chosen[name] = samples | configured.pop(name, {})
    chosen |= configured
    return [estimators.get(name, **settings) for name, settings in chosen.items()]


def evaluate(cell: Cell, target: Target, guide: GuideDensity, cache: EvaluationCache) -> list[dict[str, Any]]:
    """The cell's rows of the estimates table (``cell_estimators``), through its ``cache``.

    A guide-based estimator draws from the cell's ``seed``, one stream per quantity: cells with
    different seeds have independent noise, so their residuals are independent draws; cells that
    differ only in backend share it (common random numbers), so sqrt(SE_a^2 + SE_b^2) overstates the
    noise of a backend difference and the agreement check errs on the side of not flagging. A
    guide-free estimator listed in a cell (learned theta) runs at its fitted theta, seeded by the data
    seed as a problem unit would be. An estimator of the evaluation that raises fails the cell; any
    other is recorded as failed in its row."""
    rows = []
    for estimator in cell_estimators(cell):
        seed = cell.seed if estimator.uses_guide else cell.data_seed
        run = estimator_row if estimator.name in EVALUATION else run_estimator
        rows.append(run(estimator, target, guide, seed, cache, cell.key, schema.SCOPE_CELL))
    return rows


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
    from ppl_suite.references import stored_posterior  # deferred: only for these models

    try:
        reference = stored_posterior(problem)  # the draws and summary alone: no ArviZ in a worker
        if reference is None:
            from ppl_suite.references import reference_for  # ArviZ and NUTS: built, or found damaged

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


def truth_columns(target: Target) -> dict[str, float]:
    """What the cell is measured against, a fact of its problem rather than an estimate of its fit:
    the exact log p(x) at the fitted theta (SE 0), or without an oracle its NUTS reference's AIS
    estimate and SE (NaN when unreliable); NaN when there is neither."""
    if target.exact is not None:
        return {schema.LOG_EVIDENCE: target.exact.log_evidence, schema.LOG_EVIDENCE_SE: 0.0}
    if target.reference is not None:
        se = target.reference.log_evidence_se
        return {
            schema.LOG_EVIDENCE: target.reference.log_evidence,
            schema.LOG_EVIDENCE_SE: se if se is not None else math.nan,
        }
    return {schema.LOG_EVIDENCE: math.nan, schema.LOG_EVIDENCE_SE: math.nan}


def marginal_artifacts(
    problem: Problem, target: Target, guide: GuideDensity, seed: int
) -> tuple[list[str], dict[str, np.ndarray]]:
    """Draws of q and of the posterior (exact, else the reference's, all chains evenly) for the first
    few latent coordinates, and their labels; none for a guide that samples nothing."""
    if guide.samples_nothing:  # the library summed every latent out
        return [], {}
    labels, q_draws = marginal_draws(problem, guide.sample(stream_seed(seed, "q_draws"), MARGINAL_DRAWS))
    artifacts = {schema.Q_DRAWS: q_draws}
    if target.exact is not None:
        rng = np.random.default_rng(stream_seed(seed, "posterior_draws"))
        artifacts[schema.POSTERIOR_DRAWS] = marginal_draws(problem, target.exact.sample(rng, MARGINAL_DRAWS))[
            1
        ]
    elif target.reference is not None:
        draws = target.reference.draws
        n = len(next(iter(draws.values())))
        every = np.linspace(0, n - 1, min(n, MARGINAL_DRAWS)).astype(int)  # all chains, evenly
        posterior = {k: np.asarray(v)[every] for k, v in draws.items()}
        artifacts[schema.POSTERIOR_DRAWS] = marginal_draws(problem, posterior)[1]
    return labels, artifacts


def run_estimator(
    estimator: estimators.Estimator,
    target: Target,
    guide: GuideDensity | None,
    seed: int,
    cache: EvaluationCache | None,
    key: str,
    scope: str,
) -> dict[str, Any]:
    """``estimator_row``, with an error recorded in the row: one estimator failing leaves the fit and
    the other numbers standing, and never fails the unit."""
    try:
        return estimator_row(estimator, target, guide, seed, cache, key, scope)
    except Exception as error:
        return schema.unfinished_record(
            key, scope, estimator, schema.ESTIMATE_FAILED, f"{type(error).__name__}: {error}"
        )


def estimator_row(
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
    why) is recorded in the row; an error is raised."""
    given = guide if estimator.uses_guide else None
    reason = estimator.applies(target, given)
    if reason is not None:
        return schema.unfinished_record(key, scope, estimator, schema.ESTIMATE_SKIPPED, reason)
    estimate = estimator.estimate(target, given, seed, cache if estimator.uses_guide else None)
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
