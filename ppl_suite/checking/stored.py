"""What a check keeps in its results folder, beside the runner's files, so that its cells can be
reread, redrawn and compared later in any process, all through the store's kept files
(``ResultsStore.write_kept``: a temporary file renamed, written under the run's lock, removed by
``--fresh``): ``kept/check/model.json`` (the UserModel, its data pointing at ``kept/check/data.npz``),
``kept/check/data.npz`` (the data as checked) and ``kept/check/fingerprint.json`` (model files' sha256
and the data digest: when they change, the folder's stored cells are not reused), and q's and the
reference's draws of each finished cell as NetCDF (``ppl_suite.draws_files``); after the run,
``kept/check/memo.json`` (``checking.memo``)."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from ppl_suite import draws_files as draws_layout
from ppl_suite import paths
from ppl_suite.checking.sources import load_data
from ppl_suite.checking.user_model import UserModel, fingerprint, register, registered
from ppl_suite.errors import InputProblem
from ppl_suite.store import KEPT, DamagedFile, ResultsStore

STUDY = draws_layout.STUDY  # the check's kept files: kept/check/...
FOLDER = f"{KEPT}/{STUDY}"
MODEL = "model.json"
DATA = "data.npz"
FINGERPRINT = "fingerprint.json"
SOURCES = "sources"  # the fingerprint's {model or guide file: sha256}


def _read_json(results: str | Path, name: str) -> Any:
    """The JSON of check/<name> (None when missing); raises DamagedFile naming it when unreadable."""
    path = paths.inside(results, FOLDER, name)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        raise DamagedFile(f"{path} is damaged: {type(error).__name__}: {error}") from None


def stored_fingerprint(results: str | Path) -> dict[str, Any] | None:
    """The fingerprint of the check stored in a results folder, None when there is none; {} (which
    matches no check) with a warning naming the file when it is damaged, so its cells are rerun."""
    try:
        found = _read_json(results, FINGERPRINT)
    except DamagedFile as error:
        warnings.warn(f"{error}; the folder's cells are rerun", stacklevel=2)
        return {}
    if found is not None and not isinstance(found, dict):
        warnings.warn(
            f"{results}/{FOLDER}/{FINGERPRINT} is damaged: not an object; its cells are rerun", stacklevel=2
        )
        return {}
    return found


def save_data(data: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:  # a file object: np.savez adds no .npz to the name
        np.savez(handle, **{name: np.asarray(value) for name, value in data.items()})
    return path


def store(results: str | Path | ResultsStore, user: UserModel) -> None:
    """Keep ``user`` (its data copied) in the results folder through its kept files (each a temporary
    file renamed), its files named with their sha256 in the fingerprint: the folder refers to the
    user's code, it never holds code that is run. Called under the folder's lock (a step of the run)."""
    place = results if isinstance(results, ResultsStore) else ResultsStore(results)
    data = place.write_kept(STUDY, (DATA,), lambda path: save_data(load_data(user.data), path))
    kept = replace(user, data=str(data.resolve()))
    for name, value in ((MODEL, kept.to_json()), (FINGERPRINT, fingerprint(kept))):
        text = json.dumps(value, indent=1)
        place.write_kept(STUDY, (name,), lambda path, t=text: path.write_text(t))


def stored_model(results: str | Path) -> UserModel | None:
    """The UserModel a check's results folder declares, read as data (nothing imported), its data the
    folder's own copy; None for a folder of ``ppl-suite run``. Raises DamagedFile when damaged."""
    values = _read_json(results, MODEL)
    if values is None:
        return None
    names = {f.name for f in fields(UserModel)}
    if not isinstance(values, dict) or not {"name", "data", "guides"} <= set(values) <= names:
        raise DamagedFile(
            f"{paths.inside(results, FOLDER, MODEL)} is damaged: not a check's model declaration"
        )
    return replace(UserModel.from_json(values), data=str(paths.inside(results, FOLDER, DATA).resolve()))


def _code_files(user: UserModel) -> list[str]:
    """The Python files a UserModel names (its models' and its own guides')."""
    texts = [user.numpyro, user.pyro, *(t for g in user.own_guides.values() for t in g.values())]
    return sorted({str(Path(text.rpartition(":")[0])) for text in texts if text})


def _sha256(file: str | Path) -> str:
    return hashlib.sha256(Path(file).read_bytes()).hexdigest()


def register_stored(
    results: str | Path, files: Iterable[str | Path] = (), trust_stored_code: bool = False
) -> UserModel | None:
    """Register the model of a check's results folder (none for a folder of ``ppl-suite run``).

    A results folder is data: the Python files its kept/check/model.json names are not imported. The
    model is registered when this process already registered the same declaration (``ppl_suite.check``
    ran here), or from ``files``, the user's files passed again (each file the folder names must be
    matched by one of them with the same sha256, stored in kept/check/fingerprint.json), or, with
    ``trust_stored_code``, from the files the folder names (a warning names them; their sha256 must
    still be the stored one). Otherwise raises InputProblem saying so."""
    user = stored_model(results)
    if user is None or registered(user):
        return user
    if user.in_process():
        raise InputProblem(
            f"{results} holds a check of a function defined in the process that ran it (a script or a "
            "notebook): it is never imported; run ppl_suite.check with it again (finished cells are reused)"
        )
    needed = _code_files(user)
    known = (stored_fingerprint(results) or {}).get(SOURCES)
    if not isinstance(known, dict) or set(needed) - set(known):
        raise DamagedFile(f"{paths.inside(results, FOLDER, FINGERPRINT)} is damaged: no sha256 of {needed}")
    if trust_stored_code:
        warnings.warn(
            f"importing the code named by {results}/{FOLDER}/{MODEL}: {', '.join(needed)}", stacklevel=2
        )
        given = {_sha256(file): file for file in needed if Path(file).is_file()}
    else:
        given = {_sha256(file): str(Path(file).resolve()) for file in files}
    missing = [file for file in needed if known[file] not in given]
    if missing:
        checked = [known[file][:12] for file in missing]
        raise InputProblem(
            f"{results} holds a check of {', '.join(missing)}: a results folder's code is never imported; "
            f"pass the file(s) again (files=[...], the content checked: sha256 {', '.join(checked)}) "
            "or trust_stored_code=True to import the files it names"
        )
    moved = {file: given[known[file]] for file in needed}

    def at(text: str | None) -> str | None:
        if text is None:
            return None
        file, _, name = text.rpartition(":")
        return f"{moved[file]}:{name}"

    user = replace(
        user,
        numpyro=at(user.numpyro),
        pyro=at(user.pyro),
        own_guides={
            g: {lib: at(t) for lib, t in programs.items()} for g, programs in user.own_guides.items()
        },
    )
    register(user)
    return user


DRAWS = draws_layout.RELATIVE  # q's and the reference's draws of each cell (``ppl_suite.draws_files``)
DRAWS_KINDS = draws_layout.KINDS
draws_files = draws_layout.draws_files
draws_folder = draws_layout.draws_folder
