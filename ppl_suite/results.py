"""Reading results folders, for people who analyse results themselves. Column names: ``ppl_suite.schema``.

from ppl_suite import results
cells = results.load("results/default")          # one row per cell (schema.CELL_COLUMNS)
long = results.estimates("results/default")      # one row per (cell or problem unit, estimator)
problems = results.problems("results/default")   # one row per problem unit (guide-free estimators)
phi, theta = results.fitted_params("results/default", cells["key"][0])
vae = results.vae_tables("results/vae")          # the VAE study's tables by name (ppl_suite.vae.results)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ppl_suite import schema
from ppl_suite.store import ResultsStore


def load(path: str | Path) -> pd.DataFrame:
    """The cell table of a results folder's last run, one row per cell."""
    return ResultsStore(path).rows()


def vae_tables(path: str | Path) -> dict[str, pd.DataFrame]:
    """The VAE study's tables by name (columns: ``ppl_suite.vae.results``); {} when the folder has none."""
    return ResultsStore(path).vae_tables()


def estimates(path: str | Path) -> pd.DataFrame:
    """The long estimates table of the last run: exactly ``schema.ESTIMATE_COLUMNS``. A cell's
    guide-free estimates are the rows whose key is its ``problem_key`` (scope "problem")."""
    return ResultsStore(path).estimates()


def problems(path: str | Path) -> pd.DataFrame:
    """The problem units of the last run, one row each (``schema.PROBLEM_COLUMNS``)."""
    return ResultsStore(path).problems()


def fitted_params(path: str | Path, key: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(phi, theta) of the cell ``key``: its guide's parameters and its learned model parameters, as the
    backend's ``Fit`` held them, from the file its row names (``schema.FITTED_PARAMS``)."""
    rows = load(path)
    match = rows[rows[schema.KEY] == key] if not rows.empty else rows
    if match.empty:
        raise KeyError(f"no cell {key!r} in {path}")
    with np.load(Path(path) / match[schema.FITTED_PARAMS].iloc[0]) as arrays:
        return schema.split_fitted(dict(arrays))


__all__ = ["ResultsStore", "estimates", "fitted_params", "load", "problems"]
