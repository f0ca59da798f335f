"""Studies as plug-ins (``ppl_suite.studies``): found by discovery, each declaring its section, its
tables and its kept work; a plan of one study alone goes through the runner; ``--fresh`` of one study
leaves another's work in a shared folder alone. A stand-in study (no training) keeps these fast."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest

from ppl_suite import console, matrix, runner, studies
from ppl_suite.errors import InputProblem
from ppl_suite.store import ResultsStore
from ppl_suite.vae import results as vae_results
from ppl_suite.vqvae import results as vqvae_results


@dataclasses.dataclass(frozen=True)
class TinySettings:
    runs: int
    failing: int = 0


class TinyStudy:
    """A study that writes one table of ``runs`` rows, ``failing`` of them failed."""

    name = "tiny_study"
    title = "tiny"
    folder = "tiny"
    tables: ClassVar = {"tiny_runs": ("run", "status")}
    runs_table = "tiny_runs"
    manifest_key = "tiny_study"
    report = None

    def settings(self, table, config):
        if not isinstance(table, dict) or set(table) - {"runs", "failing"}:
            raise InputProblem(f"tiny_study: a table of runs and failing, got {table!r}")
        return TinySettings(**table)

    def owns_part(self, name):
        return name.partition(".")[2] == "tiny.npz"

    def run(self, settings, folder, log):
        store = ResultsStore(folder)
        rows = [
            {"run": i, "status": "failed" if i < settings.failing else "ok"} for i in range(settings.runs)
        ]
        log(f"tiny: {len(rows)} runs")
        frame = pd.DataFrame(rows, columns=["run", "status"])
        store.write_study_table(self.name, "tiny_runs", frame)
        store.write_part(self.name, "0123456789abcdef", "tiny.npz", b"kept")
        return {"tiny_runs": frame}

    def failed(self, tables):
        return bool((tables["tiny_runs"]["status"] != "ok").any())

    def summary_lines(self, tables):
        return [tables["tiny_runs"].to_string(index=False)]

    def outcome(self, tables):
        runs = tables["tiny_runs"]
        return f"{int((runs['status'] == 'ok').sum())} of {len(runs)} runs ok"


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(studies, "STUDIES", studies.STUDIES.copy())
    studies.register(TinyStudy())
    return TinyStudy.name


def test_the_studies_are_found_by_discovery_and_declare_what_the_core_needs():
    assert {"vae", "vqvae"} <= set(studies.names()) and studies.names() == sorted(studies.names())
    for name in ("vae", "vqvae"):
        study = studies.get(name)
        assert isinstance(study, studies.Study) and study.runs_table in study.tables
    assert set(studies.get("vae").tables) == set(vae_results.TABLES)
    assert set(studies.table_names("vae")) == {*vae_results.TABLES, *vqvae_results.TABLES}
    with pytest.raises(KeyError, match="unknown study 'nope'"):
        studies.get("nope")


def test_each_kept_part_belongs_to_one_study():
    vae, vqvae = studies.get("vae"), studies.get("vqvae")
    for part, owner in (
        ("0123456789abcdef.trained.npz", vae),
        ("0123456789abcdef.backends.parquet", vae),
        ("0123456789abcdef.vqvae_trained.npz", vqvae),
        ("0123456789abcdef.exact.parquet", vqvae),
        ("0123456789abcdef.vqvae_runs.parquet", vqvae),
    ):
        other = vqvae if owner is vae else vae
        assert owner.owns_part(part) and not other.owns_part(part), part


def test_fresh_of_one_study_leaves_the_other_studys_work_in_a_shared_folder(tmp_path):
    store = ResultsStore(tmp_path)
    store.write_vae_table("backends", vae_results.frame("backends", []))
    store.write_vae_table("exact", vqvae_results.frame("exact", []))
    store.write_vae_part("0123456789abcdef", "trained.npz", b"vae weights")
    store.write_vae_part("fedcba9876543210", "vqvae_trained.npz", b"vq-vae weights")
    store.write_vae_part("fedcba9876543210", "vqvae_runs.parquet", b"vq-vae rows")
    assert store.discard(only=["vae"]) == 2
    assert set(store.vae_tables()) == {"exact"}
    assert store.vae_part("fedcba9876543210", "vqvae_trained.npz") == b"vq-vae weights"
    assert store.discard(only=["vqvae"]) == 3 and not (tmp_path / "vae").exists()


def test_a_study_section_is_checked_by_its_study_and_stands_without_cells(tiny):
    expanded = matrix.expand({tiny: {"runs": 2}})
    assert expanded.cells == [] and expanded.studies == {tiny: TinySettings(2)}
    assert expanded.tiny_study == TinySettings(2) and expanded.vae is None
    with pytest.raises(matrix.ConfigError) as error:
        matrix.expand({tiny: {"runs": 2, "colour": "red"}, "nonsense": 1})
    assert error.value.problems[0].startswith("unknown config key 'nonsense'")
    assert error.value.problems[1].startswith("tiny_study: a table of runs and failing")


def test_a_plan_of_a_study_alone_runs_through_the_runner_and_fresh_removes_only_its_work(tiny, tmp_path):
    folder = tmp_path / "r"
    events = []
    plan = runner.Plan(studies={tiny: TinySettings(3, failing=1)}, command=["test"])
    outcome = runner.run(plan, folder, on_event=events.append)
    assert outcome.status == runner.FAILED and outcome.exit_code == 1 and outcome.study_failed
    assert [type(e) for e in events] == [
        runner.StudyStarted, runner.StudyProgress, runner.StudyFinished, runner.Finished,
    ]  # fmt: skip
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["tiny_study"]["config"] == {tiny: {"runs": 3, "failing": 1}}
    assert (folder / "tiny" / "tiny_runs.parquet").exists()
    assert "finished" in manifest["tiny_study"]

    ResultsStore(folder).write_vae_part("0123456789abcdef", "trained.npz", b"vae weights")
    other = folder / "vae" / "parts" / "0123456789abcdef.trained.npz"  # another study's kept work
    events.clear()
    again = runner.run(
        runner.Plan(studies={tiny: TinySettings(2)}, fresh=True), folder, on_event=events.append
    )
    assert again.status == runner.OK and again.exit_code == 0
    (removed,) = [e for e in events if isinstance(e, runner.StoredRemoved)]
    assert removed.count == 2 and removed.studies == (tiny,)
    assert other.read_bytes() == b"vae weights"
    assert ResultsStore(folder).part(tiny, "0123456789abcdef", "tiny.npz") == b"kept"  # written again


def test_a_run_of_a_study_alone_says_the_studys_outcome_not_zero_cells(tiny, tmp_path, capsys):
    outcome = runner.run(runner.Plan(studies={tiny: TinySettings(3, failing=1)}), tmp_path / "r")
    console.Printer()(runner.Finished(outcome))
    out = capsys.readouterr().out
    assert "the tiny study: 2 of 3 runs ok" in out and "0 cells" not in out
    printer = console.StudyPrinter(Path("r"))
    printer(runner.StudyFinished(tiny, outcome.study_tables[tiny], True))
    assert f"tiny tables: {Path('r') / 'tiny'}" in capsys.readouterr().out


def test_a_busy_or_unusable_folder_is_bad_input_for_a_plan_of_studies(tiny, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    outcome = runner.run(runner.Plan(studies={tiny: TinySettings(1)}), tmp_path / "file")
    assert outcome.status == runner.BAD_INPUT and outcome.problems and outcome.exit_code == 2
    outcome = runner.run(runner.Plan(studies={"nope": TinySettings(1)}), tmp_path / "r")
    assert outcome.status == runner.BAD_INPUT and outcome.problems[0].startswith("unknown study 'nope'")
    assert not (tmp_path / "r").exists()


class SignalledStudy(TinyStudy):
    """A study whose step is stopped by a signal sent to this process."""

    signum = signal.SIGINT

    def run(self, settings, folder, log):
        os.kill(os.getpid(), self.signum)
        time.sleep(30)  # the signal interrupts it
        raise AssertionError("not stopped")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_run_of_studies_alone_stopped_by_a_signal_is_stopped_and_recorded(monkeypatch, tmp_path, signum):
    """As a run of cells: the outcome is STOPPED (exit 130 or 143), the manifest says when and by
    which signal, a Stopped event is told, and no KeyboardInterrupt escapes ``runner.run``."""
    monkeypatch.setattr(studies, "STUDIES", studies.STUDIES.copy())
    study = SignalledStudy()
    study.signum = signum
    studies.register(study)
    events = []
    outcome = runner.run(
        runner.Plan(studies={study.name: TinySettings(1)}), tmp_path / "r", on_event=events.append
    )
    assert outcome.status == runner.STOPPED and outcome.exit_code == 128 + signum
    name = signal.Signals(signum).name
    assert [e.signal_name for e in events if isinstance(e, runner.Stopped)] == [name]
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert (
        manifest[study.manifest_key]["stopped_by"] == name and "finished" not in manifest[study.manifest_key]
    )
    assert manifest["stopped_by"] == name and "stopped" in manifest
