"""The rows every topic of the report reads, as DataFrames: which cells finished, their display order
and labels, a column read safely, the reliability of an estimate, the planned units. Every number is a
stored value or a pandas operation on them; nothing here draws or estimates.

Column names are the results schema's (``ppl_suite.schema``): the cell table (``rows``), the long
estimates table (``estimates``: one row per cell or problem unit and estimator) and the problem units
(``problems``). A cell's guide-free estimates are its problem unit's (``problem_key``), shown once.
Every cell row has its identity and status; a cell that did not finish may have nothing else (a
timed-out cell: error and wall_seconds), so every other column is read through ``column``, and a
table whose columns are absent comes back empty. Tables keep numbers as numbers; the renderer formats
them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ppl_suite import backends, schema
from ppl_suite.schema import BACKEND, DATA_SEED, GUIDE, KEY, KL_METHOD, SEED, STATUS

# a row's status; others are listed after these
STATUS_ORDER = (schema.OK, schema.FAILED, schema.DIVERGED, schema.TIMEOUT)


NOT_RUN = "not run"  # a planned cell (manifest) without a row: the run stopped before it finished


RELIABLE = "reliable"  # the reliability label whose SE is valid (ppl_suite.estimate.RELIABILITY)


APPROXIMATION = "approximation"  # the kind and the reliability label of a deterministic approximation


GUIDE_FREE = "once per problem"  # in place of a backend: a guide-free estimate, shared by the problem's cells


PARETO_K_QUANTITY = "pareto_k"


REFERENCE_METHOD = schema.KL_BY_REFERENCE


def model_labels(rows: pd.DataFrame) -> pd.Series:
    """The model part of each cell key: ``model`` or ``model[k=v,...]`` when parameters were overridden."""
    return rows[KEY].str.split("/").str[0]


def model_names(rows: pd.DataFrame) -> list[str]:
    """Model labels in the order of the rows (sorted by key)."""
    return list(dict.fromkeys(model_labels(rows))) if not rows.empty else []


def of_model(rows: pd.DataFrame, model: str) -> pd.DataFrame:
    return rows[model_labels(rows) == model]


def ok_rows(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows[STATUS] == schema.OK] if not rows.empty else rows


def column(rows: pd.DataFrame, name: str) -> pd.Series:
    """A column, or NaN everywhere when the store has no such column (an older or smaller run)."""
    return rows[name] if name in rows else pd.Series(np.nan, index=rows.index, dtype=float)


def text_column(rows: pd.DataFrame, name: str) -> pd.Series:
    """A column of text, with '' where the store has no such column or the row no value."""
    return column(rows, name).map(lambda value: value if isinstance(value, str) else "").astype(object)


def reliability(rows: pd.DataFrame, name: str, kind: str = "") -> pd.Series:
    """The stored reliability label of each row (column ``name``, e.g. ``elbo_reliability``); where it
    has none, "approximation" for an estimator of that kind and "reliable" otherwise."""
    stored = column(rows, name)
    default = APPROXIMATION if kind == APPROXIMATION else RELIABLE
    return stored.where(stored.notna() & (stored != ""), default).astype(object)


def trusted_se(se: pd.Series, label: pd.Series) -> pd.Series:
    """The SE where the reliability label says it is valid, NaN elsewhere: an unreliable estimate or an
    approximation has no SE to show, and no error in SE units."""
    return se.where(label == RELIABLE)


def status_counts(status: pd.Series) -> dict[str, int]:
    """How many cells have each status, in STATUS_ORDER then NOT_RUN (others after, alphabetically)."""
    counts = status.value_counts()
    known = (*STATUS_ORDER, NOT_RUN)
    order = [*known, *sorted(set(counts.index) - set(known))]
    return {status: int(counts[status]) for status in order if status in counts}


def backend_rank(backend: pd.Series) -> pd.Series:
    """A backend's place in the registry's order (the shipped ones first); unregistered ones last."""
    order = {name: i for i, name in enumerate(backends.names())}
    return backend.map(lambda b: order.get(b, len(order)))


def in_display_order(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by model, guide, backend (pyro, numpyro, handrolled, others), data seed, seed."""
    if rows.empty:
        return rows
    keyed = rows.assign(_model=model_labels(rows), _rank=backend_rank(rows[BACKEND]))
    keyed = keyed.sort_values(["_model", GUIDE, "_rank", BACKEND, DATA_SEED, SEED], kind="stable")
    return keyed.drop(columns=["_model", "_rank"])


def cell_labels(rows: pd.DataFrame, with_model: bool = False) -> pd.Series:
    """Short cell names: ``backend / guide / seed s`` (data seed too when it differs from the seed)."""

    def label(row: pd.Series) -> str:
        data, seed = row[DATA_SEED], row[SEED]
        seeds = f"seed {seed}" if data == seed else f"data {data}, seed {seed}"
        text = f"{row[BACKEND]} / {row[GUIDE]} / {seeds}"
        return f"{row[KEY].split('/')[0]}: {text}" if with_model else text

    return pd.Series([label(row) for _, row in rows.iterrows()], index=rows.index, dtype=object)


def finished(estimates: pd.DataFrame, quantity: str | None = None) -> pd.DataFrame:
    """The estimates that finished (not skipped, not failed), of ``quantity`` when given."""
    keep = estimates[schema.STATUS] == schema.ESTIMATE_OK
    if quantity is not None:
        keep &= estimates[schema.QUANTITY] == quantity
    return estimates[keep]


def per_cell(ok: pd.DataFrame, estimates: pd.DataFrame, quantity: str) -> pd.DataFrame:
    """The first finished estimate of ``quantity`` of each cell of ``ok``, aligned to its index (NaN
    where it has none): value, se and extras (a dict)."""
    aligned = finished(estimates, quantity).drop_duplicates(KEY).set_index(KEY).reindex(ok[KEY])
    return pd.DataFrame(
        {
            "value": aligned[schema.VALUE].to_numpy(dtype=float),
            "se": aligned[schema.SE].to_numpy(dtype=float),
            "extras": [schema.extras(text) for text in aligned[schema.EXTRAS]],
        },
        index=ok.index,
    )


def with_exact(rows: pd.DataFrame) -> pd.DataFrame:
    """The cells whose log p(x) is exact: all but those measured against a NUTS reference."""
    return rows[text_column(rows, KL_METHOD) != REFERENCE_METHOD] if not rows.empty else rows


def planned_cells(manifest: dict[str, Any]) -> list[str]:
    """The keys of the cells the run planned (the manifest's ``cells``), [] where it does not say."""
    return _planned(manifest, schema.MANIFEST_CELLS)


def planned_problems(manifest: dict[str, Any]) -> list[str]:
    """The keys of the problem units the run planned (the manifest's ``problems``)."""
    return _planned(manifest, schema.MANIFEST_PROBLEMS)


def _planned(manifest: dict[str, Any], name: str) -> list[str]:
    keys = manifest.get(name)
    return [str(key) for key in keys] if isinstance(keys, list) else []


def units(rows: pd.DataFrame, problems: pd.DataFrame) -> pd.DataFrame:
    """Problem units and cells in one table (their common columns: key, status, error...)."""
    if problems.empty:
        return rows
    return problems if rows.empty else pd.concat([problems, rows], ignore_index=True)
