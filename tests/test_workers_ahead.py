"""Workers started ahead of a run (``executors.local.started_ahead``): a check starts its workers
before it imports its own libraries and traces the model, so that they load theirs meanwhile. A run
takes them as if it had started them: they see the environment as it is when their first cell comes,
and those it does not take are stopped."""

from __future__ import annotations

import contextlib
import os
import sys
import types

from ppl_suite import schema
from ppl_suite.backends import SVIConfig
from ppl_suite.cell import Cell
from ppl_suite.checking import api
from ppl_suite.executors import local
from ppl_suite.executors.worker import EnvironmentChange

PLUGIN = "tests.plugins.environment_model"


def test_an_environment_change_sets_and_removes_what_changed_since(monkeypatch):
    monkeypatch.setenv("PPL_SUITE_TEST_KEPT", "1")
    monkeypatch.setenv("PPL_SUITE_TEST_GONE", "1")
    monkeypatch.setenv("PPL_SUITE_TEST_CHANGED", "before")
    before = dict(os.environ)
    monkeypatch.delenv("PPL_SUITE_TEST_GONE")
    monkeypatch.setenv("PPL_SUITE_TEST_CHANGED", "after")
    monkeypatch.setenv("PPL_SUITE_TEST_NEW", "new")
    change = EnvironmentChange.since(before)
    assert change == EnvironmentChange(
        {"PPL_SUITE_TEST_CHANGED": "after", "PPL_SUITE_TEST_NEW": "new"}, ("PPL_SUITE_TEST_GONE",)
    )
    monkeypatch.setattr(os, "environ", dict(before))
    change.apply()
    assert os.environ == {k: v for k, v in before.items() if k != "PPL_SUITE_TEST_GONE"} | change.changed


def test_a_run_takes_the_workers_started_ahead_which_see_the_environment_set_since(monkeypatch):
    """Two workers started ahead, then the environment names the plug-in's model: the run's one cell
    runs on a worker started ahead (no other is started) and its plug-in, imported at that cell,
    registers the model; the worker not taken is stopped when the block ends."""
    started = []
    worker_init = local._Worker.__init__

    def counted(self, plugins, ahead=False):
        worker_init(self, plugins, ahead)
        started.append((self, ahead))

    monkeypatch.setattr(local._Worker, "__init__", counted)
    monkeypatch.delenv("PPL_SUITE_TEST_MODEL_NAME", raising=False)
    records = []
    with local.started_ahead(2, [PLUGIN]):
        assert [ahead for _, ahead in started] == [True, True] and len(local._ahead) == 2
        monkeypatch.setenv("PPL_SUITE_TEST_MODEL_NAME", "named_in_the_environment")
        cell = Cell(
            "named_in_the_environment", "numpyro", "mean_field", svi=SVIConfig(steps=20, eval_particles=50)
        )
        local.LocalExecutor(1, [PLUGIN]).run([cell], lambda cell, record: records.append(record))
        assert len(started) == 2 and len(local._ahead) == 1
    (record,) = records
    assert record.row[schema.STATUS] == schema.OK, record.row.get(schema.ERROR)
    assert local._ahead == [] and not any(worker.process.is_alive() for worker, _ in started)


def test_a_check_starts_its_workers_ahead_only_when_its_cells_will_run_in_workers(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(local, "started_ahead", lambda jobs, plugins: asked.append((jobs, plugins)) or None)
    from ppl_suite.runner import cores

    model = f"{tmp_path / 'model.py'}:model"
    assert api._workers_ahead((None, None, model, "mean_field"), None) is None
    assert asked == [(cores(), [api.PLUGIN])]
    assert api._workers_ahead((model, None, None), 1) is None and asked[-1] == (1, [api.PLUGIN])
    assert len(asked) == 2
    script = tmp_path / "script.py"
    script.write_text("")
    main = types.ModuleType("__main__")
    main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", main)
    nothing = (  # a function kept here, a guide kept here, the running script's own file
        (lambda: None, None, None),
        (model, None, None, lambda data: None),
        (f"{script}:model", None, None),
    )
    for given in nothing:
        assert isinstance(api._workers_ahead(given, None), contextlib.nullcontext)
    assert len(asked) == 2
