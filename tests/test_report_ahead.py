"""A run that ends with a report imports the report's libraries while its workers start (``report.ahead``):
after they were started, before they are given a cell; never for a run without a report, nor where the
plan's own step (``check``'s verification) started the workers already."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ppl_suite import runner
from ppl_suite.report import ahead


class StartingExecutor:
    """An executor that starts ahead (``executors.StartsAhead``) and says, in order, what was asked of it."""

    def __init__(self, said: list[str]) -> None:
        self.said = said

    def start_ahead(self, count: int) -> None:
        self.said.append(f"start_ahead {count}")

    def stop_ahead(self) -> None:
        self.said.append("stop_ahead")

    def run(self, cells, on_record) -> None:
        self.said.append(f"run {len(cells)}")


class Store:
    def write(self, unit, record) -> None:  # pragma: no cover - the executor above returns no record
        raise AssertionError("no record comes back")


def test_the_imports_come_after_the_workers_start_and_before_their_cells():
    said: list[str] = []
    units = ["a", "b", "c"]

    def imports() -> None:
        said.append("imports")

    runner.execute(StartingExecutor(said), units, Store(), 2, lambda event: None, imports)
    # then whatever ``run`` did not take is stopped: nothing, for an executor whose ``run`` takes them
    assert said == ["start_ahead 2", "imports", "run 3", "stop_ahead"]


class Interrupted(StartingExecutor):
    """Ctrl-C while a worker starts (the second of two), or in ``run`` before it took the workers."""

    def __init__(self, said: list[str], where: str) -> None:
        super().__init__(said)
        self.where = where

    def start_ahead(self, count: int) -> None:
        super().start_ahead(count)
        if self.where == "start":
            raise KeyboardInterrupt

    def run(self, cells, on_record) -> None:
        super().run(cells, on_record)
        if self.where == "run":
            raise KeyboardInterrupt


@pytest.mark.parametrize("where", ["start", "imports", "run"])
def test_a_stop_anywhere_before_the_cells_stops_the_workers_started_for_the_imports(where):
    said: list[str] = []

    def imports() -> None:
        said.append("imports")
        if where == "imports":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.execute(Interrupted(said, where), ["a"], Store(), 2, lambda event: None, imports)
    assert said[0] == "start_ahead 1" and said[-1] == "stop_ahead"


def test_only_a_run_with_a_report_whose_workers_start_now_imports_ahead(tmp_path):
    with_report = runner.Plan(report=tmp_path / "report")
    assert runner._report_imports(with_report, started=False) is ahead.load
    assert runner._report_imports(runner.Plan(report=None), started=False) is None
    assert runner._report_imports(with_report, started=True) is None  # started by ``preparing``


def test_load_imports_the_report_modules_and_libraries_and_nothing_that_fits():
    """In a new process: what ``load`` leaves imported."""
    code = (
        "import json, sys\n"
        "from ppl_suite.report import ahead\n"
        "ahead.load()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout))
    assert {"ppl_suite.report.posterior", "ppl_suite.report.drawing", "matplotlib", "arviz"} <= loaded
    assert not {"jax", "torch", "pyro", "numpyro"} & loaded
