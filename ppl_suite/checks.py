"""Correctness checks over a run's rows: a failed one means some number is wrong, not merely noisy.

Each check compares two computations of one quantity whose difference is zero in exact arithmetic,
in units of the difference's standard error, and fails beyond FLAG_SE (4 SE: a false alarm about
once in 16 000 comparisons of correct numbers):

- identity: log p(x) = ELBO + KL(q || p(z | x)); the row's ``residual_se`` is
  (log p(x) - ELBO - KL) / SE, with the exact log p(x) of the model's oracle, the suite's ELBO (the
  NumPy log joint) and the KL, so the oracle and the NumPy log joint are checked against each other.
- library ELBO: the library's own Trace_ELBO of the fitted guide (Pyro's or NumPyro's log joint)
  minus the suite's ELBO of the same guide (the NumPy log joint), SE = sqrt(SE_lib^2 + SE_suite^2).
  Every library log joint is checked against the NumPy one, so Pyro and NumPyro against each other.
- log joint: the model's implementations (NumPy oracle, NumPyro, Pyro) evaluated at the same latents
  in every cell (``ppl_suite.conformance``) must agree to LOG_JOINT_TOLERANCE: the estimators use one
  of them, so a wrong other one would otherwise pass unnoticed.

Differences between backends' Monte Carlo ELBOs are not checks: two fits of one guide family reach
different guides (more so when not converged), so their ELBOs differ for reasons other than a wrong
number. A fit whose optimization gap exceeds CONVERGED_GAP is reported as not converged, not failed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ppl_suite import schema
from ppl_suite.estimators.rounding import rounding_floor

FLAG_SE = 4.0
LOG_JOINT_TOLERANCE = 1e-6  # nats, as the model contract tests require
CONVERGED_GAP = 0.01  # nats: a fit whose optimization gap is larger is flagged as not converged


def implementation_allowance(a: Any, b: Any) -> Any:
    """How far a and b (numbers or arrays: two averages of log densities, such as two libraries'
    ELBOs of one guide) may differ when computed by different implementations of the same model,
    on top of their standard errors: the log-joint contract's LOG_JOINT_TOLERANCE (each averaged term
    may differ by that much between conforming implementations, so their mean may too) plus the
    float64 rounding floor of both (``estimators.rounding``). An exact value, such as an enumerated
    ELBO, then agrees across libraries instead of differing by "infinite" SEs."""
    return LOG_JOINT_TOLERANCE + rounding_floor(1.0) * (np.abs(a) + np.abs(b))


def in_se(difference: float, se: float) -> float:
    """difference / se; NaN for an SE that is not known; with se 0, 0 for no difference and +-inf for any."""
    if math.isnan(se):
        return math.nan
    if se > 0:
        return difference / se
    return 0.0 if difference == 0 else math.copysign(math.inf, difference)


def _ok(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows[schema.STATUS] == schema.OK] if schema.STATUS in rows else rows.iloc[0:0]


def _number(row: pd.Series, name: str) -> float:
    value = row.get(name)
    return float(value) if isinstance(value, (int, float, np.number)) else math.nan


def identity_failures(rows: pd.DataFrame) -> list[str]:
    """Cells whose residual (log p(x) - ELBO - KL) / SE lies beyond FLAG_SE."""
    failures = []
    for _, row in _ok(rows).iterrows():
        residual = _number(row, schema.RESIDUAL_SE)
        if abs(residual) > FLAG_SE:  # NaN (no exact answer) compares False
            failures.append(
                f"identity: {row[schema.KEY]}: log p(x) - ELBO - KL = {residual:+.1f} SE "
                f"(beyond {FLAG_SE:g} SE)"
            )
    return failures


def library_failures(rows: pd.DataFrame) -> list[str]:
    """Cells whose library ELBO differs from the suite's ELBO of the same guide beyond FLAG_SE."""
    failures = []
    for _, row in _ok(rows).iterrows():
        library, ours = _number(row, schema.LIBRARY_ELBO), _number(row, schema.ELBO)
        if math.isnan(library) or math.isnan(ours):
            continue
        se = math.hypot(
            _number(row, schema.LIBRARY_ELBO_SE),
            _number(row, schema.ELBO_SE),
            implementation_allowance(library, ours),
        )
        difference = library - ours
        if abs(in_se(difference, se)) > FLAG_SE:
            failures.append(
                f"library ELBO: {row[schema.KEY]}: the {row[schema.BACKEND]} ELBO minus the suite's is "
                f"{difference:+.4g} nats = {in_se(difference, se):+.1f} SE (beyond {FLAG_SE:g} SE)"
            )
    return failures


def log_joint_failures(rows: pd.DataFrame) -> list[str]:
    """Cells where two implementations of the model's log joint (NumPy, NumPyro, Pyro) differ by more
    than the conformance tolerance at the same latents (``ppl_suite.conformance``)."""
    failures = []
    for _, row in _ok(rows).iterrows():
        difference = _number(row, schema.LOG_JOINT_MAX_DIFF)
        if difference > LOG_JOINT_TOLERANCE:  # NaN (not compared) compares False
            failures.append(
                f"log joint: {row[schema.KEY]}: {row[schema.LOG_JOINT_PAIR]} differ by up to "
                f"{difference:.4g} nats at the same latents (beyond {LOG_JOINT_TOLERANCE:g})"
            )
    return failures


def reference_kl_failures(rows: pd.DataFrame) -> list[str]:
    """Cells measured against a NUTS reference whose KL = log p(x)_AIS - ELBO lies below 0 beyond
    FLAG_SE of its SE: a KL is never negative, so the reference's evidence or the ELBO is wrong."""
    failures = []
    for _, row in _ok(rows).iterrows():
        if row.get(schema.KL_METHOD) != schema.KL_BY_REFERENCE:
            continue
        kl, se = _number(row, schema.KL), _number(row, schema.KL_SE)
        if in_se(kl, se) < -FLAG_SE:  # NaN SE (unreliable evidence) compares False
            failures.append(
                f"reference KL: {row[schema.KEY]}: log p(x) by AIS - ELBO = {kl:+.4g} nats = "
                f"{in_se(kl, se):+.1f} SE (a KL below 0 beyond {FLAG_SE:g} SE)"
            )
    return failures


def failed_checks(rows: pd.DataFrame) -> list[str]:
    """Every failed check of the ok cells, one sentence each naming the cell and the numbers."""
    return (
        identity_failures(rows)
        + library_failures(rows)
        + log_joint_failures(rows)
        + reference_kl_failures(rows)
    )


def not_converged(rows: pd.DataFrame) -> pd.Series:
    """True for ok cells flagged as not converged (optimization gap above CONVERGED_GAP)."""
    if schema.CONVERGED not in rows:
        return pd.Series(False, index=rows.index)
    return (rows[schema.STATUS] == schema.OK) & rows[schema.CONVERGED].map(
        lambda value: value is False or value == 0
    )
