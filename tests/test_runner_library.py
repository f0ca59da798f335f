"""The runner as a library (``ppl_suite.runner``): it prints nothing, says what happens through typed
events, and returns an Outcome; ``ppl_suite.check`` calls it and prints nothing unless asked.

The units run in this process (``InProcess``), so that these tests take seconds: the executors' own
promises (workers, timeouts, stops) are tested in ``test_runner`` and ``test_reliability_stops``.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import ppl_suite
from ppl_suite import executors, results, runner, schema
from ppl_suite.execute import execute
from ppl_suite.numerics import setup

SMALL = """
models = ["normal_normal"]
backends = ["handrolled"]
guides = ["mean_field"]
seeds = [0, 1]
estimators = {}
[svi]
steps = 50
eval_particles = 50
[evaluation]
samples = 50
[params.normal_normal]
n = 5
"""


class InProcess:
    """An executor that runs each unit here, one after the other."""

    def run(self, units: Sequence, on_record: executors.OnRecord) -> None:
        setup()
        for unit in units:
            on_record(unit, execute(unit))


@pytest.fixture
def plan(tmp_path: Path) -> runner.Plan:
    config = tmp_path / "small.toml"
    config.write_text(SMALL)
    return runner.Plan(config=config, jobs=1, command=["test"])


def recorded(plan: runner.Plan, folder: Path) -> tuple[runner.Outcome, list[runner.Event]]:
    events: list[runner.Event] = []
    return runner.run(plan, folder, InProcess(), events.append), events


def test_a_run_prints_nothing_and_says_each_step_through_events(plan, tmp_path, capfd):
    outcome, events = recorded(plan, tmp_path / "r")
    assert capfd.readouterr() == ("", "")
    kinds = [type(event) for event in events]
    assert kinds == [
        runner.ExecutionStarted,
        runner.UnitFinished,
        runner.UnitFinished,
        runner.ExecutionFinished,
        runner.Finalizing,
        runner.Finalized,
        runner.Finished,
    ]
    finished = [event for event in events if isinstance(event, runner.UnitFinished)]
    assert [(e.done, e.total) for e in finished] == [(1, 2), (2, 2)]
    assert finished[0].eta is not None and finished[0].eta >= 0 and finished[-1].eta == 0.0
    assert {e.unit.key for e in finished} == {
        "normal_normal[n=5]/handrolled/mean_field/data0/seed0",
        "normal_normal[n=5]/handrolled/mean_field/data1/seed1",
    }
    assert events[-1].outcome is outcome


def test_the_outcome_holds_the_folders_tables_and_maps_to_the_exit_code(plan, tmp_path):
    outcome, events = recorded(plan, tmp_path / "r")
    assert outcome.status == runner.OK and outcome.exit_code == 0 and outcome.planned == 2
    assert sorted(outcome.rows[schema.KEY]) == sorted(cell.key for cell in outcome.matrix.cells)
    assert set(outcome.rows[schema.STATUS]) == {schema.OK}
    assert outcome.failures.empty and outcome.failed_checks == [] and outcome.report_files == {}
    stored = results.load(tmp_path / "r")
    elbo = [frame.sort_values(schema.KEY)[schema.ELBO].to_numpy() for frame in (stored, outcome.rows)]
    assert np.array_equal(*elbo)
    (finalized,) = [event for event in events if isinstance(event, runner.Finalized)]
    assert finalized.files == (tmp_path / "r" / "rows.parquet", tmp_path / "r" / "estimates.parquet")
    assert finalized.files[0].is_file()  # no estimators: no estimates file


def test_a_rerun_reuses_every_cell_and_runs_nothing(plan, tmp_path):
    first, _ = recorded(plan, tmp_path / "r")
    again, events = recorded(plan, tmp_path / "r")
    (reusing,) = [event for event in events if isinstance(event, runner.Reusing)]
    assert (reusing.cells, reusing.running) == (2, 0)
    assert not any(isinstance(event, runner.UnitFinished) for event in events)
    assert again.rows.equals(first.rows)


def test_bad_input_returns_every_problem_and_starts_nothing(tmp_path, capfd):
    plan = runner.Plan(models=["no_such_model"], jobs=0, plugins=["no.such.module"])
    outcome, events = recorded(plan, tmp_path / "r")
    assert outcome.status == runner.BAD_INPUT and outcome.exit_code == 2
    assert len(outcome.problems) == 3, outcome.problems
    assert events == [] and not (tmp_path / "r").exists()
    assert capfd.readouterr() == ("", "")


def test_a_dry_run_expands_the_plan_and_writes_nothing(plan, tmp_path):
    outcome, events = recorded(replace(plan, dry_run=True), tmp_path / "r")
    assert outcome.status == runner.DRY_RUN and outcome.exit_code == 0
    assert len(outcome.matrix.cells) == 2 and outcome.rows is None
    assert [type(event) for event in events] == [runner.Finished]
    assert not (tmp_path / "r").exists()


def test_the_eta_is_the_mean_rate_projection():
    assert runner.eta_seconds(0.0, 0, 10, 5.0) is None
    assert runner.eta_seconds(20.0, 2, 10, 20.0) == 80.0


PYRO_MODEL = """
import pyro
import pyro.distributions as dist


def model(data):
    mu = pyro.sample("mu", dist.Normal(0.0, 2.0))
    with pyro.plate("points", len(data["x"])):
        pyro.sample("x", dist.Normal(mu.unsqueeze(-1), 1.0), obs=data["x"])
"""


def test_check_prints_nothing_and_returns_a_result(tmp_path, capfd, monkeypatch):
    """A Pyro-only model (its NUTS reference through the torch bridge, small settings): its cell runs in
    this process; the outcome is in the result, nothing is printed or exited."""
    import threading

    from ppl_suite.checking import draws

    monkeypatch.setattr(executors, "get", lambda name, **options: InProcess())
    drawn_in, row_draws = [], draws._row_draws
    monkeypatch.setattr(
        draws,
        "_row_draws",
        lambda *args: drawn_in.append(threading.current_thread().name) or row_draws(*args),
    )
    model = tmp_path / "pyro_model.py"
    model.write_text(textwrap.dedent(PYRO_MODEL))
    result = ppl_suite.check(
        f"{model}:model", {"x": np.linspace(-1.0, 2.0, 5)}, guides=["mean_field"], steps=20,
        estimators=["elbo"], out=tmp_path / "results", report=False, jobs=1,
        nuts={"chains": 2, "warmup": 100, "draws": 200, "ess_min": 100, "remedies": False},
    )  # fmt: skip
    assert capfd.readouterr() == ("", "")
    assert result.status == runner.OK and result.exit_code == 0
    (key,) = [cell.key for cell in result.outcome.matrix.cells]
    assert len(result.rows) == 1 and result.outcome.failures.empty, key
    kept = result.folder / "kept" / "check"  # the declaration and the draws, written by its step of the run,
    # and the memo of the whole check (a model file and plain data: ``checking.memo``)
    expected = {"model.json", "data.npz", "fingerprint.json", "verified.json", "draws", "memo.json"}
    assert {p.name for p in kept.iterdir()} == expected
    assert drawn_in == ["ppl-suite-draws"]  # its draws computed as the cell finished, not after the run


TINY_VAE = """
models = []
backends = ["handrolled"]
[vae]
n_test = 4
iwae_k = 10
checkpoint_images = 2
bdmc_images = 2
bdmc_lengths = [0.5]
training_runs = 1
[vae.training]
latent_dim = 2
hidden = 8
steps = 20
batch_size = 10
[vae.ais]
temperatures = 20
chains = 4
leapfrog_steps = 2
pilot_images = 1
[vae.qstar]
draws = 8
window = 5
max_steps = 20
"""


@pytest.mark.slow
def test_a_profile_with_a_vae_table_runs_the_study_after_the_cells_and_says_so_through_events(
    tmp_path, capfd
):
    config = tmp_path / "vae.toml"
    config.write_text(TINY_VAE)
    outcome, events = recorded(runner.Plan(config=config, jobs=1), tmp_path / "r")
    assert capfd.readouterr().out == ""
    kinds = [type(event) for event in events]
    assert kinds[0] is runner.StudyStarted and runner.StudyFinished in kinds and kinds[-1] is runner.Finished
    assert any(isinstance(event, runner.StudyProgress) for event in events)
    (finished,) = [event for event in events if isinstance(event, runner.StudyFinished)]
    assert outcome.status == (runner.FAILED if finished.failed else runner.OK)
    assert list(finished.tables["backends"]["backend"]) == ["handrolled"]


def test_a_front_ends_own_step_runs_under_the_folders_lock_before_the_report(plan, tmp_path):
    """``Plan.finishing`` (``check``: its declaration and draws) runs while the run holds the folder
    (its holder file is there), after the tables are written; the manifest names the executor given and
    no cell timeout (the runner gave it none)."""
    from ppl_suite.store import HOLDER, ROWS

    seen = []

    def finishing(store):
        seen.append(((store.path / HOLDER).exists(), (store.path / ROWS).exists()))

    outcome, _ = recorded(replace(plan, finishing=finishing, executor="in_process"), tmp_path / "r")
    assert outcome.status == runner.OK and seen == [(True, True)]
    manifest = results.opened(tmp_path / "r").manifest()
    assert (
        manifest[schema.MANIFEST_EXECUTOR] == "in_process" and manifest[schema.MANIFEST_CELL_TIMEOUT] is None
    )


class StartingAhead(InProcess):
    """An in-process executor that can start workers ahead (``executors.StartsAhead``), recording
    each call to ``start_ahead`` and ``stop_ahead``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int | None]] = []

    def start_ahead(self, count: int) -> None:
        self.calls.append(("start", count))

    def stop_ahead(self) -> None:
        self.calls.append(("stop", None))


def test_a_front_ends_preparing_step_may_start_the_workers_before_the_folder_is_touched(plan, tmp_path):
    """``Plan.preparing`` (``check``: its verification) runs before the folder exists and may start the
    executor's workers ahead (one per unit, at most ``jobs``: 2 units, 1 job); those the run did not
    take are stopped after it. An executor without ``start_ahead`` and ``stop_ahead`` is not asked to;
    a step that starts none leaves the executor alone; a dry run takes no step."""
    executor, folder = StartingAhead(), tmp_path / "r"

    def preparing(start_workers):
        assert not folder.exists() and executor.calls == []
        start_workers()

    outcome = runner.run(replace(plan, preparing=preparing), folder, executor)
    assert outcome.status == runner.OK and len(outcome.rows) == 2
    assert executor.calls == [("start", 1), ("stop", None)]
    assert isinstance(executor, executors.StartsAhead) and not isinstance(InProcess(), executors.StartsAhead)
    idle = StartingAhead()
    assert (
        runner.run(replace(plan, preparing=lambda start: None, fresh=True), folder, idle).status == runner.OK
    )
    assert idle.calls == []
    dry = runner.run(replace(plan, preparing=lambda start: pytest.fail("taken"), dry_run=True), folder, idle)
    assert dry.status == runner.DRY_RUN


def test_a_run_with_a_report_imports_its_libraries_while_the_workers_it_started_set_up(
    plan, tmp_path, monkeypatch
):
    """``report.ahead``: the workers are started (one per unit, at most ``jobs``), the report's libraries
    imported, then the cells given; a run without a report imports nothing ahead, nor one whose
    ``preparing`` step started its workers; a stop during the imports stops the workers started for
    them and the run is stopped, its manifest saying so."""
    from ppl_suite.report import ahead

    current: list[StartingAhead] = []  # the executor of the run going on: the imports are told to it

    def imports() -> None:
        current[-1].calls.append(("imports", None))

    def run_on(changed: runner.Plan) -> StartingAhead:
        current.append(StartingAhead())
        outcome = runner.run(changed, tmp_path / "r", current[-1])
        assert outcome.status == runner.OK and len(outcome.rows) == 2
        return current[-1]

    monkeypatch.setattr(ahead, "load", imports)
    monkeypatch.setattr(runner, "_report", lambda plan, store, on_event: {})  # no report written here
    report = tmp_path / "report"
    # after the workers started, before the cells; then none left to stop (``run`` took them)
    assert run_on(replace(plan, report=report)).calls == [("start", 1), ("imports", None), ("stop", None)]
    assert run_on(replace(plan, fresh=True)).calls == []  # no report
    # workers the plan's own step started (``check`` while it verifies) are not held up by the imports
    prepared = replace(plan, report=report, fresh=True, preparing=lambda start: start())
    assert run_on(prepared).calls == [("start", 1), ("stop", None)]
    # a step that started none (a re-check whose reference is verified already): as a run
    quiet = replace(plan, report=report, fresh=True, preparing=lambda start: None)
    assert run_on(quiet).calls == [("start", 1), ("imports", None), ("stop", None)]

    def stopped() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ahead, "load", stopped)
    interrupted, folder = StartingAhead(), tmp_path / "stopped"
    outcome = runner.run(replace(plan, report=tmp_path / "report"), folder, interrupted)
    assert outcome.status == runner.STOPPED and outcome.rows.empty
    assert interrupted.calls == [("start", 1), ("stop", None)]
    assert schema.MANIFEST_STOPPED in json.loads((folder / "manifest.json").read_text())


def test_workers_started_ahead_are_stopped_when_every_unit_is_reused_and_when_the_folder_is_busy(
    plan, tmp_path
):
    from ppl_suite.store import ResultsStore

    folder = tmp_path / "r"
    assert runner.run(plan, folder, InProcess()).status == runner.OK
    reused = StartingAhead()
    events: list[runner.Event] = []
    outcome = runner.run(replace(plan, preparing=lambda start: start()), folder, reused, events.append)
    assert outcome.status == runner.OK and reused.calls == [("start", 1), ("stop", None), ("stop", None)]
    assert not any(isinstance(event, runner.ExecutionStarted) for event in events)
    busy = StartingAhead()
    with ResultsStore(folder).locked():
        outcome = runner.run(replace(plan, preparing=lambda start: start()), folder, busy)
    assert outcome.status == runner.BAD_INPUT and "in use by another run" in outcome.problems[0]
    assert busy.calls == [("start", 1), ("stop", None)]


def test_what_the_preparing_step_raises_propagates_with_the_workers_stopped_and_nothing_written(
    plan, tmp_path
):
    executor, folder = StartingAhead(), tmp_path / "r"

    def preparing(start_workers):
        start_workers()
        raise ppl_suite.CheckFailed("the reference failed its gates")

    with pytest.raises(ppl_suite.CheckFailed, match="gates"):
        runner.run(replace(plan, preparing=preparing), folder, executor)
    assert executor.calls == [("start", 1), ("stop", None)] and not folder.exists()
