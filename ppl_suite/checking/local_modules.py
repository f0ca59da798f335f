"""The user's own modules a Python file imports, found without executing anything, with their sha256.

    local_sources(Path("model.py"))   # {"/abs/model.py": sha256, "/abs/helpers.py": sha256, ...}

Each file is parsed with ``ast`` (every ``import`` and ``from ... import`` statement, in functions and
``if``/``try`` blocks too); each name is looked up level by level with
``importlib.machinery.PathFinder.find_spec`` (which reads folders and executes nothing) in the
*search folders*: the folder of the file and the entries of ``sys.path`` that are neither the standard
library nor site-packages (the current folder for ``''``); a dotted name's later parts in its
package's ``submodule_search_locations``; a relative import from the importing file's package
folder. ``from pkg import name`` also looks for a submodule ``pkg.name``. Every file found (a
package's ``__init__.py`` included) is hashed and, when Python source, followed in turn.

Modules of the standard library and of installed packages are not searched: they count through the
installed versions (``checking.memo``). A given file inside a package brings the ``__init__.py`` of
each package holding it (imported by its package name, they run first). The suite's own package
counts through its code hash and is not followed. Imports made at run time from a computed name
(``importlib.import_module(name)``, ``__import__``, ``exec``) and files a module reads (a CSV, a
pickle) are not seen.
"""

from __future__ import annotations

import ast
import hashlib
import os
import site
import sys
import sysconfig
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path

SUITE = Path(__file__).resolve().parent.parent  # the ppl_suite package: counted by its code hash


def _installed_folders() -> list[Path]:
    """The standard library's and site-packages' folders (not searched)."""
    names = ("stdlib", "platstdlib", "purelib", "platlib")
    found = [sysconfig.get_paths().get(name) for name in names]
    found += [*getattr(site, "getsitepackages", list)(), site.getusersitepackages()]
    return [Path(folder).resolve() for folder in found if folder]


def search_folders() -> list[str]:
    """The entries of ``sys.path`` that may hold a user's modules: existing folders, neither the
    standard library nor site-packages (nor below them)."""
    installed = _installed_folders()
    folders = []
    for entry in sys.path:
        folder = Path(entry or os.getcwd()).resolve()
        if not folder.is_dir() or {"site-packages", "dist-packages"} & set(folder.parts):
            continue
        if any(folder == base or base in folder.parents for base in installed):
            continue
        if str(folder) not in folders:
            folders.append(str(folder))
    return folders


def _imports(tree: ast.AST) -> list[tuple[int, str, list[str]]]:
    """(level, module, names) of every import statement: ``import a.b`` is (0, "a.b", []),
    ``from ..a import b, c`` is (2, "a", ["b", "c"])."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(0, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or "", [alias.name for alias in node.names]))
    return found


def _find(parts: list[str], places: list[str]) -> list[ModuleSpec]:
    """The specs of ``parts[0]``, ``parts[0].parts[1]``... found from ``places``, level by level (as
    far as they are found; a namespace package has no file but its folders are searched)."""
    specs: list[ModuleSpec] = []
    for depth in range(len(parts)):
        spec = PathFinder.find_spec(".".join(parts[: depth + 1]), places)
        if spec is None:
            break
        specs.append(spec)
        places = list(spec.submodule_search_locations or [])
        if not places:
            break
    return specs


def _package_folder(file: Path, level: int) -> Path:
    folder = file.parent
    for _ in range(level - 1):
        folder = folder.parent
    return folder


def _found_files(file: Path, folders: list[str]) -> list[Path]:
    """The files of the modules ``file`` imports that are found in ``[its folder, *folders]`` (a
    relative import: in its package's folder, whose ``__init__.py`` counts too)."""
    try:
        tree = ast.parse(file.read_bytes(), filename=str(file))
    except (OSError, SyntaxError, ValueError):
        return []  # the full check reports a file it cannot import
    files: list[Path] = []
    for level, module, names in _imports(tree):
        parts = [part for part in module.split(".") if part]
        if level:
            base = _package_folder(file, level)
            files.append(base / "__init__.py")
            found, places = _find(parts, [str(base)]), [str(base)]
        else:
            found, places = _find(parts, [str(file.parent), *folders]), []
        files += [Path(spec.origin) for spec in found if spec.origin and spec.has_location]
        if len(found) == len(parts) and found:
            places = list(found[-1].submodule_search_locations or [])
        for name in names if len(found) == len(parts) else []:
            files += [Path(s.origin) for s in _find([name], places)[:1] if s.origin and s.has_location]
    return [found for found in files if found.is_file()]


def _packages_above(file: Path) -> list[Path]:
    """The ``__init__.py`` of each package holding ``file`` (a file of a package that ``sys.path``
    finds is imported by its package name: they run first)."""
    found, folder = [], file.parent
    while (folder / "__init__.py").is_file():
        found.append(folder / "__init__.py")
        folder = folder.parent
    return found


def local_sources(*files: Path, folders: list[str] | None = None) -> dict[str, str]:
    """{absolute path: sha256} of ``files`` and of every module of the user's they import, followed
    transitively (module docstring); ``folders``: the search folders (default ``search_folders()``)."""
    folders = search_folders() if folders is None else folders
    hashes: dict[str, str] = {}
    pending = [Path(file).resolve() for file in files]
    pending += [init for file in pending for init in _packages_above(file)]
    while pending:
        file = pending.pop()
        if str(file) in hashes or file == SUITE or SUITE in file.parents:
            continue
        hashes[str(file)] = hashlib.sha256(file.read_bytes()).hexdigest()
        if file.suffix == ".py":
            pending += [found.resolve() for found in _found_files(file, folders)]
    return dict(sorted(hashes.items()))
