"""A cell's evaluation columns, derived from its rows of the long estimates table: the one place that
says which estimator gives which column of the cell table (``schema.EVALUATION_COLUMNS``).

Every fitted guide runs the plug-ins of ``EVALUATION`` (``execute``), each on its own stream of the
cell seed, sharing draws through the cell's cache; their rows are the cell's numbers, and

    elbo, elbo_se, elbo_seconds, elbo_reliability   the ``elbo`` row (Monte Carlo), else ``elbo_enumerated``
    kl, kl_se, kl_reliability, kl_method            the first finished route of KL_ROUTES: closed form,
                                                    Monte Carlo, enumerated, NUTS reference; kl_se is
                                                    NaN unless that estimate is reliable
    kl_analytic                                     the ``kl_analytic`` row
    kl_mc, kl_mc_se                                 the ``kl_monte_carlo`` row
    kl_identity                                     the ``kl_identity`` row
    residual_se, residual_floor                     the ``identity`` row's extras z and floor
    optimization_gap, kl_family_min, converged      the ``optimization_gap`` row, its extras' family_min,
                                                    and whether the gap is below checks.CONVERGED_GAP

are read from them; a column whose estimator did not run, was skipped or failed is NaN ("" for text,
None for ``converged``). ``cell_rows`` puts them on the stored rows of a results folder; a row of
schema version 3 holds its own and keeps them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ppl_suite import schema
from ppl_suite.checks import CONVERGED_GAP

if TYPE_CHECKING:
    import pandas as pd

ELBO_ROUTES = ("elbo", "elbo_enumerated")  # the cell's ELBO: the first that finished
KL_ROUTES = {  # the cell's KL, the first that finished, and its kl_method
    "kl_analytic": "analytic",
    "kl_monte_carlo": "monte_carlo",
    "kl_enumerated": "enumerated",
    "kl_reference": schema.KL_BY_REFERENCE,
}
# the estimators of every cell's evaluation, in the order they run
EVALUATION = (*ELBO_ROUTES, *KL_ROUTES, "kl_identity", "identity", "optimization_gap")


def evaluation_columns(estimates: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The cell's ``schema.EVALUATION_COLUMNS`` from its rows of the estimates table (schema names;
    see the module docstring), the first row of each estimator that finished."""
    done: dict[str, Mapping[str, Any]] = {}
    for row in estimates:
        if row[schema.STATUS] == schema.ESTIMATE_OK:
            done.setdefault(row[schema.ESTIMATOR], row)
    elbo = next((done[name] for name in ELBO_ROUTES if name in done), None)
    route = next((name for name in KL_ROUTES if name in done), None)
    kl = done.get(route) if route is not None else None
    identity = schema.extras(done["identity"][schema.EXTRAS]) if "identity" in done else {}
    gap = done.get("optimization_gap")
    return {
        schema.ELBO: _number(elbo, schema.VALUE),
        schema.ELBO_SE: _number(elbo, schema.SE),
        schema.ELBO_SECONDS: _number(elbo, schema.SECONDS),
        schema.ELBO_RELIABILITY: elbo[schema.RELIABILITY] if elbo is not None else "",
        schema.KL: _number(kl, schema.VALUE),
        schema.KL_SE: _number(kl, schema.SE) if kl is not None and _reliable(kl) else math.nan,
        schema.KL_RELIABILITY: kl[schema.RELIABILITY] if kl is not None else "",
        schema.KL_METHOD: KL_ROUTES[route] if route is not None else "",
        schema.KL_ANALYTIC: _number(done.get("kl_analytic"), schema.VALUE),
        schema.KL_MC: _number(done.get("kl_monte_carlo"), schema.VALUE),
        schema.KL_MC_SE: _number(done.get("kl_monte_carlo"), schema.SE),
        schema.KL_IDENTITY: _number(done.get("kl_identity"), schema.VALUE),
        schema.RESIDUAL_SE: identity.get("z", math.nan),
        schema.RESIDUAL_FLOOR: identity.get("floor", math.nan),
        schema.KL_FAMILY_MIN: schema.extras(gap[schema.EXTRAS])["family_min"]
        if gap is not None
        else math.nan,
        schema.OPTIMIZATION_GAP: _number(gap, schema.VALUE),
        schema.CONVERGED: bool(gap[schema.VALUE] < CONVERGED_GAP) if gap is not None else None,
    }


def _number(row: Mapping[str, Any] | None, column: str) -> float:
    return row[column] if row is not None else math.nan


def _reliable(row: Mapping[str, Any]) -> bool:
    return row[schema.RELIABILITY] == "reliable"


def cell_rows(rows: list[dict[str, Any]], estimates: pd.DataFrame) -> list[dict[str, Any]]:
    """Stored cell rows with their evaluation columns: each finished cell's, of schema version 4 on,
    derived from its rows of ``estimates`` (``evaluation_columns``); a version-3 row keeps its own, and
    a cell that did not finish gets none (as it was written)."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    if not estimates.empty:
        for record in estimates.to_dict("records"):
            by_key.setdefault(record[schema.KEY], []).append(record)
    return [
        row | evaluation_columns(by_key.get(row[schema.KEY], []))
        if row.get(schema.STATUS) == schema.OK
        and row.get(schema.VERSION, schema.SCHEMA_VERSION) >= schema.EVALUATION_IN_ESTIMATES
        else row
        for row in rows
    ]
