"""One cell of the comparison: fit a guide with a backend, then evaluate it. Pure: no files written.

    log p(x) = ELBO(q) + KL(q || p(z | x))

Each cell reports the three terms and the residual log p(x) - ELBO - KL in units of the ELBO's
standard error, which is ~N(0, 1) when every number is right.
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
from ppl_suite.estimate import Estimate
from ppl_suite.estimators.elbo import elbo
from ppl_suite.estimators.kl import kl_analytic, kl_family_minimum, kl_identity, kl_monte_carlo
from ppl_suite.fitted_guide import FittedGuide
from ppl_suite.problem import Problem
from ppl_suite.spec import ExactPosterior, Latents
from ppl_suite.training_curve import training_curve

CONVERGED_GAP = 0.01  # nats: a fit whose optimization gap is larger is flagged as not converged
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
            columns, artifacts = evaluate(problem.with_params(fit.theta), fit, cell.eval_samples, cell.seed)
            if problem.spec.learned and problem.spec.oracle is not None:
                artifacts |= training_artifacts(problem, fit, cell.eval_samples, cell.seed)
            for name, settings in cell.estimators:
                estimated, arrays = run_estimator(problem.with_params(fit.theta), fit, name, settings, cell)
                columns |= estimated
                artifacts |= arrays
            row.update(columns, status="ok", error="")
    except Exception as error:  # a failing cell is recorded, never raised: the matrix goes on
        row.update(status="failed", error=f"{type(error).__name__}: {error}\n{traceback.format_exc()}")
    row["wall_seconds"] = time.perf_counter() - start
    return Record(row, losses, artifacts)


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
        log_evidence=nan,
        kl=nan,
        kl_method="",
        kl_analytic=nan,
        kl_mc=nan,
        kl_mc_se=nan,
        kl_identity=nan,
        residual_se=nan,
        kl_family_min=nan,
        optimization_gap=nan,
        converged=None,
        draw_labels="[]",
    )


EVALUATION_STREAMS = ("elbo", "kl", "q_draws", "posterior_draws")


def evaluation_seed(seed: int, stream: str) -> int:
    """The seed of one of a cell's evaluation streams: distinct for every (seed, stream) pair, and
    for seed 0 the seeds 0, 1, 2, 3 in EVALUATION_STREAMS order."""
    return len(EVALUATION_STREAMS) * seed + EVALUATION_STREAMS.index(stream)


def evaluate(
    problem: Problem, fit: backends.Fit, n: int, seed: int = 0
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Columns (ELBO, exact log p(x), KL by every route that applies, optimization gap) and array
    artifacts (draws of q and of the exact posterior for the first few latent coordinates).

    Monte Carlo seeds come from the cell's ``seed`` (``evaluation_seed``): cells with different
    seeds have independent noise, so their residuals are independent draws; cells that differ only
    in backend share it (common random numbers), so sqrt(SE_a^2 + SE_b^2) overstates the noise of a
    backend difference and the agreement check errs on the side of not flagging."""
    out = _empty_columns()
    exact = problem.exact()
    fitted = FittedGuide(problem, fit.guide, dict(fit.phi))
    if not fitted.distributions:  # the guide samples nothing: the library summed every latent out
        return _evaluate_enumerated(fit, exact, out), {}
    estimate = elbo(fitted, n, seed=evaluation_seed(seed, "elbo"))
    out.update(elbo=estimate.value, elbo_se=estimate.se, elbo_seconds=estimate.seconds)
    # n draws (the batch size the ELBO already compiled for), the first MARGINAL_DRAWS kept
    draws = fitted.sample(evaluation_seed(seed, "q_draws"), n)
    draws = {name: value[:MARGINAL_DRAWS] for name, value in draws.items()}
    labels, q_draws = marginal_draws(problem, draws)
    out["draw_labels"] = json.dumps(labels)
    artifacts = {"q_draws": q_draws}
    if exact is None:
        return out, artifacts
    artifacts["posterior_draws"] = marginal_draws(
        problem, exact.sample(np.random.default_rng(evaluation_seed(seed, "posterior_draws")), MARGINAL_DRAWS)
    )[1]
    analytic = kl_analytic(fitted, exact)
    mc = kl_monte_carlo(fitted, exact, n, seed=evaluation_seed(seed, "kl"))
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
    # Residual of log p(x) = ELBO + KL; with an analytic KL the ELBO's SE is the only noise.
    noise = math.hypot(estimate.se, 0.0 if kl.exact else kl.se)
    out["residual_se"] = (exact.log_evidence - estimate.value - kl.value) / noise if noise > 0 else math.nan
    family_min = kl_family_minimum(fitted, exact)
    if family_min is not None:
        gap = kl.value - family_min
        out.update(kl_family_min=family_min, optimization_gap=gap, converged=bool(gap < CONVERGED_GAP))
    return out, artifacts


def _evaluate_enumerated(
    fit: backends.Fit, exact: ExactPosterior | None, out: dict[str, Any]
) -> dict[str, Any]:
    """Enumeration sums the discrete latents out exactly: the implied q is the posterior, so the
    library's enumerated ELBO is log p(x) and KL = log p(x) - ELBO is 0 up to rounding."""
    library = fit.library_elbo
    out.update(elbo=library.value, elbo_se=library.se, elbo_seconds=library.seconds)
    if exact is not None:
        kl = exact.log_evidence - library.value
        out.update(
            log_evidence=exact.log_evidence,
            kl=kl,
            kl_method="enumerated",
            kl_identity=kl,
            kl_family_min=0.0,
            optimization_gap=kl,
            converged=bool(kl < CONVERGED_GAP),
        )
        out["residual_se"] = (
            0.0 if library.se == 0 else (exact.log_evidence - library.value - kl) / library.se
        )
    return out


def run_estimator(
    problem: Problem, fit: backends.Fit, name: str, settings: tuple[tuple[str, Any], ...], cell: Cell
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One estimator on the fitted guide: columns est_<name>[_se|_n_evals|_seconds|_kind|_quantity],
    scalar extras as columns est_<name>.<extra>, list extras as artifacts est_<name>.<extra>. A skip or
    an error is recorded in est_<name>_skipped / est_<name>_error and never fails the cell. Guide-free
    estimators (AIS, Laplace...) are computed once per problem in a process and reused by the other
    cells of the same data."""
    prefix = f"est_{name}"
    estimator = estimators.get(name, **dict(settings))
    exact = problem.exact()
    fitted = FittedGuide(problem, fit.guide, dict(fit.phi)) if estimator.uses_guide else None
    reason = estimator.applies(problem, exact, fit.guide)
    if reason is None and fitted is not None and not fitted.distributions:
        reason = "the guide samples nothing (enumeration)"
    if reason is not None:
        return {f"{prefix}_skipped": reason}, {}
    try:
        if estimator.uses_guide or problem.spec.learned:
            estimate = estimator.estimate(problem, fitted, exact, seed=cell.seed)
        else:
            key = (cell.model, cell.overrides, cell.data_seed, name, settings)
            if key not in _PROBLEM_ESTIMATES:
                _PROBLEM_ESTIMATES[key] = estimator.estimate(problem, None, exact, seed=cell.data_seed)
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
        seed=evaluation_seed(seed, "elbo"),
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
