"""The report's digest: what a report is a function of, hashed, so that a rerun whose results, code and
formats are those of the report already written leaves it alone.

    digest = sha256 of (the results folder's files, the manifest without its per-run fields, the
                        source of the suite, of its models and of every report section, the versions
                        of the drawing and table libraries, the formats, the results folder's name)

The report folder keeps it in ``report.digest`` (JSON: the digest, the sha256 of every file the
report wrote, each figure's own key), written and read through ``paths``. A report is unchanged when
the digest matches and every file it wrote is still there with the same content (a user's edit or a
deleted figure means a rewrite). Left out of the manifest: the command line, when the run started
and finished and how many units it reused, which change with every rerun of the same results
(``--fresh``, ``--jobs``, the program's name); an unchanged report keeps the command and times of
the run that wrote it.

A report whose inputs changed redraws only the figures whose own inputs changed:

    figure key = sha256 of (the code digest, the drawing function's name, the pickled data it draws)

A figure is kept as it is when the last report drew it under the same key and its file still holds
the bytes it was drawn with (their sha256, kept with the key); the code digest (the sources and the
library versions above) makes a code change redraw every figure. Imports no plotting library.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from ppl_suite import paths, registry, schema, studies
from ppl_suite.store import HOLDER, LOCK, LOGS, MANIFEST, SUITE_NAMES

DIGEST_FILE = "report.digest"
FIGURE_LIST = "figures.txt"  # render's listing of the figures it drew, ``<name> <sha256>`` per line
PER_RUN = (
    schema.MANIFEST_COMMAND,
    schema.MANIFEST_STARTED,
    schema.MANIFEST_FINISHED,
    schema.MANIFEST_REUSED,
    schema.MANIFEST_REUSED_PROBLEMS,
)
# what a report may read (the manifest apart): the suite's own top-level names, files or folders, and
# the studies' folders (``_read``)
READ = sorted(name for name in set(SUITE_NAMES) - {MANIFEST, LOCK, HOLDER, LOGS} if "/" not in name)
LIBRARIES = ("matplotlib", "numpy", "pandas", "pyarrow")
UNREAD = ("kept/check/memo.json",)  # a check's memo (``checking.memo``): written after the report, from it
SUITE = Path(__file__).resolve().parent.parent


def sha256(path: Path) -> str:
    hashed = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            hashed.update(block)
    return hashed.hexdigest()


def _own_files(results: Path) -> Iterator[str]:
    """The regular files of the results folder a report may read (``READ``: the suite's own names,
    files or folders; the studies' folders), relative names, following no link."""
    for name in sorted({*READ, *studies.folders()}):
        path = paths.inside(results, name)
        if paths.is_own_file(path):
            yield name
        elif path.is_dir() and not path.is_symlink():
            yield from (f"{name}/{inner}" for inner in _files_under(path))


def _files_under(folder: Path) -> Iterator[str]:
    """The regular files under ``folder`` (relative names, sorted), following no link."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not (Path(root) / d).is_symlink())
        for name in sorted(files):
            path = Path(root) / name
            if paths.is_own_file(path):
                yield path.relative_to(folder).as_posix()


def _manifest(results: Path) -> bytes:
    """The manifest without its per-run fields, as canonical JSON (its raw bytes when not JSON)."""
    path = paths.inside(results, MANIFEST)
    if not paths.is_own_file(path):
        return b""
    raw = path.read_bytes()
    try:
        manifest = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(manifest, dict):
        return raw
    kept = {key: value for key, value in manifest.items() if key not in PER_RUN}
    return json.dumps(kept, sort_keys=True, default=str).encode()


def _sources(sections: Iterable[object]) -> Iterator[Path]:
    """The suite's and the zoo's Python files (every shipped section among them), and the file of
    every section registered from elsewhere (a user's module, an entry point)."""
    yield from sorted(SUITE.rglob("*.py"))
    yield from sorted(registry.ZOO.rglob("*.py"))
    outside = set()  # the suite's and the zoo's sections are counted above, discovered or not
    for section in sections:
        file = getattr(sys.modules.get(type(section).__module__), "__file__", None)
        if file is not None and not any(
            Path(file).resolve().is_relative_to(p) for p in (SUITE, registry.ZOO)
        ):
            outside.add(Path(file).resolve())
    yield from sorted(outside)


def code_digest(sections: Iterable[object]) -> str:
    """The digest of the code a report is drawn by: the suite's, the zoo's and every registered
    section's sources (``_sources``), and the versions of the drawing and table libraries."""
    hashed = hashlib.sha256()
    for source in _sources(sections):
        _add(hashed, "source", source.name, source.read_bytes())
    for library in LIBRARIES:
        try:
            _add(hashed, "library", library, metadata.version(library))
        except metadata.PackageNotFoundError:
            _add(hashed, "library", library, "absent")
    return hashed.hexdigest()


def _add(hashed: Any, *parts: str | bytes) -> None:
    """Each part into ``hashed``, its length first (no two sequences of parts hash alike)."""
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        hashed.update(len(data).to_bytes(8, "little") + data)


def report_digest(
    results: Path, formats: tuple[str, ...], sections: Iterable[object], code: str | None = None
) -> str:
    """The digest of the report of ``results`` in ``formats`` drawn by ``sections`` (the registered
    ones; module doc); ``code``: their ``code_digest`` when already computed."""
    hashed = hashlib.sha256()
    _add(hashed, "formats", ",".join(formats), "name", results.resolve().name, "manifest", _manifest(results))
    for name in (name for name in _own_files(results) if name not in UNREAD):
        _add(hashed, "file", name, sha256(results / name))
    _add(hashed, "code", code if code is not None else code_digest(sections))
    return hashed.hexdigest()


def figure_key(code: str, function: Callable[..., object], args: tuple[object, ...]) -> str | None:
    """The key of a figure drawn by ``function(*args, path)`` under the code of digest ``code``
    (module doc); None when its data cannot be pickled (such a figure is always drawn)."""
    try:
        data = pickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None
    hashed = hashlib.sha256()
    _add(hashed, code, f"{function.__module__}.{function.__qualname__}", data)
    return hashed.hexdigest()


def written_files(out: Path, written: Mapping[str, Path]) -> dict[str, str]:
    """The sha256 of every file the report wrote in ``out``: its pages and its figures' listing
    (which holds the figures' sha256 in turn), by name relative to ``out``."""
    names = [path.relative_to(out).as_posix() for path in written.values()]
    listing = paths.inside(out, "figures", FIGURE_LIST)
    if paths.is_own_file(listing):
        names.append(f"figures/{FIGURE_LIST}")
    return {name: sha256(paths.inside(out, name)) for name in names}


def _figure_intact(out: Path, name: str, listed: str) -> bool:
    """Whether figure ``name`` is a regular file of the report's figures holding the listed bytes."""
    try:
        figure = paths.inside(out, "figures", name)
    except paths.OutsideFolder:
        return False
    return paths.is_own_file(figure) and sha256(figure) == listed


def _figures_intact(out: Path) -> bool:
    """Every figure ``figures.txt`` lists is there with the listed content."""
    listing = paths.inside(out, "figures", FIGURE_LIST)
    if not paths.is_own_file(listing):
        return True
    for line in listing.read_text(errors="replace").splitlines():
        name, _, listed = line.partition(" ")
        if not _figure_intact(out, name, listed):
            return False
    return True


def reusable_figures(out: Path) -> dict[str, str]:
    """{figure name: key} of the figures the last report in ``out`` drew that still hold the bytes it
    wrote (their sha256, kept with their keys): a figure of the same key need not be drawn again."""
    record = paths.inside(out, DIGEST_FILE)
    if not paths.is_own_file(record):
        return {}
    try:
        kept = json.loads(record.read_text()).get("figures", {})
        figures = {str(name): (str(entry["key"]), str(entry["sha256"])) for name, entry in kept.items()}
    except (ValueError, TypeError, AttributeError, KeyError):
        return {}
    return {name: key for name, (key, listed) in figures.items() if _figure_intact(out, name, listed)}


def unchanged(out: Path, digest: str, kinds: tuple[str, ...]) -> bool:
    """Whether the report in ``out`` was written from inputs of this ``digest`` in these formats and
    every file it wrote is still as written."""
    record = paths.inside(out, DIGEST_FILE)
    if not paths.is_own_file(record):
        return False
    try:
        kept = json.loads(record.read_text())
        files = dict(kept["files"])
        same = kept["digest"] == digest
    except (ValueError, KeyError, TypeError):
        return False
    if not same or not all(f"report.{kind}" in files for kind in kinds):
        return False
    for name, listed in files.items():
        try:
            path = paths.inside(out, name)
        except paths.OutsideFolder:
            return False
        if not paths.is_own_file(path) or sha256(path) != listed:
            return False
    return "md" not in kinds or _figures_intact(out)


def record(
    out: Path, digest: str, written: Mapping[str, Path], figures: Mapping[str, str] | None = None
) -> None:
    """Keep the digest, the written files' sha256 and each figure's key (``figure_key``, by figure
    name) with the sha256 of its file in ``out/report.digest``."""
    drawn = {}
    for name, key in (figures or {}).items():
        path = paths.inside(out, "figures", name)
        if paths.is_own_file(path):
            drawn[name] = {"key": key, "sha256": sha256(path)}
    kept = {"digest": digest, "files": written_files(out, written), "figures": drawn}
    paths.inside(out, DIGEST_FILE).write_text(json.dumps(kept, indent=1, sort_keys=True) + "\n")
