"""The results folder: the only writer of results, and the resume cache.

    RESULTS/
      manifest.json          what was run: config, versions, commit, host, times
      cells/<digest>.json    one row per finished cell, written atomically (temp file + rename)
      traces/<digest>.npy    the cell's training loss (-ELBO estimate) per SVI step
      artifacts/<digest>.npz named arrays for the report (draws of q and of the posterior, curves)
      rows.parquet           all rows as one table, rewritten after every run

``digest`` is a hash of the cell's full definition, so a changed cell gets a new digest and
``--resume`` reruns exactly the missing or changed cells. A killed run loses at most the cells in flight.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ppl_suite.cell import Cell, Record

SCHEMA_VERSION = 1


def digest(cell: Cell) -> str:
    """sha256 of the cell's definition (all fields, SVI settings included), 16 hex digits."""
    text = json.dumps(asdict(cell), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _atomic_write(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ResultsStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        payload = {"schema_version": SCHEMA_VERSION, **manifest}
        _atomic_write(self.path / "manifest.json", json.dumps(payload, indent=2, default=str).encode())

    def manifest(self) -> dict[str, Any]:
        return json.loads((self.path / "manifest.json").read_text())

    def clear(self) -> None:
        """Forget earlier cells of this folder (a fresh run, not a resumed one)."""
        for part in ("cells", "traces", "artifacts"):
            shutil.rmtree(self.path / part, ignore_errors=True)
        (self.path / "rows.parquet").unlink(missing_ok=True)

    def has(self, cell: Cell) -> bool:
        return (self.path / "cells" / f"{digest(cell)}.json").exists()

    def write(self, cell: Cell, record: Record) -> None:
        """Trace and artifacts first, row last: a row on disk always has its arrays."""
        name = digest(cell)
        with tempfile.TemporaryFile() as buffer:
            np.save(buffer, np.asarray(record.losses, dtype=float))
            buffer.seek(0)
            _atomic_write(self.path / "traces" / f"{name}.npy", buffer.read())
        with tempfile.TemporaryFile() as buffer:
            np.savez(buffer, **record.artifacts)
            buffer.seek(0)
            _atomic_write(self.path / "artifacts" / f"{name}.npz", buffer.read())
        row = {**record.row, "digest": name, "schema_version": SCHEMA_VERSION}
        _atomic_write(self.path / "cells" / f"{name}.json", json.dumps(row, default=_plain).encode())

    def trace(self, digest_: str) -> np.ndarray:
        return np.load(self.path / "traces" / f"{digest_}.npy")

    def artifacts(self, digest_: str) -> dict[str, np.ndarray]:
        with np.load(self.path / "artifacts" / f"{digest_}.npz") as arrays:
            return dict(arrays)

    def rows(self) -> pd.DataFrame:
        files = sorted((self.path / "cells").glob("*.json"))
        rows = [json.loads(f.read_text()) for f in files]
        frame = pd.DataFrame(rows)
        return frame.sort_values("key", kind="stable").reset_index(drop=True) if rows else frame

    def finalize(self) -> pd.DataFrame:
        """Write rows.parquet from the per-cell rows and return the table."""
        frame = self.rows()
        if not frame.empty:
            with tempfile.NamedTemporaryFile(dir=self.path, suffix=".parquet", delete=False) as tmp:
                frame.to_parquet(tmp.name, index=False)
            os.replace(tmp.name, self.path / "rows.parquet")
        return frame


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def load(path: str | Path) -> pd.DataFrame:
    """All finished cells of a results folder as a DataFrame, one row per cell."""
    return ResultsStore(path).rows()
