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
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ppl_suite import backends
from ppl_suite.backends import SVIConfig
from ppl_suite.estimators.elbo import elbo
from ppl_suite.estimators.kl import kl_analytic, kl_family_minimum, kl_identity, kl_monte_carlo
from ppl_suite.fitted_guide import FittedGuide
from ppl_suite.problem import Problem
from ppl_suite.spec import ExactPosterior, Latents

CONVERGED_GAP = 0.01  # nats: a fit whose optimization gap is larger is flagged as not converged
MARGINALS = 6  # latent coordinates whose draws are kept for the report's marginal plots
MARGINAL_DRAWS = 4000


@dataclass(frozen=True)
class Cell:
    """Plain, hashable description of one fit-and-evaluate job."""

    model: str
    backend: str
    guide: str
    data_seed: int = 0
    seed: int = 0
    overrides: tuple[tuple[str, Any], ...] = ()
    svi: SVIConfig = field(default_factory=SVIConfig)
    eval_samples: int = 10_000

    @property
    def key(self) -> str:
        """Deterministic name: model[k=v,...]/backend/guide/data<seed>/seed<seed>."""
        params = ",".join(f"{k}={v}" for k, v in sorted(self.overrides))
        model = f"{self.model}[{params}]" if params else self.model
        return f"{model}/{self.backend}/{self.guide}/data{self.data_seed}/seed{self.seed}"


@dataclass
class Record:
    """The outcome of one cell: a flat row, the training trace, and named arrays for the report."""

    row: dict[str, Any]
    losses: np.ndarray
    artifacts: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.row["status"] == "ok"


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
            columns, artifacts = evaluate(problem.with_params(fit.theta), fit, cell.eval_samples)
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


def evaluate(problem: Problem, fit: backends.Fit, n: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Columns (ELBO, exact log p(x), KL by every route that applies, optimization gap) and array
    artifacts (draws of q and of the exact posterior for the first few latent coordinates)."""
    out = _empty_columns()
    exact = problem.exact()
    fitted = FittedGuide(problem, fit.guide, dict(fit.phi))
    if not fitted.distributions:  # the guide samples nothing: the library summed every latent out
        return _evaluate_enumerated(fit, exact, out), {}
    estimate = elbo(fitted, n, seed=0)
    out.update(elbo=estimate.value, elbo_se=estimate.se, elbo_seconds=estimate.seconds)
    labels, q_draws = marginal_draws(problem, fitted.sample(2, MARGINAL_DRAWS))
    out["draw_labels"] = json.dumps(labels)
    artifacts = {"q_draws": q_draws}
    if exact is None:
        return out, artifacts
    artifacts["posterior_draws"] = marginal_draws(
        problem, exact.sample(np.random.default_rng(3), MARGINAL_DRAWS)
    )[1]
    analytic = kl_analytic(fitted, exact)
    mc = kl_monte_carlo(fitted, exact, n)
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
