"""The results schema: every table, column and artifact name of a results folder, declared once.

Writers (``execute``, ``store``) and readers (``results``, ``report``, ``checks``, the CLI) take names
from here; no other module spells a column name. Three tables:

    cells     (rows.parquet)       one row per cell (CELL_COLUMNS): identity, status, timings, the
                                   fit, the truth it is measured against, where its fitted parameters
                                   are, and the evaluation of its guide (EVALUATION_COLUMNS: derived
                                   from its rows of the estimates table, ``cell_columns``)
    problems  (problems.parquet)   one row per problem unit (PROBLEM_COLUMNS): the guide-free
                                   estimators of one (model, parameters, data set), run once
    estimates (estimates.parquet)  long: one row per (cell or problem unit, estimator)
                                   (ESTIMATE_COLUMNS); a cell's ``problem_key`` names the problem unit
                                   whose guide-free estimates belong to it

Every number of a cell's evaluation is a row of the estimates table (its ELBO, KL by each route, identity
residual, optimization gap: the plug-ins of ``cell_columns.EVALUATION``); a stored cell row holds none
of them, and readers get the EVALUATION_COLUMNS derived from those rows by ``cell_columns``. A row of
schema version 3 (before the evaluation moved into the estimates table) holds its own, and keeps them.

Models with learned model parameters theta (ppca, gaussian_mixture) have no problem unit: their
guide-free estimates depend on each fit's theta, so they are computed per cell (scope "cell").

A cell's arrays (``artifacts/<digest>.npz``) hold its fitted parameters as ``phi.<name>`` and
``theta.<name>`` (``fitted_arrays``), so any evaluation can be redone from the store.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from ppl_suite.estimate import Estimate

SCHEMA_VERSION = 4  # 4: a cell's evaluation in the estimates table, its columns derived from there
# 3: estimates in their own long table, problem units, fitted parameters stored
EVALUATION_IN_ESTIMATES = 4  # the first version whose cell rows leave EVALUATION_COLUMNS to the estimates

# ------------------------------------------------------------------------------ identity and status
KEY = "key"
MODEL = "model"
BACKEND = "backend"
GUIDE = "guide"
DATA_SEED = "data_seed"
SEED = "seed"
PARAMS = "params"
PROBLEM_KEY = "problem_key"
STATUS = "status"
# a unit's status: finished, raised, SVI went non-finite, stopped by its timeout
OK, FAILED, DIVERGED, TIMEOUT = "ok", "failed", "diverged", "timeout"
ERROR = "error"
WALL_SECONDS = "wall_seconds"
DIGEST = "digest"
VERSION = "schema_version"
FITTED_PARAMS = "fitted_params"
SVI_PREFIX = "svi_"  # svi_<field> for every SVIConfig field

# --------------------------------------------------------------------------------------- the fit
COMPILE_SECONDS = "compile_seconds"
FIT_SECONDS = "fit_seconds"
STEPS_PER_SECOND = "steps_per_second"
FINAL_LOSS = "final_loss"
LIBRARY_ELBO = "library_elbo"
LIBRARY_ELBO_SE = "library_elbo_se"
DRAWS_PATH = "draws_path"

# --------------------------------------------------------------------------------- the evaluation
ELBO = "elbo"
ELBO_SE = "elbo_se"
ELBO_SECONDS = "elbo_seconds"
ELBO_RELIABILITY = "elbo_reliability"
LOG_EVIDENCE = "log_evidence"
KL = "kl"
KL_METHOD = "kl_method"
KL_ANALYTIC = "kl_analytic"
KL_MC = "kl_mc"
KL_MC_SE = "kl_mc_se"
KL_IDENTITY = "kl_identity"
RESIDUAL_SE = "residual_se"
RESIDUAL_FLOOR = "residual_floor"
KL_FAMILY_MIN = "kl_family_min"
OPTIMIZATION_GAP = "optimization_gap"
CONVERGED = "converged"
DRAW_LABELS = "draw_labels"
LOG_JOINT_MAX_DIFF = "log_joint_max_diff"
LOG_JOINT_PAIR = "log_joint_pair"
LOG_EVIDENCE_SE = "log_evidence_se"
KL_SE = "kl_se"
KL_RELIABILITY = "kl_reliability"
REFERENCE = "reference"
KL_BY_REFERENCE = "reference"  # the kl_method of a cell measured against a NUTS reference (no oracle)

# the cell table's columns derived from the cell's rows of the estimates table (``cell_columns``)
EVALUATION_COLUMNS = (
    ELBO, ELBO_SE, ELBO_SECONDS, ELBO_RELIABILITY, KL, KL_SE, KL_RELIABILITY, KL_METHOD, KL_ANALYTIC, KL_MC,
    KL_MC_SE, KL_IDENTITY, RESIDUAL_SE, RESIDUAL_FLOOR, KL_FAMILY_MIN, OPTIMIZATION_GAP, CONVERGED,
)  # fmt: skip

# manifest.json: what a run ran (``store.ResultsStore.write_manifest``, read by the report)
# the cell row's numbers: a stored row holding anything else there (a string, a list) is damaged
NUMERIC_CELL_COLUMNS = (
    WALL_SECONDS, COMPILE_SECONDS, FIT_SECONDS, STEPS_PER_SECOND, FINAL_LOSS, LIBRARY_ELBO, LIBRARY_ELBO_SE,
    ELBO, ELBO_SE, ELBO_SECONDS, LOG_EVIDENCE, KL, KL_ANALYTIC, KL_MC, KL_MC_SE, KL_IDENTITY, RESIDUAL_SE,
    RESIDUAL_FLOOR, KL_FAMILY_MIN, OPTIMIZATION_GAP, LOG_JOINT_MAX_DIFF, LOG_EVIDENCE_SE, KL_SE,
)  # fmt: skip

MANIFEST_COMMAND = "command"
MANIFEST_CONFIG = "config"
MANIFEST_CELLS = "cells"
MANIFEST_DIGESTS = "digests"
MANIFEST_PROBLEMS = "problems"
MANIFEST_PROBLEM_DIGESTS = "problem_digests"
MANIFEST_REUSED = "reused"
MANIFEST_REUSED_PROBLEMS = "reused_problems"
MANIFEST_VERSIONS = "versions"
MANIFEST_GIT_COMMIT = "git_commit"
MANIFEST_HOST = "host"
MANIFEST_EXECUTOR = "executor"
MANIFEST_JOBS = "jobs"
MANIFEST_CELL_TIMEOUT = "cell_timeout"
MANIFEST_STARTED = "started"
MANIFEST_FINISHED = "finished"
MANIFEST_STOPPED = "stopped"
MANIFEST_STOPPED_BY = "stopped_by"
MANIFEST_KEYS: dict[str, str] = {
    VERSION: "SCHEMA_VERSION of the writer",
    MANIFEST_COMMAND: "the command line, as a list",
    MANIFEST_CONFIG: "the validated configuration as run",
    MANIFEST_CELLS: "keys of this run's cells, in order",
    MANIFEST_DIGESTS: "their digests (the file names under cells/, artifacts/...)",
    MANIFEST_PROBLEMS: "keys of this run's problem units",
    MANIFEST_PROBLEM_DIGESTS: "their digests",
    MANIFEST_REUSED: "cells reused from an earlier run",
    MANIFEST_REUSED_PROBLEMS: "problem units reused",
    MANIFEST_VERSIONS: "Python's and the packages' versions",
    MANIFEST_GIT_COMMIT: "the suite's git commit, where known",
    MANIFEST_HOST: "the machine's name",
    MANIFEST_EXECUTOR: "local, dask, or in_process (ppl_suite.check's cells run in the caller's process)",
    MANIFEST_JOBS: "workers",
    MANIFEST_CELL_TIMEOUT: "seconds a cell may run (null: no timeout holds, as in_process)",
    MANIFEST_STARTED: "start time (ISO 8601)",
    MANIFEST_FINISHED: "end time, when the run finished",
    MANIFEST_STOPPED: "stop time, when a signal stopped the run",
    MANIFEST_STOPPED_BY: "the signal's name",
}

CELL_COLUMNS: dict[str, str] = {
    KEY: "model[k=v,...]/backend/guide/data<data seed>/seed<seed>",
    MODEL: "model name",
    BACKEND: "backend that fitted the guide",
    GUIDE: "guide family",
    DATA_SEED: "seed of the simulated data set",
    SEED: "seed of SVI and of the cell's evaluation streams",
    PARAMS: "model parameter overrides, JSON",
    PROBLEM_KEY: "key of the problem unit holding this cell's guide-free estimates; None when there is "
    "none (no guide-free estimator, or learned theta: then they are the cell's own)",
    STATUS: f"{OK}, {FAILED}, {DIVERGED} or {TIMEOUT}",
    ERROR: "why the cell did not finish ('' when ok)",
    WALL_SECONDS: "the whole cell: fit, evaluation and its estimators",
    DIGEST: "hash of definition, package versions and code: the cell's file names",
    VERSION: "SCHEMA_VERSION of the writer",
    FITTED_PARAMS: "the file (relative to the results folder) holding phi.<name> and theta.<name>",
    COMPILE_SECONDS: "tracing and compilation paid by the fit",
    FIT_SECONDS: "the timed SVI steps",
    STEPS_PER_SECOND: "SVI steps per second after compilation",
    FINAL_LOSS: "mean training loss (-ELBO) over the last tenth of the steps",
    LIBRARY_ELBO: "the backend's own ELBO of the fitted guide (NaN for hand-rolled)",
    LIBRARY_ELBO_SE: "its standard error",
    DRAWS_PATH: "how the fit put particles through the model: vectorized (Pyro: a batch axis left of "
    "every latent), loop (Pyro: one at a time, for a model written for one draw, e.g. a[group]), vmap "
    "(NumPyro: jax.vmap of one-particle code); '' for the hand-rolled backend",
    ELBO: "E_q[log p(x, z) - log q(z)], the suite's estimate",
    ELBO_SE: "its standard error (0 when exact)",
    ELBO_SECONDS: "seconds of the ELBO estimate",
    ELBO_RELIABILITY: "reliable, unreliable or approximation (ppl_suite.estimate.RELIABILITY)",
    LOG_EVIDENCE: "exact log p(x) at the fitted theta; without an oracle, the reference's AIS estimate",
    LOG_EVIDENCE_SE: "its standard error (0 when exact; NaN when the AIS estimate is unreliable)",
    KL: "KL(q || p(z | x)) by the route KL_METHOD",
    KL_METHOD: "analytic, monte_carlo, enumerated, or reference (AIS log p(x) - ELBO: never exact)",
    KL_SE: "standard error of KL (NaN when not reliable)",
    KL_RELIABILITY: "reliable, unreliable or approximation, of KL",
    REFERENCE: "without an oracle: the NUTS reference's diagnostics and evidence, or why none was built",
    KL_ANALYTIC: "closed-form KL (NaN where none)",
    KL_MC: "Monte Carlo KL",
    KL_MC_SE: "its standard error",
    KL_IDENTITY: "log p(x) - ELBO",
    RESIDUAL_SE: "(log p(x) - ELBO - KL) / sqrt(SE_ELBO^2 + SE_KL^2 + floor^2)",
    RESIDUAL_FLOOR: "float64 rounding of the identity's terms",
    KL_FAMILY_MIN: "smallest KL the guide family can reach",
    OPTIMIZATION_GAP: "KL - KL_FAMILY_MIN",
    CONVERGED: "optimization gap below checks.CONVERGED_GAP",
    DRAW_LABELS: "JSON list naming the columns of the stored draws",
    LOG_JOINT_MAX_DIFF: "largest disagreement between the model's log-joint implementations",
    LOG_JOINT_PAIR: "the two implementations that disagree most",
}

ESTIMATORS = "estimators"
PROBLEM_COLUMNS: dict[str, str] = {
    KEY: "model[k=v,...]/data<data seed>",
    MODEL: "model name",
    DATA_SEED: "seed of the simulated data set, also the guide-free estimators' seed",
    PARAMS: "model parameter overrides, JSON",
    ESTIMATORS: "JSON list of the estimators run",
    LOG_EVIDENCE: "exact log p(x) (NaN without an oracle)",
    STATUS: f"{OK}, {FAILED} or {TIMEOUT}",
    ERROR: "why the unit did not finish ('' when ok)",
    WALL_SECONDS: "the whole unit: data, target and every estimator",
    DIGEST: "hash of definition, package versions and code",
    VERSION: "SCHEMA_VERSION of the writer",
}

# ------------------------------------------------------------------------------ the long estimates
SCOPE = "scope"
ESTIMATOR = "estimator"
QUANTITY = "quantity"
KIND = "kind"
VALUE = "value"
SE = "se"
RELIABILITY = "reliability"
DIAGNOSTIC = "diagnostic"
N_EVALS = "n_evals"
SECONDS = "seconds"
EXTRAS = "extras"
REASON = "reason"
SCOPE_CELL = "cell"  # an estimate of one cell's fitted guide (or of its learned theta)
SCOPE_PROBLEM = "problem"  # a guide-free estimate of a problem unit, shared by its cells
ESTIMATE_OK, ESTIMATE_SKIPPED, ESTIMATE_FAILED = "ok", "skipped", "failed"

ESTIMATE_COLUMNS: dict[str, str] = {
    KEY: "the cell's or the problem unit's key",
    SCOPE: f"{SCOPE_CELL!r} or {SCOPE_PROBLEM!r}",
    ESTIMATOR: "the estimator's registry name",
    QUANTITY: "what it estimates (a key of ppl_suite.estimators.QUANTITIES)",
    KIND: "exact, unbiased, lower_bound, ... (ppl_suite.estimators.KINDS)",
    STATUS: f"{ESTIMATE_OK}, {ESTIMATE_SKIPPED} (does not apply) or {ESTIMATE_FAILED} (raised)",
    VALUE: "the estimate (NaN unless ok)",
    SE: "its standard error (0 when exact)",
    RELIABILITY: "reliable, unreliable or approximation (ppl_suite.estimate.RELIABILITY)",
    DIAGNOSTIC: "the diagnostic behind a label other than reliable",
    N_EVALS: "log-joint evaluations",
    SECONDS: "seconds it took",
    EXTRAS: "estimator-specific extras, JSON (e.g. the IWAE curve: iwae_k, iwae, iwae_se)",
    REASON: "why it was skipped or failed ('' when ok)",
}

# ---------------------------------------------------------------------------------- cell artifacts
Q_DRAWS = "q_draws"  # draws of q, the first coordinates (DRAW_LABELS)
POSTERIOR_DRAWS = "posterior_draws"  # draws of the exact posterior at the fitted theta
TRAINING_PREFIX = "training."  # training.<curve column> for learned theta
PHI_PREFIX = "phi."
THETA_PREFIX = "theta."


def training_artifact(name: str) -> str:
    """The artifact of the training curve's column ``name`` (step, elbo, elbo_se, log_evidence...)."""
    return f"{TRAINING_PREFIX}{name}"


def fitted_arrays(phi: Mapping[str, Any], theta: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """A fit's guide parameters phi and learned model parameters theta as named artifacts."""
    arrays = {f"{PHI_PREFIX}{name}": np.asarray(value) for name, value in phi.items()}
    return arrays | {f"{THETA_PREFIX}{name}": np.asarray(value) for name, value in theta.items()}


def split_fitted(arrays: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(phi, theta) from a cell's artifacts: the inverse of ``fitted_arrays``."""
    phi = {k.removeprefix(PHI_PREFIX): v for k, v in arrays.items() if k.startswith(PHI_PREFIX)}
    theta = {k.removeprefix(THETA_PREFIX): v for k, v in arrays.items() if k.startswith(THETA_PREFIX)}
    return phi, theta


# ------------------------------------------------------------------------------- estimate records
def _described(estimator: Any) -> dict[str, Any]:
    return {ESTIMATOR: estimator.name, QUANTITY: estimator.quantity, KIND: estimator.kind}


def estimate_record(key: str, scope: str, estimator: Any, estimate: Estimate) -> dict[str, Any]:
    """One row of the estimates table: ``estimator`` (a plug-in: name, quantity, kind) gave ``estimate``."""
    return {
        KEY: key,
        SCOPE: scope,
        **_described(estimator),
        STATUS: ESTIMATE_OK,
        VALUE: float(estimate.value),
        SE: float(estimate.se),
        RELIABILITY: estimate.reliability,
        DIAGNOSTIC: estimate.diagnostic,
        N_EVALS: int(estimate.n_evals),
        SECONDS: float(estimate.seconds),
        EXTRAS: json.dumps(estimate.extras, sort_keys=True, default=plain),
        REASON: "",
    }


def unfinished_record(key: str, scope: str, estimator: Any, status: str, reason: str) -> dict[str, Any]:
    """A row of the estimates table for an estimator that was skipped or failed, and why."""
    nan = math.nan
    numbers = {VALUE: nan, SE: nan, N_EVALS: 0, SECONDS: nan}
    text = {RELIABILITY: "", DIAGNOSTIC: "", EXTRAS: "{}"}
    return {
        KEY: key,
        SCOPE: scope,
        **_described(estimator),
        STATUS: status,
        **numbers,
        **text,
        REASON: reason,
    }


def extras(text: Any) -> dict[str, Any]:
    """The extras of an estimates row (its EXTRAS JSON), {} where there are none."""
    return json.loads(text) if isinstance(text, str) and text else {}


def estimates_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The estimates table of ``records``: exactly ESTIMATE_COLUMNS, in order, sorted by key (stable)."""
    import pandas as pd

    frame = pd.DataFrame(records, columns=list(ESTIMATE_COLUMNS))
    return frame.sort_values(KEY, kind="stable").reset_index(drop=True) if records else frame


def plain(value: Any) -> Any:
    """JSON for NumPy values (``json.dumps(..., default=plain)``)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
