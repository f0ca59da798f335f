"""Reading results folders, for people who analyse results themselves. Column names: ``ppl_suite.schema``.

from ppl_suite import results
cells = results.load("results/default")          # one row per cell (schema.CELL_COLUMNS)
long = results.estimates("results/default")      # one row per (cell or problem unit, estimator)
problems = results.problems("results/default")   # one row per problem unit (guide-free estimators)
phi, theta = results.fitted_params("results/default", cells["key"][0])
vae = results.vae_tables("results/vae")          # the VAE study's tables by name (ppl_suite.vae.results)

A folder that is missing or not a results folder, a damaged manifest and a file named outside the
folder raise ``ppl_suite.InputProblem`` (``store.DamagedFile``, ``paths.OutsideFolder``).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ppl_suite import paths, schema
from ppl_suite.errors import InputProblem
from ppl_suite.store import DIGEST, MANIFEST, DamagedFile, ResultsStore

FITTED_PARAMS_FILE = re.compile(rf"artifacts/(?P<digest>{DIGEST.pattern})\.npz")  # what store.write names


def opened(path: str | Path) -> ResultsStore:
    """The store of an existing results folder (a manifest, checked, or a cells/ folder); raises
    InputProblem naming the folder when it is missing or not a results folder."""
    store = ResultsStore(path)
    if not store.path.is_dir():
        raise InputProblem(f"{store.path}: no such results folder")
    if store.is_results_folder():
        store.manifest()  # raises DamagedFile when damaged or newer
    elif not paths.inside(store.path, "cells").is_dir():
        raise InputProblem(f"{store.path} is not a results folder (no {MANIFEST} or cells/)")
    return store


def load(path: str | Path) -> pd.DataFrame:
    """The cell table of a results folder's last run, one row per cell; its evaluation columns
    (``schema.EVALUATION_COLUMNS``: ELBO, KL by its route, residual, gap) derived from each cell's
    rows of the estimates table (``cell_columns``), or in a folder of schema version 3 as stored."""
    return opened(path).rows()


def vae_tables(path: str | Path) -> dict[str, pd.DataFrame]:
    """The VAE study's tables by name (columns: ``ppl_suite.vae.results``); {} when the folder has none."""
    return opened(path).vae_tables()


def estimates(path: str | Path) -> pd.DataFrame:
    """The long estimates table of the last run: exactly ``schema.ESTIMATE_COLUMNS``. A cell's
    guide-free estimates are the rows whose key is its ``problem_key`` (scope "problem")."""
    return opened(path).estimates()


def problems(path: str | Path) -> pd.DataFrame:
    """The problem units of the last run, one row each (``schema.PROBLEM_COLUMNS``)."""
    return opened(path).problems()


def fitted_params(path: str | Path, key: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(phi, theta) of the cell ``key``: its guide's parameters and its learned model parameters, as the
    backend's ``Fit`` held them, from the file its row names (``schema.FITTED_PARAMS``): only
    ``artifacts/<its digest>.npz`` inside the folder is read, anything else is a DamagedFile."""
    store = opened(path)
    rows = store.rows()
    match = rows[rows[schema.KEY] == key] if not rows.empty else rows
    if match.empty:
        raise KeyError(f"no cell {key!r} in {path}")
    named = match[schema.FITTED_PARAMS].iloc[0]
    found = FITTED_PARAMS_FILE.fullmatch(named) if isinstance(named, str) else None
    if found is None or found["digest"] != match[schema.DIGEST].iloc[0]:
        raise DamagedFile(
            f"cell {key!r} of {store.path}: its row names its fitted parameters {named!r}, not its own "
            "artifacts/<digest>.npz; nothing outside the cell's own file is read"
        )
    try:
        arrays = store.artifacts(found["digest"])
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DamagedFile(
            f"{store.unit_file('artifacts', found['digest'])} is damaged ({type(error).__name__})"
        ) from None
    return schema.split_fitted(arrays)


__all__ = ["ResultsStore", "estimates", "fitted_params", "load", "opened", "problems"]
