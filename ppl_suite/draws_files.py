"""Where the draws of a results folder's cells are kept as files: ``kept/check/draws/<cell key>/``
holds ``q.nc`` (the fitted guide's draws) and ``reference.nc`` (the posterior the cell was compared
with), ArviZ InferenceData as NetCDF (``ppl_suite.references.inference_data``), and ``digest``, the
cell digest they were drawn from and each file's sha256 (JSON). Written by ``ppl-suite check``
through the store's kept files (``ResultsStore.write_kept``); read by the report and by the user
(``arviz.from_netcdf``)."""

from __future__ import annotations

from pathlib import Path

from ppl_suite.store import KEPT, ResultsStore

STUDY = "check"
FOLDER = "draws"
KINDS = ("q", "reference")
DIGEST = "digest"
RELATIVE = f"{KEPT}/{STUDY}/{FOLDER}"  # the folder of every cell's draws, relative to the results folder


def cell_parts(key: str, name: str) -> tuple[str, ...]:
    """The parts, under the study's kept folder, of file ``name`` of cell ``key`` (the key's parts as
    folders: ``ResultsStore.kept_path`` refuses ``..`` and links)."""
    return (FOLDER, *key.split("/"), name)


def draws_folder(results: str | Path, key: str) -> Path:
    """The folder of cell ``key``'s draws files."""
    return ResultsStore(results).kept_path(STUDY, *cell_parts(key, "x")[:-1])


def draws_files(results: str | Path, key: str) -> dict[str, Path]:
    """The NetCDF files of cell ``key`` that exist, by kind (``KINDS``)."""
    store = ResultsStore(results)
    found = {kind: store.kept_file(STUDY, *cell_parts(key, f"{kind}.nc")) for kind in KINDS}
    return {kind: path for kind, path in found.items() if path is not None}
