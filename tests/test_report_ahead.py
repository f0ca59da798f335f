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


class StartingExecutor:
    """An executor that starts ahead (``executors.StartsAhead``), says in order what was asked of it,
    and raises KeyboardInterrupt (a Ctrl-C) where told: while a worker starts, or in ``run`` before it
    took the workers."""

    def __init__(self, said: list[str], interrupted_in: str | None) -> None:
        self.said, self.interrupted_in = said, interrupted_in

    def start_ahead(self, count: int) -> None:
        self.said.append(f"start_ahead {count}")
        if self.interrupted_in == "start":
            raise KeyboardInterrupt

    def stop_ahead(self) -> None:
        self.said.append("stop_ahead")

    def run(self, cells, on_record) -> None:
        self.said.append(f"run {len(cells)}")
        if self.interrupted_in == "run":
            raise KeyboardInterrupt


class Store:
    def write(self, unit, record) -> None:  # pragma: no cover - the executor above returns no record
        raise AssertionError("no record comes back")


WHERE = ("start", "imports", "run")
STEPS = ("start_ahead 1", "imports", "run 1")  # in this order: the workers, the imports, the cells


@pytest.mark.parametrize("where", WHERE)
def test_a_stop_anywhere_before_the_cells_stops_the_workers_started_for_the_imports(where):
    """(The order when nothing stops, and a stop during the imports through ``runner.run``:
    ``test_runner_library``.)"""
    said: list[str] = []

    def imports() -> None:
        said.append("imports")
        if where == "imports":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.execute(StartingExecutor(said, where), ["a"], Store(), 2, lambda event: None, imports)
    assert said == [*STEPS[: WHERE.index(where) + 1], "stop_ahead"]


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
