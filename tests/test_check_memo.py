"""The memo of a whole check (``checking.memo``): a re-check with nothing changed returns the result a
full re-check returns without importing the user's files; a change to a model file, to a module of
the user's it imports, to the data or to an option, a damaged memo, or a results or report file
changed or replaced by a link, means a full check. Here the full check is a stand-in writing a small
results folder (no fit): the slow test at the end runs the real one."""

from __future__ import annotations

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
from .. import nothing_here  # a relative import beyond a package: found nowhere, nothing hashed

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


def _files(tmp_path: Path) -> dict[str, object]:
    """A model file importing a helper module beside it, its data, the check's options."""
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
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
    options = _files(tmp_path)
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
    options = _files(tmp_path)
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
    options = _files(tmp_path)
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
    options = _files(tmp_path)
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


def test_a_call_with_a_function_or_an_unhashable_value_has_no_memo(tmp_path):
    options = {**api_defaults(), **_files(tmp_path)}
    assert memo.describe(options, api._name) is not None
    assert memo.describe({**options, "numpyro": lambda x=None: None}, api._name) is None
    assert memo.describe({**options, "kwargs": {"x": object()}}, api._name) is None
    in_memory = memo.describe({**options, "data": None, "kwargs": {"x": np.arange(3.0)}}, api._name)
    other = memo.describe({**options, "data": None, "kwargs": {"x": np.arange(1.0, 4.0)}}, api._name)
    assert in_memory is not None and other is not None and in_memory.digest != other.digest


def test_local_sources_follow_the_users_modules_and_packages_without_importing_them(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('imported')\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "deep.py").write_text("from .. import shared\n")
    (package / "shared.py").write_text("import json\n")
    (tmp_path / "model.py").write_text("import numpy\nimport pkg.sub\nfrom pkg.sub import deep\n")
    found = local_sources(tmp_path / "model.py", folders=[])
    expected = ["model.py", "pkg/__init__.py", "pkg/shared.py", "pkg/sub/__init__.py", "pkg/sub/deep.py"]
    assert sorted(Path(name).relative_to(tmp_path.resolve()).as_posix() for name in found) == expected
    assert "pkg" not in sys.modules


def test_a_memo_hit_imports_neither_jax_nor_torch(tmp_path, monkeypatch):
    """A fresh process answering from the memo written here: no JAX, no torch, no user module."""
    options = _files(tmp_path)
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
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "PPL_SUITE_TEST_NO_IMPORT": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", "[]"]


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
    _same(found, full)
    assert found.table.equals(full.table)
