"""The memo of a whole check (``checking.memo``): a re-check with nothing changed returns the result a
full re-check returns without importing the user's files; a change to a model file, to a module of
the user's it imports, to the data or to an option, a damaged memo, or a results or report file
changed or replaced by a link, means a full check. Here the full check is a stand-in writing a small
results folder (no fit): the slow test at the end runs the real one."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ppl_suite
from ppl_suite import runner
from ppl_suite.backends import SVIConfig
from ppl_suite.cell import Cell
from ppl_suite.checking import api, memo
from ppl_suite.checking.local_modules import local_sources
from ppl_suite.matrix import Matrix
from ppl_suite.report.render import ReportFiles
from ppl_suite.report.rows import units
from ppl_suite.report.run_tables import failures_table
from ppl_suite.store import ResultsStore

ROOT = Path(__file__).resolve().parent.parent
MODEL = """
import os
from helpers import scale

if os.environ.get("PPL_SUITE_TEST_NO_IMPORT"):
    raise RuntimeError("the model file was imported")


def model(x=None):
    return scale(x)
"""
HELPERS = "import numpy\n\n\ndef scale(x):\n    return 2.0 * x\n"
CELL = Cell(
    "tiny", "numpyro", "mean_field", svi=SVIConfig(steps=5),
    estimators=(("importance", (("ks", (1, 10)), ("n", 100))), ("psis", (("n", 100),))),
)  # fmt: skip


def _files(tmp_path: Path, monkeypatch) -> dict[str, object]:
    """A model file importing a helper module beside it (the folder on sys.path, as the import
    needs), its data, the check's options."""
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    monkeypatch.syspath_prepend(str(code))
    (code / "model.py").write_text(MODEL)
    (code / "helpers.py").write_text(HELPERS)
    np.savez(tmp_path / "data.npz", x=np.arange(3.0))
    return dict(
        numpyro=f"{code / 'model.py'}:model", data=str(tmp_path / "data.npz"), guides=["mean_field"],
        steps=5, out=tmp_path / "results", report=tmp_path / "report",
    )  # fmt: skip


class FullCheck:
    """Stands for the full check: writes a results folder (a manifest, one kept file) and a report
    file, and returns the result the runner would; counts its calls."""

    def __init__(self, monkeypatch) -> None:
        self.calls = 0
        monkeypatch.setattr(api, "_check_in_full", self)

    def __call__(self, **arguments) -> api.CheckResult:
        self.calls += 1
        store = ResultsStore(arguments["out"])
        store.path.mkdir(parents=True, exist_ok=True)
        store.write_manifest({"digests": [], "steps": arguments["steps"]})
        store.write_kept("check", ("model.json",), lambda path: path.write_text("{}"))
        report = Path(arguments["report"])
        report.mkdir(exist_ok=True)
        (report / "report.md").write_text(f"a report of {arguments['steps']} steps\n")
        rows, problem_rows = store.rows(), store.problems()
        outcome = runner.Outcome(
            runner.CHECKS_FAILED, matrix=Matrix([CELL], ["a skipped combination"], {"seeds": [0]}),
            rows=rows, problem_rows=problem_rows, failed_checks=["a check failed"],
            failures=failures_table(units(rows, problem_rows)),
            report_files=ReportFiles({"md": report / "report.md"}, rewritten=True),
        )  # fmt: skip
        return api.CheckResult(store.path, outcome.exit_code, "tiny", dict(outcome.report_files), outcome)


def _same(found: api.CheckResult, full: api.CheckResult) -> None:
    assert (found.folder, found.exit_code, found.model, found.report_files, found.status) == (
        full.folder, full.exit_code, full.model, full.report_files, full.status,
    )  # fmt: skip
    assert found.outcome.matrix == full.outcome.matrix
    assert found.outcome.failed_checks == full.outcome.failed_checks
    assert found.outcome.rows.equals(full.outcome.rows)
    assert found.outcome.failures.equals(full.outcome.failures)
    assert found.outcome.report_files.rewritten is False  # the report left as it was


def test_a_recheck_with_nothing_changed_returns_the_result_without_importing_the_model(tmp_path, monkeypatch):
    options = _files(tmp_path, monkeypatch)
    full = FullCheck(monkeypatch)
    first = ppl_suite.check(**options)
    assert full.calls == 1 and (tmp_path / "results" / "kept" / "check" / "memo.json").is_file()
    monkeypatch.setenv("PPL_SUITE_TEST_NO_IMPORT", "1")  # importing the model file now raises
    before = set(sys.modules)
    again = ppl_suite.check(**options)
    assert full.calls == 1, "the full check ran again"
    assert not [name for name in set(sys.modules) - before if "model" in name or "helpers" in name]
    _same(again, first)
    ppl_suite.check(**options, recheck=True)  # recheck: in full, whatever the memo says
    assert full.calls == 2


def test_the_printed_lines_of_a_memo_hit_are_those_of_a_recheck_reusing_every_cell(
    tmp_path, monkeypatch, capsys
):
    options = _files(tmp_path, monkeypatch)
    FullCheck(monkeypatch)
    ppl_suite.check(**options)
    capsys.readouterr()
    ppl_suite.check(**options, progress=True)
    printed = capsys.readouterr().out
    reusing = f"reusing 1 finished cells stored in {tmp_path / 'results'}"
    assert printed.index("skip a skipped combination") < printed.index(reusing)
    assert "report unchanged" in printed and f"report (md): {tmp_path / 'report' / 'report.md'}" in printed
    assert "1 correctness checks failed:\na check failed" in printed


@pytest.mark.parametrize(
    "change",
    ["model file", "helper module", "data file", "option", "memo damaged", "memo another digest",
     "results file changed", "results file added", "report file changed", "link in the results"],
)  # fmt: skip
def test_any_change_or_a_damaged_memo_means_a_full_check(tmp_path, monkeypatch, change):
    options = _files(tmp_path, monkeypatch)
    full = FullCheck(monkeypatch)
    ppl_suite.check(**options)
    code, results = tmp_path / "code", tmp_path / "results"
    kept = results / "kept" / "check"
    if change == "model file":
        (code / "model.py").write_text(MODEL + "\n# edited\n")
    elif change == "helper module":
        (code / "helpers.py").write_text(HELPERS.replace("2.0", "3.0"))
    elif change == "data file":
        np.savez(tmp_path / "data.npz", x=np.arange(4.0))
    elif change == "option":
        options["steps"] = 6
    elif change == "memo damaged":
        (kept / "memo.json").write_text('{"memo": 1, "digest"')
    elif change == "memo another digest":
        values = json.loads((kept / "memo.json").read_text())
        (kept / "memo.json").write_text(json.dumps(values | {"digest": "0" * 64}))
    elif change == "results file changed":
        (kept / "model.json").write_text('{"name": "other"}')
    elif change == "results file added":
        (results / "cells").mkdir()
        (results / "cells" / "0123456789abcdef.json").write_text("{}")
    elif change == "report file changed":
        (tmp_path / "report" / "report.md").write_text("edited by hand\n")
    elif change == "link in the results":
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "secret.json").write_text("{}")
        (results / "logs").symlink_to(outside)
    ppl_suite.check(**options)
    assert full.calls == 2, f"after a {change}, the memo answered"


def test_the_memo_reads_nothing_outside_its_folder_through_a_link(tmp_path, monkeypatch):
    """A memo file that is a link (to a memo elsewhere) is not read; a kept/ folder that is a link
    neither: the full check runs."""
    options = _files(tmp_path, monkeypatch)
    FullCheck(monkeypatch)
    ppl_suite.check(**options)
    kept = tmp_path / "results" / "kept" / "check"
    elsewhere = tmp_path / "memo-elsewhere.json"
    (kept / "memo.json").rename(elsewhere)
    (kept / "memo.json").symlink_to(elsewhere)
    opened = []
    real_read = Path.read_bytes

    def read_bytes(path: Path) -> bytes:
        opened.append(path.resolve())
        return real_read(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    call = memo.describe({**api_defaults(), **options}, api._name)
    assert call is not None and memo.recall(call) is None
    assert elsewhere.resolve() not in opened


def api_defaults() -> dict[str, object]:
    names = ("model", "data", "args", "kwargs", "pyro", "numpyro", "guides", "backend", "backends", "name")
    return {**dict.fromkeys(names), "params": None, "seeds": (0,), "steps": None, "estimators": None,
            "nuts": None, "out": None, "report": None, "jobs": None}  # fmt: skip


def test_a_call_with_a_function_or_an_unhashable_value_has_no_memo(tmp_path, monkeypatch):
    options = {**api_defaults(), **_files(tmp_path, monkeypatch)}
    assert memo.describe(options, api._name) is not None
    assert memo.describe({**options, "numpyro": lambda x=None: None}, api._name) is None
    assert memo.describe({**options, "kwargs": {"x": object()}}, api._name) is None
    in_memory = memo.describe({**options, "data": None, "kwargs": {"x": np.arange(3.0)}}, api._name)
    other = memo.describe({**options, "data": None, "kwargs": {"x": np.arange(1.0, 4.0)}}, api._name)
    assert in_memory is not None and other is not None and in_memory.digest != other.digest


def test_local_sources_follow_the_users_modules_and_packages_without_importing_them(tmp_path, monkeypatch):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('imported')\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "deep.py").write_text("from .. import shared\n")
    (package / "shared.py").write_text("import json\n")
    (tmp_path / "model.py").write_text("import numpy\nimport pkg.sub\nfrom pkg.sub import deep\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = local_sources(tmp_path / "model.py")
    expected = ["model.py", "pkg/__init__.py", "pkg/shared.py", "pkg/sub/__init__.py", "pkg/sub/deep.py"]
    assert sorted(Path(name).relative_to(tmp_path.resolve()).as_posix() for name in found.files) == expected
    assert list(found.distributions) == ["numpy"]
    assert "pkg" not in sys.modules


def test_a_memo_hit_imports_neither_jax_nor_torch(tmp_path, monkeypatch):
    """A fresh process answering from the memo written here: no JAX, no torch, no user module."""
    options = _files(tmp_path, monkeypatch)
    FullCheck(monkeypatch)
    ppl_suite.check(**options)
    script = f"""
import sys
import ppl_suite
from ppl_suite.checking import api
options = {dict(options, out=str(options["out"]), report=str(options["report"]))!r}
api._check_in_full = None  # a full check would fail
result = ppl_suite.check(**options)
print(result.exit_code, sorted(m for m in ("jax", "torch", "numpyro", "pyro") if m in sys.modules))
"""
    path = os.pathsep.join([str(ROOT), str(tmp_path / "code")])
    environment = {**os.environ, "PYTHONPATH": path, "PPL_SUITE_TEST_NO_IMPORT": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", "[]"]


class EditableFinder:
    """A meta-path hook serving ``mylib`` from a folder not on sys.path, as an editable install's."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def find_spec(self, name, path, target=None):
        if name != "mylib":
            return None
        init = self.folder / "mylib" / "__init__.py"
        return importlib.util.spec_from_file_location(
            name, init, submodule_search_locations=[str(init.parent)]
        )


def _with_mylib(tmp_path: Path, monkeypatch) -> dict[str, object]:
    """The options of ``_files`` with the model importing ``mylib`` (which the test makes findable)."""
    options = {**api_defaults(), **_files(tmp_path, monkeypatch)}
    model = tmp_path / "code" / "model.py"
    model.write_text("from mylib import SCALE\n" + model.read_text())
    (tmp_path / "src" / "mylib").mkdir(parents=True)
    (tmp_path / "src" / "mylib" / "__init__.py").write_text("SCALE = 1.0\n")
    return options


@pytest.mark.parametrize("place", ["after the path finder", "before the path finder"])
def test_a_module_served_by_an_import_hook_gives_no_memo(tmp_path, monkeypatch, place):
    """An editable install's finder serves the module: its edits are not seen, so no memo."""
    options = _with_mylib(tmp_path, monkeypatch)
    hook = EditableFinder(tmp_path / "src")
    hooks = [*sys.meta_path, hook] if place.startswith("after") else [hook, *sys.meta_path]
    monkeypatch.setattr(sys, "meta_path", hooks)
    assert memo.describe(options, api._name) is None


@pytest.mark.parametrize(
    "line",
    ["import sys\nsys.path.insert(0, 'lib')", "import sys as s\ns.path.append('lib')",
     "from sys import path", "import site\nsite.addsitedir('lib')", "import not_a_module_found_anywhere"],
)  # fmt: skip
def test_an_import_the_digest_cannot_resolve_gives_no_memo(tmp_path, monkeypatch, line):
    options = {**api_defaults(), **_files(tmp_path, monkeypatch)}
    (tmp_path / "code" / "helpers.py").write_text(f"{line}\n{HELPERS}")
    assert memo.describe(options, api._name) is None


def _distribution(site_packages: Path, version: str, direct_url: dict | None = None) -> None:
    info = site_packages / "mylib-1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: mylib\nVersion: {version}\n")
    (info / "top_level.txt").write_text("mylib\n")
    if direct_url is not None:
        (info / "direct_url.json").write_text(json.dumps(direct_url))


def test_an_installed_distributions_version_is_in_the_digest_and_an_editable_one_gives_no_memo(
    tmp_path, monkeypatch
):
    options = _with_mylib(tmp_path, monkeypatch)
    site_packages = tmp_path / "env" / "site-packages"
    site_packages.mkdir(parents=True)
    (tmp_path / "src" / "mylib").rename(site_packages / "mylib")
    monkeypatch.syspath_prepend(str(site_packages))
    _distribution(site_packages, "1.0")
    first = memo.describe(options, api._name)
    assert first is not None and local_sources(tmp_path / "code" / "model.py").distributions["mylib"] == "1.0"
    _distribution(site_packages, "1.1")
    second = memo.describe(options, api._name)
    assert second is not None and second.digest != first.digest
    _distribution(site_packages, "1.1", {"url": "file:///src", "dir_info": {"editable": True}})
    assert memo.describe(options, api._name) is None
    (site_packages / "mylib-1.dist-info" / "top_level.txt").write_text("other\n")  # mylib: no distribution
    assert memo.describe(options, api._name) is None


@pytest.mark.parametrize("order", [("lib", "models"), ("models", "lib"), ("lib",)])
def test_the_users_modules_are_found_in_the_order_python_imports_them(tmp_path, monkeypatch, order):
    """Two ``helpers.py``: the one hashed is the first on sys.path, as Python imports it (the model's
    own folder only where it is on sys.path: the suite imports the model by its path)."""
    for folder in ("models", "lib"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "order_helpers.py").write_text(f"SCALE = {folder!r}\n")
    (tmp_path / "models" / "model.py").write_text("from order_helpers import SCALE\n")
    for folder in reversed(order):
        monkeypatch.syspath_prepend(str(tmp_path / folder))
    found = local_sources(tmp_path / "models" / "model.py").files
    helpers = [Path(name).parent.name for name in found if name.endswith("order_helpers.py")]
    assert helpers == [order[0]] == [Path(importlib.util.find_spec("order_helpers").origin).parent.name]


def test_a_name_or_a_folder_the_full_check_refuses_skips_the_memo(tmp_path, monkeypatch):
    """The memo is consulted only after the full check's folder validation, and no memo path is made
    from a name the full check refuses."""
    from ppl_suite.references.cache import VARIABLE

    options = _files(tmp_path, monkeypatch)
    full = FullCheck(monkeypatch)
    ppl_suite.check(**options)
    assert memo.describe({**api_defaults(), **options, "name": "x/../y"}, api._name) is None
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv(VARIABLE, str(tmp_path / "a-file"))  # the reference cache is a file: exit 2
    ppl_suite.check(**options)
    assert full.calls == 2, "the memo answered where the full check refuses the reference cache"


@pytest.mark.slow
def test_a_real_recheck_and_its_memo_give_the_same_result_and_lines(tmp_path, monkeypatch, capsys):
    """The real check of a tiny NumPyro model, then the memo's answer and a full re-check: the same
    result and the same printed lines."""
    from ppl_suite.references.cache import VARIABLE

    monkeypatch.setenv(VARIABLE, str(tmp_path / "references"))
    code = tmp_path / "code"
    code.mkdir()
    (code / "helpers.py").write_text("import numpyro.distributions as dist\nPRIOR = dist.Normal(0.0, 1.0)\n")
    (code / "model.py").write_text(
        "import numpyro\nimport numpyro.distributions as dist\nfrom helpers import PRIOR\n\n\n"
        "def model(x=None):\n    mu = numpyro.sample('mu', PRIOR)\n"
        "    numpyro.sample('x', dist.Normal(mu, 1.0).expand([3]).to_event(1), obs=x)\n"
    )
    np.savez(tmp_path / "data.npz", x=np.array([0.1, 0.5, 0.3]))
    options = dict(
        numpyro=f"{code / 'model.py'}:model", data=str(tmp_path / "data.npz"), guides=["mean_field"],
        steps=20, estimators=["elbo"], out=tmp_path / "results", report=tmp_path / "report", progress=True,
        nuts={"chains": 2, "warmup": 100, "draws": 200, "ess_min": 100, "remedies": False},
    )  # fmt: skip
    sys.path.insert(0, str(code))  # the helper module beside the model is imported by its name
    try:
        ppl_suite.check(**options)
        capsys.readouterr()
        full = ppl_suite.check(**options, recheck=True)
        printed = capsys.readouterr().out
        found = ppl_suite.check(**options)
        assert capsys.readouterr().out == printed
    finally:
        sys.path.remove(str(code))
        sys.modules.pop("helpers", None)  # imported by the check: another test's helpers is another file
    _same(found, full)
    assert found.table.equals(full.table)


def test_a_users_module_named_like_a_standard_one_and_found_first_is_hashed(tmp_path, monkeypatch):
    """``wave.py`` of the user's, first on sys.path, is what ``import wave`` runs: hashed; the
    standard library's own modules (``json``) count for nothing."""
    assert "wave" not in sys.modules  # else the import would not run the user's file (no memo then)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "wave.py").write_text("SCALE = 1\n")
    (tmp_path / "model.py").write_text("import json\nimport wave\n")
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    found = local_sources(tmp_path / "model.py").files
    assert set(found) == {
        str((tmp_path / "model.py").resolve()),
        str((tmp_path / "lib" / "wave.py").resolve()),
    }
