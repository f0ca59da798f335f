"""The report's digest: what a report is a function of, hashed, so that a rerun whose results, code and
formats are those of the report already written leaves it alone.

    digest = sha256 of (the results folder's files, the manifest without its per-run fields, the
                        source of the suite, of its models and of every report section, the versions
                        of the drawing and table libraries, the formats, the results folder's name)

The report folder keeps it in ``report.digest`` (JSON: the digest and the sha256 of every file the
report wrote), written and read through ``paths``. A report is unchanged when the digest matches and
every file it wrote is still there with the same content (a user's edit or a deleted figure means a
rewrite). Left out of the manifest: the command line, when the run started and finished and how many
units it reused, which change with every rerun of the same results (``--fresh``, ``--jobs``, the
program's name); an unchanged report keeps the command and times of the run that wrote it. Imports
no plotting library.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from importlib import metadata
from pathlib import Path

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


def report_digest(results: Path, formats: tuple[str, ...], sections: Iterable[object]) -> str:
    """The digest of the report of ``results`` in ``formats`` drawn by ``sections`` (the registered
    ones; module doc)."""
    hashed = hashlib.sha256()

    def add(*parts: str | bytes) -> None:
        for part in parts:
            data = part.encode() if isinstance(part, str) else part
            hashed.update(len(data).to_bytes(8, "little") + data)

    add("formats", ",".join(formats), "name", results.resolve().name, "manifest", _manifest(results))
    for name in _own_files(results):
        add("file", name, sha256(results / name))
    for source in _sources(sections):
        add("source", source.name, source.read_bytes())
    for library in LIBRARIES:
        try:
            add("library", library, metadata.version(library))
        except metadata.PackageNotFoundError:
            add("library", library, "absent")
    return hashed.hexdigest()


def written_files(out: Path, written: Mapping[str, Path]) -> dict[str, str]:
    """The sha256 of every file the report wrote in ``out``: its pages and its figures' listing
    (which holds the figures' sha256 in turn), by name relative to ``out``."""
    names = [path.relative_to(out).as_posix() for path in written.values()]
    listing = paths.inside(out, "figures", FIGURE_LIST)
    if paths.is_own_file(listing):
        names.append(f"figures/{FIGURE_LIST}")
    return {name: sha256(paths.inside(out, name)) for name in names}


def _figures_intact(out: Path) -> bool:
    """Every figure ``figures.txt`` lists is there with the listed content."""
    listing = paths.inside(out, "figures", FIGURE_LIST)
    if not paths.is_own_file(listing):
        return True
    for line in listing.read_text(errors="replace").splitlines():
        name, _, listed = line.partition(" ")
        try:
            figure = paths.inside(out, "figures", name)
        except paths.OutsideFolder:
            return False
        if not paths.is_own_file(figure) or sha256(figure) != listed:
            return False
    return True


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


def record(out: Path, digest: str, written: Mapping[str, Path]) -> None:
    """Keep the digest and the written files' sha256 in ``out/report.digest``."""
    kept = {"digest": digest, "files": written_files(out, written)}
    paths.inside(out, DIGEST_FILE).write_text(json.dumps(kept, indent=1, sort_keys=True) + "\n")
