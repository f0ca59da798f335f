"""The proof that a check's model passed ``verify``, kept in its results folder, so that checking the
same model again skips that work (no ArviZ import, no reference load, no log joints compared) where
nothing it depends on changed.

``verify`` passes when the model's NUTS reference is stored (a stored reference passed its gates: a
failing one is never stored) and, when both versions are given, their log joints agree at its draws.
Its outcome is a function of

    digest = sha256(the reference's cache key, the sha256 of the reference's NetCDF file,
                    the libraries whose versions are compared, the source of the checking code)

The cache key (``references.cache.reference_key``) covers every version's source (the modules of the
NumPyro and the Pyro model, or a kept function's content digest), the data arrays, the fixed
parameters, the NUTS settings, the numerical packages' versions and the reference code; the file's
sha256 covers the very draws compared (a reference rebuilt, replaced or damaged is another file);
the checking code's source (``checking.api`` and ``checking.agreement`` with every module of the
suite they import, ``store.source_hash``) covers the comparison and its tolerance.

A run that verified the model writes ``kept/check/verified.json`` (``{"digest": ...}``) in its
results folder, under the folder's lock, through the store's kept files (``--fresh`` removes it, and
the run writes it again). ``verify`` skips its work only when that file holds the digest computed now
and the reference file is still stored with its summary copy; any other file, or none, means the
work is done in full (a missing or damaged summary copy too: loading the reference rewrites it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ppl_suite import store as store_module
from ppl_suite.checking.user_model import UserModel
from ppl_suite.store import ResultsStore

STUDY = "check"
STAMP = "verified.json"
CODE_ROOTS = ("ppl_suite.checking.api", "ppl_suite.checking.agreement")


def reference_file(user: UserModel) -> Path:
    """Where the NUTS reference of a registered user model is stored (data seed 0, its settings)."""
    from ppl_suite.problem import Problem
    from ppl_suite.references.cache import reference_path
    from ppl_suite.references.settings import settings_for

    problem = Problem.build(user.name, 0)
    return reference_path(problem, settings_for(problem.spec))


def verification_digest(user: UserModel, reference: Path) -> str | None:
    """The digest of ``verify``'s outcome for ``user`` with the reference stored at ``reference``
    (module docstring); None when that file cannot be read or its summary copy is missing or damaged
    (loading the reference rewrites the copy: ``references.reference``)."""
    from ppl_suite.references.cache import summary_damage, summary_path

    try:
        content = hashlib.sha256(reference.read_bytes()).hexdigest()
    except OSError:
        return None
    if summary_damage(summary_path(reference)) is not None:
        return None
    payload = {
        "reference_key": reference.stem.rpartition("-")[2],
        "reference_file": content,
        "compared": [library for library in ("numpyro", "pyro") if getattr(user, library) is not None],
        "code": store_module.source_hash(CODE_ROOTS),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def stamped(results: str | Path) -> str | None:
    """The digest kept in a results folder by the last run that verified its model; None when there is
    none or the file is not one (a link, unreadable, not a stamp)."""
    found = ResultsStore(results).kept_file(STUDY, STAMP)
    if found is None:
        return None
    try:
        value = json.loads(found.read_bytes())
    except (OSError, ValueError):
        return None
    digest = value.get("digest") if isinstance(value, dict) else None
    return digest if isinstance(digest, str) else None


def keep(store: ResultsStore, digest: str) -> None:
    """Write the stamp of a verification into the results folder (a kept file: a temporary file
    renamed). Called under the folder's lock, as a step of the run."""
    text = json.dumps({"digest": digest})
    store.write_kept(STUDY, (STAMP,), lambda path: path.write_text(text))
