"""A stored reference read for its draws and summary alone, without ArviZ: what a cell needs.

A worker that evaluates a cell against a stored reference needs its posterior draws and its summary
(gates, AIS evidence), not the whole InferenceData: the posterior group of the NetCDF file is read with
xarray (the library ArviZ reads it with), the summary from that group's attribute, and the summary's
fields parsed by ``summary_fields``, as ``Reference.load`` reads them. In a worker that has already
loaded torch, JAX, SciPy and pandas, ArviZ's import costs about a second (its plotting, matplotlib);
xarray's a tenth of one. Only the posterior group is opened: damage in another group of the file does
not touch what a cell reads. No file, a damaged file, a damaged summary copy or a summary lacking a
field gives None, and ``reference_for`` then loads, repairs or rebuilds the reference and says why.
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


def summary_fields(summary: dict) -> dict[str, Any]:
    """A stored reference's fields read from its summary (``references.reference``'s module docstring
    has its shape), as ``Reference`` and ``StoredPosterior`` hold them; KeyError or TypeError where
    the summary lacks one."""
    evidence = summary["evidence"]
    return {
        "model": summary["model"],
        "data_seed": summary["data_seed"],
        "overrides": summary["overrides"],
        "summary": summary,
        "gates": GateResult.from_dict(summary["gates"]),
        "seconds": summary["seconds"],
        "settings": NUTSSettings(**summary["settings"]),
        "versions": summary["versions"],
        "command": summary["command"],
        "log_evidence": evidence["log_evidence"],
        "log_evidence_se": evidence["se"],
        "evidence": evidence,
    }


@dataclass(frozen=True)
class StoredPosterior:
    """A stored reference without its InferenceData (``Reference`` adds it, and whether it was found
    stored): what ``ReferencePosterior.of`` and ``describe`` read."""

    model: str
    data_seed: int
    overrides: dict
    draws: Latents
    summary: dict
    gates: GateResult
    seconds: float
    settings: NUTSSettings
    versions: dict
    command: str
    log_evidence: float | None
    log_evidence_se: float | None
    evidence: dict
    path: Path


def stored_posterior(
    problem: Problem, settings: NUTSSettings | None = None, *, cache_dir: Path | None = None
) -> StoredPosterior | None:
    """The reference of ``problem`` under ``settings`` (None: ``settings.settings_for``) stored under
    the current key, without its InferenceData; None when there is none, when either of its files is
    damaged or when its summary lacks a field (``reference_for`` then names the damage and rewrites
    the summary's copy or rebuilds the reference)."""
    import xarray

    settings = settings or settings_module.settings_for(problem.spec)
    path = cache.reference_path(problem, settings, cache_dir)
    if cache.stored_summary(path) is None:  # none stored, or either of its files damaged
        return None
    try:
        with xarray.open_dataset(path, group="posterior", engine="h5netcdf") as posterior:
            draws = posterior_draws(posterior, problem)  # read whole before the file closes
            fields = summary_fields(json.loads(posterior.attrs[ATTRIBUTE]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return StoredPosterior(draws=draws, path=path, **fields)
