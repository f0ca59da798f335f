"""What a check keeps in its results folder, beside the runner's files, so that its cells can be
reread, redrawn and compared later in any process: ``check/model.json`` (the UserModel, its data
pointing at ``check/data.npz``), ``check/data.npz`` (the data as checked) and
``check/fingerprint.json`` (model files' sha256 and the data digest: when they change, the folder's
stored cells are not reused), and ``draws/<cell key>/`` (q's and the reference's draws of each
finished cell as NetCDF, with the digest of the cell they were drawn from)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ppl_suite.checking.sources import load_data
from ppl_suite.checking.user_model import UserModel, fingerprint, register

FOLDER = "check"
MODEL = "model.json"
DATA = "data.npz"
FINGERPRINT = "fingerprint.json"


def stored_fingerprint(results: str | Path) -> dict[str, Any] | None:
    """The fingerprint of the check stored in a results folder, None when there is none."""
    path = Path(results) / FOLDER / FINGERPRINT
    return json.loads(path.read_text()) if path.is_file() else None


def save_data(data: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{name: np.asarray(value) for name, value in data.items()})
    return path


def store(results: str | Path, user: UserModel) -> None:
    """Keep ``user`` (its data copied) in the results folder."""
    folder = Path(results) / FOLDER
    data = save_data(load_data(user.data), folder / DATA)
    kept = replace(user, data=str(data.resolve()))
    (folder / MODEL).write_text(json.dumps(kept.to_json(), indent=1))
    (folder / FINGERPRINT).write_text(json.dumps(fingerprint(kept), indent=1))


def register_stored(results: str | Path) -> UserModel | None:
    """Register the model of a check's results folder (none for a folder of ``ppl-suite run``)."""
    path = Path(results) / FOLDER / MODEL
    if not path.is_file():
        return None
    user = UserModel.from_json(json.loads(path.read_text()))
    user = replace(user, data=str(Path(results).resolve() / FOLDER / DATA))
    register(user)
    return user


DRAWS = "draws"  # draws/<cell key>/q.nc, reference.nc, digest: written by ``checking.draws.write_draws``
DRAWS_KINDS = ("q", "reference")
DRAWS_DIGEST = "digest"


def draws_folder(results: str | Path, key: str) -> Path:
    """Where the draws of cell ``key`` are kept: ``draws/<key>/`` (the key's parts as folders)."""
    return Path(results) / DRAWS / Path(*key.split("/"))


def draws_files(results: str | Path, key: str) -> dict[str, Path]:
    """The NetCDF files of cell ``key`` that exist: ``q`` (q's draws) and ``reference`` (the posterior
    it was compared with), each InferenceData (``arviz.from_netcdf``)."""
    folder = draws_folder(results, key)
    return {kind: folder / f"{kind}.nc" for kind in DRAWS_KINDS if (folder / f"{kind}.nc").is_file()}
