"""The package's layers: no import circle inside ``ppl_suite`` and no import from the core up into the
runner, a front end or a study (``ARCHITECTURE.md``: dependencies point down and never up).

The import graph is read from the source with ``ast``: every ``import`` and ``from ... import``
statement counts, at module level, inside functions and under ``TYPE_CHECKING`` alike (an import
deferred into a function is still a dependency). ``from package import name`` is an edge to the module
``package.name`` when there is one, else to ``package``.

Run as a script (``python tests/test_layering.py [REPOSITORY]``) it prints the circles and the upward
imports of a checkout.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "ppl_suite"

# the layers, top down; a module belongs to the first layer one of whose patterns it matches
# check's memo belongs to its API: it replays the runner's events of a check that reuses every cell
FRONT_ENDS = (
    "ppl_suite.cli",
    "ppl_suite.console",
    "ppl_suite.checking.api",
    "ppl_suite.checking.memo",
    "*.command",
)
RUNNER = ("ppl_suite.runner",)
STUDIES = (
    "ppl_suite.vae", "ppl_suite.vqvae", "ppl_suite.calibrate", "ppl_suite.calibration", "ppl_suite.checking",
    "ppl_suite.diagnosing",
)  # fmt: skip
# everything else is the core: store, matrix, schema, spec, registry, estimators, targets, backends,
# executors, guides, references, execute, results, the report...

# Known exceptions to the layers, each with its reason: none is left (the studies' went when they became
# plug-ins, ``ppl_suite.studies``; check's draws files when they went through the store). The test fails
# when a listed one is gone, so that these sets only shrink.
KNOWN_UPWARD: set[tuple[str, str]] = set()
KNOWN_CIRCLES: set[frozenset[str]] = set()


def modules(root: Path) -> dict[str, Path]:
    """Every module of the package under ``root``, by dotted name (a package by its own name)."""
    found = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _known_module(name: str, known: dict[str, Path]) -> str | None:
    """``name`` if it is a module of the package, else its nearest enclosing one."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _targets(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: dict[str, Path]
) -> set[str]:
    """The package's modules an import statement of ``module`` imports."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from the module's package, one level up per extra dot
            package = (module if is_package else module.rpartition(".")[0]).split(".")
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    return {target for name in names if (target := _known_module(name, known)) is not None}


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """{module: the package's modules it imports}, read from the source."""
    known = modules(root)
    graph = {}
    for module, path in known.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                edges |= _targets(node, module, path.name == "__init__.py", known)
        graph[module] = edges - {module}
    return graph


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The import circles: strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = {stack.pop()}
            while module not in component:
                component.add(stack.pop())
            if len(component) > 1:
                found.append(frozenset(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def _matches(module: str, pattern: str) -> bool:
    if pattern.startswith("*."):
        return module.endswith(pattern[1:])
    return module == pattern or module.startswith(pattern + ".")


def layer(module: str) -> str:
    """front end, runner, study or core."""
    for name, patterns in (("front end", FRONT_ENDS), ("runner", RUNNER), ("study", STUDIES)):
        if any(_matches(module, pattern) for pattern in patterns):
            return name
    return "core"


ALLOWED = {  # the layers each layer may import
    "front end": {"front end", "runner", "study", "core"},
    "runner": {"study", "core"},
    "study": {"study", "core"},
    "core": {"core"},
}


def upward(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """Imports of a layer that may not import the other's: the core into a study, the runner or a
    front end; a study or the runner into a front end."""
    return {
        (module, target)
        for module, targets in graph.items()
        for target in targets
        if layer(target) not in ALLOWED[layer(module)]
    }


def test_the_package_has_no_import_circle_but_the_known_ones():
    found = set(circles(import_graph()))
    assert found <= KNOWN_CIRCLES, f"new import circles: {sorted(map(sorted, found - KNOWN_CIRCLES))}"
    assert found >= KNOWN_CIRCLES, (
        f"gone, remove from KNOWN_CIRCLES: {sorted(map(sorted, KNOWN_CIRCLES - found))}"
    )


def test_the_core_imports_no_front_end_runner_or_study_but_the_known_ones():
    found = upward(import_graph())
    assert found <= KNOWN_UPWARD, f"imports against the layers: {sorted(found - KNOWN_UPWARD)}"
    assert found >= KNOWN_UPWARD, f"gone, remove from KNOWN_UPWARD: {sorted(KNOWN_UPWARD - found)}"


def test_no_module_imports_the_command_line():
    graph = import_graph()
    assert not [module for module, targets in graph.items() if "ppl_suite.cli" in targets]


def test_the_graph_sees_imports_inside_functions_and_relative_ones(tmp_path):
    package = tmp_path / PACKAGE
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from ppl_suite.sub import b\n")
    (package / "sub" / "b.py").write_text("from . import c\nfrom ..a import f\n")
    (package / "sub" / "c.py").write_text("import ppl_suite.a\n")
    graph = import_graph(tmp_path)
    assert graph["ppl_suite.a"] == {"ppl_suite.sub.b"}
    assert graph["ppl_suite.sub.b"] == {"ppl_suite.sub.c", "ppl_suite.a"}
    assert graph["ppl_suite.sub.c"] == {"ppl_suite.a"}
    assert circles(graph) == [frozenset({"ppl_suite.a", "ppl_suite.sub.b", "ppl_suite.sub.c"})]
    assert layer("ppl_suite.vae.command") == "front end" and layer("ppl_suite.vae.study") == "study"
    assert upward({"ppl_suite.store": {"ppl_suite.cli"}, "ppl_suite.cli": set()}) == {
        ("ppl_suite.store", "ppl_suite.cli")
    }


if __name__ == "__main__":
    checkout = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    graph = import_graph(checkout)
    print(f"{len(graph)} modules, {sum(map(len, graph.values()))} imports inside {PACKAGE}")
    print(
        "modules importing ppl_suite.cli: "
        + (", ".join(m for m, t in sorted(graph.items()) if "ppl_suite.cli" in t) or "none")
    )
    print("import circles:")
    for circle in sorted(map(sorted, circles(graph))) or [["none"]]:
        print("  " + " <-> ".join(circle))
    print("imports against the layers (importer -> imported, layers):")
    for module, target in sorted(upward(graph)) or [("none", "")]:
        print(f"  {module} -> {target}" + (f"  ({layer(module)} -> {layer(target)})" if target else ""))
