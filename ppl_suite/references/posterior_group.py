"""A stored reference read for its draws and summary alone, without ArviZ: what a cell needs.

A worker that evaluates a cell against a stored reference needs its posterior draws and its summary
(gates, AIS evidence), not the whole InferenceData: the posterior group of the NetCDF file is read with
xarray (the library ArviZ reads it with), the summary from that group's attribute, as
``Reference.load`` reads them. Importing ArviZ (its plotting, matplotlib, SciPy's statistics) costs a
worker about a second; this reader costs a tenth of that. Anything unusual (no file, a damaged one)
gives None, and ``reference_for`` then loads, repairs or rebuilds the reference and says why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ppl_suite.problem import Problem
from ppl_suite.references import cache
from ppl_suite.references import settings as settings_module
from ppl_suite.references.gates import GateResult
from ppl_suite.references.settings import NUTSSettings
from ppl_suite.spec import Latents

ATTRIBUTE = "ppl_suite_reference"  # the posterior group's attribute holding the summary as JSON


def posterior_draws(posterior: Any, problem: Problem) -> Latents:
    """The draws of ``problem``'s sites from a posterior group (an xarray Dataset with dimensions
    chain, draw, ...), chains flattened: (n, *site.shape)."""
    return {site.name: np.asarray(posterior[site.name]).reshape(-1, *site.shape) for site in problem.sites}


@dataclass(frozen=True)
class StoredPosterior:
    """The draws and summary of a stored reference (``references.reference``'s module docstring has
    the summary's shape); read by ``ReferencePosterior.of`` and ``describe`` as a ``Reference`` is."""

    draws: Latents
    summary: dict
    path: Path

    @property
    def evidence(self) -> dict:
        return self.summary["evidence"]

    @property
    def log_evidence(self) -> float | None:
        return self.evidence["log_evidence"]

    @property
    def log_evidence_se(self) -> float | None:
        return self.evidence["se"]

    @property
    def gates(self) -> GateResult:
        return GateResult.from_dict(self.summary["gates"])


def stored_posterior(
    problem: Problem, settings: NUTSSettings | None = None, *, cache_dir: Path | None = None
) -> StoredPosterior | None:
    """The draws and summary of the reference of ``problem`` under ``settings`` (None:
    ``settings.settings_for``) stored under the current key, or None when there is none or either of
    its files cannot be read whole (``reference_for`` then names the damage, and rewrites the summary's
    copy or rebuilds the reference)."""
    import xarray

    settings = settings or settings_module.settings_for(problem.spec)
    path = cache.reference_path(problem, settings, cache_dir)
    if cache.stored_summary(path) is None:  # none stored, or either of its files damaged
        return None
    try:
        with xarray.open_dataset(path, group="posterior", engine="h5netcdf") as posterior:
            return StoredPosterior(
                posterior_draws(posterior, problem), json.loads(posterior.attrs[ATTRIBUTE]), path
            )
    except (OSError, ValueError, KeyError, TypeError):
        return None
