"""The headline table of a check: one row per cell, read from the results schema (no statistics are
computed here: every number is a stored estimate).

    elbo ± elbo_se                     the suite's Monte Carlo ELBO of the fitted guide
    log_evidence ± log_evidence_se     the reference's log p(x) by AIS
    kl ± kl_se                         KL(q || p(z | x)) = log p(x) - ELBO (the identity)
    mean_error ± se (coordinate)       the largest (E_q z_j - E_ref z_j) / sd_ref z_j
    sd_error ± se (coordinate)         the largest sd_q z_j / sd_ref z_j - 1
    k_hat                              PSIS k-hat of q as a proposal for the posterior
"""

from __future__ import annotations

import json
import math

import pandas as pd

from ppl_suite import schema

CELL_COLUMNS = (
    schema.KEY, schema.GUIDE, schema.BACKEND, schema.SEED, schema.STATUS, schema.ELBO, schema.ELBO_SE,
    schema.LOG_EVIDENCE, schema.LOG_EVIDENCE_SE, schema.KL, schema.KL_SE, schema.KL_RELIABILITY,
)  # fmt: skip
COLUMNS = (
    *CELL_COLUMNS, "mean_error", "mean_error_se", "mean_error_at", "sd_error", "sd_error_se", "sd_error_at",
    "k_hat",
)  # fmt: skip


def _estimate(estimates: pd.DataFrame, key: str, estimator: str) -> pd.Series | None:
    found = estimates[(estimates[schema.KEY] == key) & (estimates[schema.ESTIMATOR] == estimator)]
    found = found[found[schema.STATUS] == schema.ESTIMATE_OK]
    return None if found.empty else found.iloc[0]


def _moments(row: pd.Series | None) -> dict[str, object]:
    if row is None:
        return {"mean_error": math.nan, "mean_error_se": math.nan, "mean_error_at": "",
                "sd_error": math.nan, "sd_error_se": math.nan, "sd_error_at": ""}  # fmt: skip
    extras = json.loads(row[schema.EXTRAS]) if isinstance(row[schema.EXTRAS], str) else row[schema.EXTRAS]
    return {
        "mean_error": row[schema.VALUE],
        "mean_error_se": row[schema.SE],
        "mean_error_at": extras["coordinate"],
        "sd_error": extras["worst_sd_error"],
        "sd_error_se": extras["worst_sd_error_se"],
        "sd_error_at": extras["worst_sd_coordinate"],
    }


def check_table(rows: pd.DataFrame, estimates: pd.DataFrame) -> pd.DataFrame:
    """One row per cell of ``rows`` with the columns of the module docstring (NaN where a cell or an
    estimator did not finish)."""
    out = []
    for _, cell in rows.iterrows():
        key = cell[schema.KEY]
        values = {column: cell.get(column, math.nan) for column in CELL_COLUMNS}
        values |= _moments(_estimate(estimates, key, "posterior_moments"))
        psis = _estimate(estimates, key, "psis")
        values["k_hat"] = psis[schema.VALUE] if psis is not None else math.nan
        out.append(values)
    return pd.DataFrame(out, columns=list(COLUMNS))
