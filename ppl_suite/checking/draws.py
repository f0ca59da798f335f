"""Draws of any cell of a results folder as ArviZ InferenceData: q's, rebuilt from the stored fitted
parameters phi, and the posterior the cell was compared with (exact draws where the model has an
oracle, else its NUTS reference, with its chains and sampler statistics), each savable as NetCDF,
laid out as ArviZ users expect (``ppl_suite.references.inference_data``: several chains, plate-named
dims, deterministic sites, observed data and log-likelihood; q's posterior attributes carry the
cell's ELBO, log p(x), KL and k-hat with their SEs).

    draws = cell_draws("results/mine", key)
    draws.q.posterior["mu"], draws.reference.posterior["mu"]
    draws.to_netcdf("out/")          # out/q.nc, out/reference.nc

A check writes every finished cell's draws into its results folder (``write_draws``), each computed
while the other cells still run (``DrawsAhead``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import queue
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ppl_suite import draws_files, results, schema
from ppl_suite.store import ResultsStore

if TYPE_CHECKING:
    import arviz as az
    import pandas as pd

    from ppl_suite.problem import Problem

DRAWS = 4000
# the cell's numbers kept as q's attributes, named as ``ppl_suite.check``'s table names them
CELL_ATTRIBUTES = (
    schema.MODEL, schema.GUIDE, schema.BACKEND, schema.SEED, schema.ELBO, schema.ELBO_SE,
    schema.LOG_EVIDENCE, schema.LOG_EVIDENCE_SE, schema.KL, schema.KL_SE,
)  # fmt: skip


@dataclass(frozen=True)
class CellDraws:
    """q's draws (independent, in ``inference_data.CHAINS`` chains) and the reference posterior's, as
    InferenceData."""

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


def _cell_attributes(row: pd.Series, k_hat: float) -> dict[str, Any]:
    """The cell's identity and numbers (NaN where not stored), and its PSIS k-hat."""
    values = {name: row.get(name, math.nan) for name in CELL_ATTRIBUTES}
    return {**values, "k_hat": k_hat, "cell": row[schema.KEY]}


def _k_hat(folder: str | Path, key: str) -> float:
    found = results.estimates(folder)
    if found.empty:
        return math.nan
    found = found[(found[schema.KEY] == key) & (found[schema.ESTIMATOR] == "psis")]
    found = found[found[schema.STATUS] == schema.ESTIMATE_OK]
    return float(found.iloc[0][schema.VALUE]) if not found.empty else math.nan


def cell_draws(
    folder: str | Path,
    key: str,
    n: int = DRAWS,
    seed: int = 0,
    *,
    files: Iterable[str | Path] = (),
    trust_stored_code: bool = False,
) -> CellDraws:
    """q's n draws (seeded by ``seed``; n a multiple of ``inference_data.CHAINS``) and the reference
    draws of cell ``key`` of a results folder. A results folder of ``ppl-suite check`` needs its
    model, which is never imported from the folder: registered in this process already, or ``files``
    (the model's and own guides' Python files, passed again, checked by sha256), or
    ``trust_stored_code`` (``checking.stored.register_stored``)."""
    from ppl_suite.checking.stored import register_stored

    register_stored(folder, files, trust_stored_code)
    return _row_draws(folder, _row(folder, key), n, seed, _nuts_reference)


def _nuts_reference(problem: Problem) -> az.InferenceData:
    """The stored NUTS reference of ``problem`` as InferenceData (``references.reference_for``)."""
    from ppl_suite.references import reference_for

    return reference_for(problem).idata


def _stored_reference(problem: Problem) -> az.InferenceData:
    """The NUTS reference of ``problem`` when it is stored already (``references.stored_reference``);
    LookupError when it would have to be built."""
    from ppl_suite.references import stored_reference

    found = stored_reference(problem)
    if found is None:
        raise LookupError(f"no stored reference of {problem.spec.name!r} yet")
    return found.idata


def _row(folder: str | Path, key: str) -> pd.Series:
    """The stored row of cell ``key``; KeyError naming the cells there when it has none."""
    rows = results.load(folder)
    match = rows[rows[schema.KEY] == key] if not rows.empty else rows
    if match.empty:
        raise KeyError(
            f"no cell {key!r} in {folder}; cells: {', '.join(rows[schema.KEY]) if not rows.empty else 'none'}"
        )
    return match.iloc[0]


def _row_draws(
    folder: str | Path,
    row: pd.Series,
    n: int,
    seed: int,
    nuts_reference: Callable[[Problem], az.InferenceData],
) -> CellDraws:
    """``cell_draws`` of the cell of ``row``, its model registered, the reference of a model without an
    oracle given by ``nuts_reference``."""
    from ppl_suite.problem import Problem
    from ppl_suite.references.inference_data import draws_data
    from ppl_suite.targets.fitted_guide import FittedGuide

    key = row[schema.KEY]
    phi, theta = results.fitted_params(folder, key)
    problem = Problem.build(row[schema.MODEL], int(row[schema.DATA_SEED]), json.loads(row[schema.PARAMS]))
    problem = problem.with_params(theta)
    latents = FittedGuide(problem, row[schema.GUIDE], phi).sample(seed, n)
    q = draws_data(problem, latents, _cell_attributes(row, _k_hat(folder, key)))
    exact = problem.exact()
    if exact is not None:
        drawn = exact.sample(np.random.default_rng(seed), n)
        reference = draws_data(problem, drawn, {"model": problem.spec.name, "source": "exact posterior"})
    else:
        reference = nuts_reference(problem)
    return CellDraws(q, reference)


class _References:
    """The NUTS references of one ``write_draws``: each loaded once (one key of its problem, data seed
    and parameters) by ``load`` (default: loaded, or built, by ``references.reference_for``), and its
    NetCDF written once, then copied byte for byte into the other cells' folders (the same
    InferenceData writes the same bytes)."""

    def __init__(self, load: Callable[[Problem], az.InferenceData] | None = None) -> None:
        self.load = load or _nuts_reference
        self.loaded: dict[str, az.InferenceData] = {}
        self.files: dict[int, Path] = {}

    def __call__(self, problem: Problem) -> az.InferenceData:
        key = json.dumps(
            [problem.spec.name, problem.data_seed, dict(problem.params)], sort_keys=True, default=schema.plain
        )
        if key not in self.loaded:
            self.loaded[key] = self.load(problem)
        return self.loaded[key]

    def writer(self, data: az.InferenceData) -> Callable[[Path], None]:
        """Writes ``data`` to a path: a copy of the file written before from the same reference (only
        the references loaded here are recorded, and they stay alive: their ids are theirs)."""
        written = self.files.get(id(data))
        if written is not None and written.is_file():
            return lambda path: shutil.copyfile(written, path)
        return lambda path: data.to_netcdf(str(path))

    def wrote(self, data: az.InferenceData, path: Path) -> None:
        if any(data is d for d in self.loaded.values()):
            self.files[id(data)] = path


def write_draws(
    folder: str | Path, n: int = DRAWS, seed: int = 0, ahead: DrawsAhead | None = None
) -> dict[str, dict[str, Path]]:
    """Write the draws of every finished cell of a results folder as NetCDF through the store's kept
    files (``ppl_suite.draws_files``), skipping a cell whose files were drawn from the same cell
    digest and still hold the bytes written (their sha256, kept beside the digest: nothing is
    imported, drawn or parsed then, so a re-check pays a few milliseconds here); each NUTS reference
    is loaded and written once (``_References``); the files ``ahead`` wrote while the cells ran (for
    this folder, ``n`` and ``seed``) are copied in where the cell's row still has the digest they were
    drawn from; returns the files by cell key."""
    from ppl_suite.checking.stored import register_stored

    store = ResultsStore(folder)
    if ahead is not None and (ahead.folder, ahead.n, ahead.seed) != (Path(folder), n, seed):
        ahead = None  # drawn for another folder or other settings
    drawn = ahead.finished() if ahead is not None else {}
    references = ahead.references if ahead is not None else _References()
    rows = results.load(folder)
    written = {}
    for _, row in rows[rows[schema.STATUS] == schema.OK].iterrows() if not rows.empty else ():
        key = row[schema.KEY]
        marker = store.kept_file(draws_files.STUDY, *draws_files.cell_parts(key, draws_files.DIGEST))
        stamp = _stamp(marker.read_text(errors="replace")) if marker is not None else None
        damaged = None
        if stamp is not None and stamp[0] == row[schema.DIGEST]:
            damaged = _changed(draws_files.draws_files(folder, key), stamp[1], store, key)
            if damaged:
                warnings.warn(f"{'; '.join(damaged)}: drawn again", stacklevel=2)
        if stamp is None or stamp[0] != row[schema.DIGEST] or damaged:
            files = drawn.get((key, row[schema.DIGEST]))
            if files is not None:
                copies = {kind: functools.partial(shutil.copyfile, path) for kind, path in files.items()}
                _kept(store, key, row[schema.DIGEST], copies)
            else:
                register_stored(folder)
                draws = _row_draws(folder, row, n, seed, references)
                _write(draws, store, key, row[schema.DIGEST], references)
        written[key] = draws_files.draws_files(folder, key)
    return written


class DrawsAhead:
    """The draws of a run's cells drawn while its other cells still run, in a thread of this process
    (idle while worker processes fit; not for cells fitted in this process: NumPyro's and Pyro's
    effect handlers are global to a process): ``draw`` queues a cell that finished ok; the thread
    draws it and writes its files to a temporary folder of its own (only their paths are held);
    ``write_draws(..., ahead=)`` copies them into the results folder. The thread registers no model
    (the caller's model is registered already) and builds no reference (a cell whose reference is not
    stored yet, or whose draws fail here, is drawn by ``write_draws``, which raises what fails).
    ``close`` (always, before the run returns) stops the thread after the cell it is on and removes
    its folder."""

    def __init__(self, folder: str | Path, n: int = DRAWS, seed: int = 0) -> None:
        self.folder, self.n, self.seed = Path(folder), n, seed
        self.references = _References(_stored_reference)
        self._files: dict[tuple[str, str], dict[str, Path]] = {}
        self._scratch = tempfile.TemporaryDirectory(prefix="ppl-suite-draws-")
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._draw_queued, name="ppl-suite-draws", daemon=True)
        self._thread.start()

    def draw(self, key: str) -> None:
        """Queue cell ``key``, whose row and fitted parameters are in the folder."""
        self._queue.put(key)

    def _draw_queued(self) -> None:
        while (key := self._queue.get()) is not None and not self._stopped.is_set():
            try:
                row = _row(self.folder, key)
                draws = _row_draws(self.folder, row, self.n, self.seed, self.references)
                place = Path(tempfile.mkdtemp(dir=self._scratch.name))  # one folder a cell
                files = {"q": place / "q.nc", "reference": place / "reference.nc"}
                draws.q.to_netcdf(str(files["q"]))
                self.references.writer(draws.reference)(files["reference"])
                self.references.wrote(draws.reference, files["reference"])
            except Exception:  # drawn again, and raised, by write_draws
                continue
            self._files[(key, row[schema.DIGEST])] = files

    def finished(self) -> dict[tuple[str, str], dict[str, Path]]:
        """The files of every queued cell once all are drawn, by (cell key, row digest)."""
        self._queue.put(None)
        self._thread.join()
        self.references.load = _nuts_reference  # write_draws builds what is not stored
        return dict(self._files)

    def close(self) -> None:
        self._stopped.set()
        self._queue.put(None)
        self._thread.join()
        self._scratch.cleanup()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stamp(text: str) -> tuple[str, dict[str, str]] | None:
    """(the cell digest, {kind: sha256 of its file}) of a digest marker, or None when it is not one
    (a marker of an earlier version held the cell digest alone: its files are drawn again)."""
    try:
        stamp = json.loads(text)
        digest, files = stamp["cell"], stamp["files"]
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(digest, str) or not isinstance(files, dict):
        return None
    return digest, {str(kind): str(value) for kind, value in files.items()}


def _write(
    draws: CellDraws, store: ResultsStore, key: str, digest: str, references: _References | None = None
) -> None:
    """The draws' files (``_kept``); ``references``: those of the ``write_draws`` writing them (a
    reference's file copied where it was written already)."""
    references = references or _References()
    writers = {
        "q": lambda path, d=draws.q: d.to_netcdf(str(path)),
        "reference": references.writer(draws.reference),
    }
    written = _kept(store, key, digest, writers)
    references.wrote(draws.reference, written["reference"])


def _kept(
    store: ResultsStore, key: str, digest: str, writers: dict[str, Callable[[Path], Any]]
) -> dict[str, Path]:
    """Each draws file of cell ``key`` written by its writer through the store's kept files, then the
    marker (``_stamp``: the cell digest they were drawn from and each file's sha256), so a killed
    write is drawn again; returns the files by kind."""
    study = draws_files.STUDY
    store.remove_kept(study, *draws_files.cell_parts(key, draws_files.DIGEST))
    written = {
        kind: store.write_kept(study, draws_files.cell_parts(key, f"{kind}.nc"), write)
        for kind, write in writers.items()
    }
    found = draws_files.draws_files(store.path, key)
    stamp = json.dumps({"cell": digest, "files": {kind: _sha256(path) for kind, path in found.items()}})
    marker = draws_files.cell_parts(key, draws_files.DIGEST)
    store.write_kept(study, marker, lambda path: path.write_text(stamp))
    return written


def _changed(found: dict[str, Path], written: dict[str, str], store: ResultsStore, key: str) -> list[str]:
    """One phrase per draws file of cell ``key`` that is missing or no longer holds the bytes written
    (its sha256 differs from the marker's)."""
    place = draws_files.draws_folder(store.path, key)
    damaged = [f"{place / f'{kind}.nc'} is missing" for kind in draws_files.KINDS if kind not in found]
    return damaged + [
        f"{path} is damaged (not the file written)"
        for kind, path in found.items()
        if written.get(kind) != _sha256(path)
    ]
