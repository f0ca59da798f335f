"""What a user's Python file imports, found without executing any of it: the user's own modules with
their sha256, and the installed distributions with their versions; an import that cannot be
accounted for so raises ``Unaccounted`` (the check then has no memo and runs in full).

    local_sources(Path("model.py"))   # Sources(files={"/abs/model.py": sha256, "/abs/helpers.py": ...},
                                      #         distributions={"numpyro": "0.15.3", ...})

Each file is parsed with ``ast`` (every ``import`` and ``from ... import`` statement, in functions and
``if``/``try`` blocks too). The top-level name of an absolute import is resolved as the import system
of this process resolves it (the spawned workers get the same ``sys.path``):

- a module of the standard library (built-in, frozen, or a name of ``sys.stdlib_module_names``
  found in the standard library's folders): nothing; a user's module of such a name found first on
  ``sys.path`` is the user's;
- the suite's own package: nothing (its code hash counts);
- otherwise the finders of ``sys.meta_path`` in order: a hook before ``PathFinder`` that serves the
  name (an editable install's finder) is unaccounted; ``PathFinder`` walks ``sys.path`` in order
  (``''``: the current folder). The model file's own folder is searched only where it is on
  ``sys.path``: the suite imports a given file by its path (``sources.import_file``) without adding
  its folder. Not found (a hook after ``PathFinder`` would serve it): unaccounted;
- found in a site-packages folder: the distributions providing that name
  (``importlib.metadata.packages_distributions``, which reads metadata) with their versions; a name no
  distribution provides, or one installed from a local folder (its ``direct_url.json`` has a
  ``dir_info``: editable, or built from a folder whose code may change without its version), is
  unaccounted;
- found elsewhere: one of the user's modules, hashed and followed, if Python source and provided by
  no distribution (else an installation served from outside site-packages: unaccounted). A dotted
  name's later parts are found in their package's folders, each file hashed; ``from pkg import
  name`` hashes the submodule ``pkg.name`` when there is one (else ``name`` is an attribute of the
  hashed ``pkg/__init__.py``).

A module already imported in this process from another file than the one found is unaccounted. A
relative import is found in the importing file's package folder (its ``__init__.py`` hashed). A given
file inside a package brings the ``__init__.py`` of each package holding it (imported by its package
name, they run first). A file that touches the import state (``sys.path``, ``sys.meta_path``,
``sys.path_hooks``, ``sys.modules``, a package's ``__path__``, ``site.addsitedir``,
``pkgutil.extend_path``, ``os.chdir``), or that cannot be parsed, is unaccounted. Not seen: imports
from a computed name (``importlib.import_module(name)``, ``__import__``, ``exec``), files a module
reads (a CSV, a pickle) or runs by path (``importlib.util.spec_from_file_location``,
``runpy.run_path``), edits to the files of an installed (not editable) distribution, and the versions
of the distributions those distributions depend on (only the suite's requirements and the
distributions the user's files import are recorded).
"""

from __future__ import annotations

import ast
import hashlib
import json
import site
import sys
import sysconfig
from dataclasses import dataclass, field
from importlib import metadata
from importlib.machinery import BuiltinImporter, FrozenImporter, ModuleSpec, PathFinder
from pathlib import Path

SUITE = Path(__file__).resolve().parent.parent  # the ppl_suite package: counted by its code hash
IMPORT_STATE = frozenset({"path", "meta_path", "path_hooks", "path_importer_cache", "modules"})  # of sys
CHANGES_IMPORTS = frozenset({"addsitedir", "extend_path", "chdir", "__path__"})


class Unaccounted(Exception):
    """An import the digest cannot account for: the check has no memo."""


@dataclass(frozen=True)
class Sources:
    """{absolute path: sha256} of the user's files and modules; {distribution: version} of the
    installed distributions they import from."""

    files: dict[str, str]
    distributions: dict[str, str]


def _site_folders() -> list[Path]:
    """The site-packages folders of this interpreter."""
    found = [sysconfig.get_paths().get(name) for name in ("purelib", "platlib")]
    found += [*getattr(site, "getsitepackages", list)(), site.getusersitepackages()]
    return [Path(folder).resolve() for folder in found if folder]


def _touches_import_state(tree: ast.AST) -> bool:
    """Whether a file reads or changes what later imports find (module docstring), as far as its
    text shows: any use of ``sys.path`` and the like, even a read, counts."""
    names = {"sys"} | {
        alias.asname for node in ast.walk(tree) if isinstance(node, ast.Import)
        for alias in node.names if alias.name == "sys" and alias.asname
    }  # fmt: skip
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and (
            node.attr in CHANGES_IMPORTS
            or (node.attr in IMPORT_STATE and isinstance(node.value, ast.Name) and node.value.id in names)
        ):
            return True
        if isinstance(node, ast.ImportFrom) and any(
            alias.name in CHANGES_IMPORTS or (node.module == "sys" and alias.name in {*IMPORT_STATE, "*"})
            for alias in node.names
        ):
            return True
        if isinstance(node, ast.Name) and node.id in CHANGES_IMPORTS:
            return True
    return False


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


def _origin(spec: ModuleSpec | None) -> str | None:
    return str(Path(spec.origin).resolve()) if spec is not None and spec.has_location else None


def _source(spec: ModuleSpec, name: str) -> Path | None:
    """The Python source file of a module found among the user's (None: a namespace package)."""
    if spec.origin is None or not spec.has_location:
        if spec.submodule_search_locations is None:
            raise Unaccounted(f"{name}: found without a file")
        return None
    file = Path(spec.origin)
    if file.suffix != ".py" or not file.is_file():
        raise Unaccounted(f"{name}: {file} is not a Python source file")
    return file


def _top_spec(name: str) -> ModuleSpec | None:
    """The spec the import system finds for the top-level module ``name``: the finders of
    ``sys.meta_path`` in order, up to ``PathFinder`` (over ``sys.path``)."""
    for finder in sys.meta_path:
        if finder is PathFinder:
            return PathFinder.find_spec(name)
        try:
            spec = finder.find_spec(name, None)
        except Exception as error:  # a third-party finder: whatever it raises
            raise Unaccounted(f"{name}: import hook {finder!r} failed: {error}") from None
        if spec is not None:
            if finder in (BuiltinImporter, FrozenImporter):
                return spec
            raise Unaccounted(f"{name}: served by the import hook {finder!r}")
    return None


def _in_standard_library(spec: ModuleSpec) -> bool:
    """Whether the module of ``spec`` lies in the standard library's folders (not in a site-packages
    folder inside them)."""
    paths = sysconfig.get_paths()
    bases = [Path(paths[name]).resolve() for name in ("stdlib", "platstdlib") if paths.get(name)]
    locations = [spec.origin] if spec.has_location else list(spec.submodule_search_locations or [])
    files = [Path(location).resolve() for location in locations if location]
    sites = {"site-packages", "dist-packages"}
    return bool(files) and all(
        any(base in file.parents for base in bases) and not sites & set(file.parts) for file in files
    )


@dataclass
class _Resolver:
    """Resolves the imports of the user's files, collecting the distributions they import from."""

    distributions: dict[str, str] = field(default_factory=dict)
    _sites: list[Path] = field(default_factory=_site_folders)
    _provided: dict[str, list[str]] | None = None

    def provided(self) -> dict[str, list[str]]:
        if self._provided is None:
            self._provided = metadata.packages_distributions()
        return self._provided

    def installed(self, location: str) -> bool:
        path = Path(location).resolve()
        in_site = any(base == path or base in path.parents for base in self._sites)
        return in_site or bool({"site-packages", "dist-packages"} & set(path.parts))

    def account_distributions(self, name: str) -> None:
        """The versions of the distributions providing the installed top-level module ``name``."""
        providers = sorted(set(self.provided().get(name, ())))
        if not providers:
            raise Unaccounted(f"{name}: installed, but no distribution's metadata provides it")
        for provider in providers:
            try:
                distribution = metadata.distribution(provider)
                direct = json.loads(distribution.read_text("direct_url.json") or "{}")
            except (metadata.PackageNotFoundError, OSError, ValueError) as error:
                raise Unaccounted(f"{name}: distribution {provider}: {error}") from None
            if not isinstance(direct, dict) or "dir_info" in direct:
                raise Unaccounted(f"{name}: distribution {provider} is installed from a folder")
            self.distributions[provider] = str(distribution.version)

    def absolute(self, parts: list[str], names: list[str]) -> list[Path]:
        """The user's files that ``import a.b`` / ``from a.b import names`` runs (installed
        distributions noted, unaccounted imports raised)."""
        top = parts[0]
        if top in sys.builtin_module_names or top == SUITE.name:
            return []
        spec = _top_spec(top)
        if spec is None:
            raise Unaccounted(f"{top}: not found on sys.path")
        if spec.origin in ("built-in", "frozen"):
            return []
        if top in sys.stdlib_module_names and _in_standard_library(spec):
            return []  # a user's module named like one of the standard library's is found first: hashed
        imported = sys.modules.get(top)
        if imported is not None and _origin(getattr(imported, "__spec__", None)) != _origin(spec):
            raise Unaccounted(f"{top}: already imported from another file than the one found")
        locations = [spec.origin] if spec.has_location else list(spec.submodule_search_locations or [])
        installed = [self.installed(location) for location in locations if location]
        if installed and all(installed):
            self.account_distributions(top)
            return []
        if any(installed) or not installed or top in self.provided():
            raise Unaccounted(f"{top}: an installed distribution's module served from outside site-packages")
        return _found(spec, parts, names)

    def relative(self, file: Path, level: int, parts: list[str], names: list[str]) -> list[Path]:
        """The files ``from .a import names`` runs in ``file`` (its package folder's)."""
        base = file.parent
        for _ in range(level - 1):
            base = base.parent
        init = base / "__init__.py"
        files = [init] if init.is_file() else []
        if not parts:
            package = ModuleSpec(base.name, None, origin=str(init) if files else None, is_package=True)
            package.submodule_search_locations = [str(base)]
            package.has_location = bool(files)
            return files + _named(package, names)
        spec = PathFinder.find_spec(parts[0], [str(base)])
        if spec is None:
            raise Unaccounted(f"{'.' * level}{parts[0]} not found in {base}")
        return files + _found(spec, parts, names)


def _found(spec: ModuleSpec, parts: list[str], names: list[str]) -> list[Path]:
    """The source files of ``parts`` (the first found as ``spec``), level by level in their packages'
    folders, and of the submodules among ``names``."""
    files = [_source(spec, parts[0])]
    for depth in range(1, len(parts)):
        places = list(spec.submodule_search_locations or [])
        found = PathFinder.find_spec(".".join(parts[: depth + 1]), places) if places else None
        if found is None:
            raise Unaccounted(f"{'.'.join(parts[: depth + 1])}: not found")
        spec = found
        files.append(_source(spec, ".".join(parts[: depth + 1])))
    return [file for file in files if file is not None] + _named(spec, names)


def _named(package: ModuleSpec, names: list[str]) -> list[Path]:
    """The submodules among the names of ``from package import names``; a name that is none must be
    an attribute of the package's (hashed) ``__init__.py``."""
    places = list(package.submodule_search_locations or [])
    files = []
    for name in names:
        found = PathFinder.find_spec(f"{package.name}.{name}", places) if places and name != "*" else None
        if found is not None:
            files.append(_source(found, name))
        elif not package.has_location:
            raise Unaccounted(f"{package.name}: {name} is no module of it, and it has no __init__.py")
    return [file for file in files if file is not None]


def _imported_files(file: Path, content: bytes, resolver: _Resolver) -> list[Path]:
    """The user's files that the imports of ``file`` run."""
    try:
        tree = ast.parse(content, filename=str(file))
    except (SyntaxError, ValueError) as error:
        raise Unaccounted(f"{file}: {error}") from None
    if _touches_import_state(tree):
        raise Unaccounted(f"{file}: reads or changes the import state (sys.path and the like)")
    files: list[Path] = []
    for level, module, names in _imports(tree):
        parts = [part for part in module.split(".") if part]
        if level:
            files += resolver.relative(file, level, parts, names)
        else:
            files += resolver.absolute(parts, names)
    return files


def _packages_above(file: Path) -> list[Path]:
    """The ``__init__.py`` of each package holding ``file`` (a file of a package that ``sys.path``
    finds is imported by its package name: they run first)."""
    found, folder = [], file.parent
    while (folder / "__init__.py").is_file():
        found.append(folder / "__init__.py")
        folder = folder.parent
    return found


def local_sources(*files: Path) -> Sources:
    """The sha256 of ``files`` and of every module of the user's they import, followed transitively,
    and the versions of the distributions they import from (module docstring); raises Unaccounted
    for an import it cannot account for, OSError for a file it cannot read."""
    resolver = _Resolver()
    hashes: dict[str, str] = {}
    pending = [Path(file).resolve() for file in files]
    pending += [init for file in pending for init in _packages_above(file)]
    while pending:
        file = pending.pop()
        if str(file) in hashes or file == SUITE or SUITE in file.parents:
            continue
        content = file.read_bytes()
        hashes[str(file)] = hashlib.sha256(content).hexdigest()
        if file.suffix == ".py":
            pending += [found.resolve() for found in _imported_files(file, content, resolver)]
    return Sources(dict(sorted(hashes.items())), dict(sorted(resolver.distributions.items())))
