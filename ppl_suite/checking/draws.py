"""Draws of any cell of a results folder as ArviZ InferenceData: q's, rebuilt from the stored fitted
parameters phi, and the posterior the cell was compared with (exact draws where the model has an
oracle, else its NUTS reference, with its chains), each savable as NetCDF.

    draws = cell_draws("results/mine", key)
    draws.q.posterior["mu"], draws.reference.posterior["mu"]
    draws.to_netcdf("out/")          # out/q.nc, out/reference.nc
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ppl_suite import paths, results, schema
from ppl_suite.spec import Latents

if TYPE_CHECKING:
    import arviz as az

DRAWS = 4000


@dataclass(frozen=True)
class CellDraws:
    """q's draws (one chain) and the reference posterior's, as InferenceData."""

    q: az.InferenceData
    reference: az.InferenceData

    def to_netcdf(self, folder: str | Path) -> dict[str, Path]:
        """Write ``q.nc`` and ``reference.nc`` into ``folder``; returns their paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = {}
        for name, data in (("q", self.q), ("reference", self.reference)):
            written[name] = folder / f"{name}.nc"
            data.to_netcdf(str(written[name]))
        return written


def _one_chain(latents: Latents) -> az.InferenceData:
    import arviz as az

    return az.from_dict(posterior={name: np.asarray(value)[None] for name, value in latents.items()})


def cell_draws(
    folder: str | Path,
    key: str,
    n: int = DRAWS,
    seed: int = 0,
    *,
    files: Iterable[str | Path] = (),
    trust_stored_code: bool = False,
) -> CellDraws:
    """q's n draws (seeded by ``seed``) and the reference draws of cell ``key`` of a results folder.
    A results folder of ``ppl-suite check`` needs its model, which is never imported from the folder:
    registered in this process already, or ``files`` (the model's and own guides' Python files, passed
    again, checked by sha256), or ``trust_stored_code`` (``checking.stored.register_stored``)."""
    from ppl_suite.checking.stored import register_stored
    from ppl_suite.problem import Problem
    from ppl_suite.targets.fitted_guide import FittedGuide

    register_stored(folder, files, trust_stored_code)
    rows = results.load(folder)
    match = rows[rows[schema.KEY] == key] if not rows.empty else rows
    if match.empty:
        raise KeyError(
            f"no cell {key!r} in {folder}; cells: {', '.join(rows[schema.KEY]) if not rows.empty else 'none'}"
        )
    row = match.iloc[0]
    phi, theta = results.fitted_params(folder, key)
    problem = Problem.build(row[schema.MODEL], int(row[schema.DATA_SEED]), json.loads(row[schema.PARAMS]))
    problem = problem.with_params(theta)
    q = _one_chain(FittedGuide(problem, row[schema.GUIDE], phi).sample(seed, n))
    exact = problem.exact()
    if exact is not None:
        reference = _one_chain(exact.sample(np.random.default_rng(seed), n))
    else:
        from ppl_suite.references import reference_for

        reference = reference_for(problem).idata
    return CellDraws(q, reference)


def write_draws(folder: str | Path, n: int = DRAWS, seed: int = 0) -> dict[str, dict[str, Path]]:
    """Write the draws of every finished cell of a results folder as NetCDF (``stored.draws_files``),
    skipping a cell whose files were drawn from the same cell digest (nothing is imported or drawn
    then: a re-check pays nothing here); returns the files by cell key."""
    from ppl_suite.checking import stored

    rows = results.load(folder)
    written = {}
    for _, row in rows[rows[schema.STATUS] == schema.OK].iterrows() if not rows.empty else ():
        key, place = row[schema.KEY], stored.draws_folder(folder, row[schema.KEY])
        marker = paths.inside(place, stored.DRAWS_DIGEST)
        if not (paths.is_own_file(marker) and marker.read_text(errors="replace") == row[schema.DIGEST]):
            _write(cell_draws(folder, key, n, seed), place, marker, row[schema.DIGEST])
        elif damaged := _unreadable(stored.draws_files(folder, key), place):
            warnings.warn(f"{'; '.join(damaged)}: drawn again", stacklevel=2)
            _write(cell_draws(folder, key, n, seed), place, marker, row[schema.DIGEST])
        written[key] = stored.draws_files(folder, key)
    return written


def _write(draws: CellDraws, place: Path, marker: Path, digest: str) -> None:
    """The draws' files, then the digest they were drawn from (so a killed write is drawn again)."""
    from ppl_suite.checking.stored import DRAWS_KINDS

    paths.remove(marker.parent, marker.name)
    for kind in DRAWS_KINDS:
        paths.inside(place, f"{kind}.nc")  # raises on a link: nothing is written through one
    draws.to_netcdf(place)
    marker.write_text(digest)


def _unreadable(found: dict[str, Path], place: Path) -> list[str]:
    """One phrase per draws file of ``place`` that is missing or cannot be read as NetCDF."""
    import arviz as az

    from ppl_suite.checking.stored import DRAWS_KINDS

    damaged = [f"{place / f'{kind}.nc'} is missing" for kind in DRAWS_KINDS if kind not in found]
    for path in found.values():
        try:
            az.from_netcdf(str(path))
        except Exception as error:  # h5py, netCDF4 and xarray raise many kinds
            damaged.append(f"{path} is damaged ({type(error).__name__})")
    return damaged
