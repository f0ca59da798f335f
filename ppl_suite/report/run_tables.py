"""The tables a run's front ends print without drawing anything: the identity per cell (the console,
after a run) and the units that did not finish (the run's outcome and the report's failures section).
Plotting-free, like ``rows``: importing this module imports no matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ppl_suite import schema
from ppl_suite.report.rows import (
    NOT_RUN,
    RELIABLE,
    column,
    model_labels,
    ok_rows,
    reliability,
    text_column,
    trusted_se,
)
from ppl_suite.schema import (
    BACKEND,
    CONVERGED,
    ELBO,
    ELBO_RELIABILITY,
    ELBO_SE,
    ERROR,
    GUIDE,
    KEY,
    KL,
    KL_METHOD,
    LOG_EVIDENCE,
    OPTIMIZATION_GAP,
    RESIDUAL_SE,
    SEED,
    STATUS,
    WALL_SECONDS,
)


def identity_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per ok cell as text (for the console): log p(x) = ELBO + KL, residual, cost. An ELBO
    whose SE is not reliable (``elbo_reliability``) is shown with its label instead of an SE, and
    without a residual in SE units."""
    ok = ok_rows(rows)
    if ok.empty:
        return pd.DataFrame()
    label = reliability(ok, ELBO_RELIABILITY)
    se = trusted_se(column(ok, ELBO_SE), label)

    def pm(value: float, se: float, label: str) -> str:
        return f"{value:.4f} ± {se:.4f}" if label == RELIABLE else f"{value:.4f} ({label})"

    def formatted(values: pd.Series, fmt: str) -> pd.Series:
        return values.map(lambda v: "" if pd.isna(v) else fmt.format(v))

    table = pd.DataFrame(
        {
            "model": model_labels(ok),
            "backend": ok[BACKEND],
            "guide": ok[GUIDE],
            "seed": ok[SEED],
            "ELBO ± SE": [pm(*v) for v in zip(column(ok, ELBO), se, label, strict=True)],
            "log p(x)": formatted(column(ok, LOG_EVIDENCE), "{:.4f}"),
            "KL(q||p)": formatted(column(ok, KL), "{:.2e}"),
            "KL route": text_column(ok, KL_METHOD),
            "residual (SE)": formatted(column(ok, RESIDUAL_SE).where(label == RELIABLE), "{:+.2f}"),
            "opt. gap": formatted(column(ok, OPTIMIZATION_GAP), "{:.1e}"),
            "converged": column(ok, CONVERGED),
            "wall s": formatted(column(ok, WALL_SECONDS), "{:.1f}"),
            "steps/s": formatted(column(ok, schema.STEPS_PER_SECOND), "{:,.0f}"),
            "compile s": formatted(column(ok, schema.COMPILE_SECONDS), "{:.2f}"),
        }
    )
    return table.reset_index(drop=True)


def failures_table(rows: pd.DataFrame, planned: Sequence[str] = ()) -> pd.DataFrame:
    """Units (cells, or cells and problem units) that did not finish: key, status (failed, diverged,
    timeout...) and the first line of the error; then the ``planned`` keys that have no row at all,
    with status NOT_RUN."""
    bad = rows[rows[STATUS] != schema.OK] if not rows.empty else rows
    stored = set(rows[KEY]) if not rows.empty else set()
    first_line = text_column(bad, ERROR).map(lambda text: next(iter(text.splitlines()), ""))
    table = pd.DataFrame({"cell": column(bad, KEY), "status": column(bad, STATUS), "error": first_line})
    missing = [key for key in dict.fromkeys(planned) if key not in stored]
    not_run = pd.DataFrame(
        {"cell": missing, "status": NOT_RUN, "error": "no result stored: the run ended before this cell did"}
    )
    return pd.concat([table, not_run], ignore_index=True) if missing else table.reset_index(drop=True)
