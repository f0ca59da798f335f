"""A report is rewritten only when its inputs changed: the results folder's files, the manifest (less
when the run started and finished), the code, the formats (``report/digest.py``); a rewritten one
draws again only the figures whose data changed, in its own process when they are few."""

from __future__ import annotations

import json
from concurrent.futures import Executor, Future
from pathlib import Path

import numpy as np
import pytest

from ppl_suite import cli
from ppl_suite.report import digest
from ppl_suite.report.document import POOL_FIGURES, Context
from ppl_suite.report.render import write_report
from ppl_suite.store import ResultsStore

PNG = b"\x89PNG\r\n\x1a\n"
MANIFEST = {"config": {"models": []}, "versions": {}, "started": "2000-01-01T00:00:00+00:00"}


@pytest.fixture
def results(tmp_path) -> ResultsStore:
    store = ResultsStore(tmp_path / "results")
    store.write_manifest(dict(MANIFEST))
    return store


def stamps(out) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}


def test_an_unchanged_report_is_not_rewritten_and_a_changed_input_rewrites_it(results, tmp_path):
    out = tmp_path / "report"
    first = write_report(results.path, out, "md,html", processes=1)
    assert first.rewritten and (out / digest.DIGEST_FILE).is_file()
    written = stamps(out)
    again = write_report(results.path, out, "md,html", processes=1)
    assert not again.rewritten and dict(again) == dict(first) and stamps(out) == written
    results.write_manifest({**MANIFEST, "started": "2001-01-01T00:00:00+00:00", "finished": "x"})
    assert not write_report(results.path, out, "md,html", processes=1).rewritten  # the times alone
    results.write_manifest({**MANIFEST, "config": {"models": ["normal_normal"]}})
    assert write_report(results.path, out, "md,html", processes=1).rewritten  # a changed input
    assert not write_report(results.path, out, "md,html", processes=1).rewritten
    assert write_report(results.path, out, "md", processes=1).rewritten  # other formats
    assert write_report(results.path, out, "md", processes=1, force=True).rewritten


def test_a_report_file_changed_or_removed_since_is_rewritten(results, tmp_path):
    out = tmp_path / "report"
    write_report(results.path, out, "md,html", processes=1)
    (out / "report.html").unlink()
    assert write_report(results.path, out, "md,html", processes=1).rewritten
    (out / "report.md").write_text("edited")
    assert write_report(results.path, out, "md,html", processes=1).rewritten
    kept = json.loads((out / digest.DIGEST_FILE).read_text())
    assert set(kept["files"]) >= {"report.md", "report.html"}


def test_a_changed_row_changes_the_digest_and_per_run_fields_do_not(results):
    rows = results.path / "rows.parquet"
    rows.write_bytes(b"row one")
    before = digest.report_digest(results.path, ("md",), [])
    rerun = ["ppl-suite", "run", "--fresh", "--jobs", "1"]  # another command line, the same results
    results.write_manifest(
        {**MANIFEST, "started": "2002-01-01T00:00:00+00:00", "reused": 7, "command": rerun}
    )
    assert digest.report_digest(results.path, ("md",), []) == before
    rows.write_bytes(b"row two")
    changed = digest.report_digest(results.path, ("md",), [])
    assert changed != before
    (results.path / "logs").mkdir()
    (results.path / "logs" / "error.log").write_text("not read by the report")
    assert digest.report_digest(results.path, ("md",), []) == changed


def test_the_report_command_says_when_it_leaves_the_report_and_force_rewrites_it(results, tmp_path, capsys):
    argv = ["report", str(results.path), "--out", str(tmp_path / "report"), "--format", "md"]
    assert cli.main(argv) == 0
    assert cli.UNCHANGED not in capsys.readouterr().out
    assert cli.main(argv) == 0
    assert cli.UNCHANGED in capsys.readouterr().out
    assert cli.main([*argv, "--force"]) == 0
    assert cli.UNCHANGED not in capsys.readouterr().out


@pytest.mark.parametrize("study", ["vae", "calibration"])
def test_a_changed_study_table_changes_the_digest(results, study):
    from ppl_suite import studies

    folder = results.path / studies.get(study).folder
    folder.mkdir()
    table = folder / f"{next(iter(studies.get(study).tables))}.parquet"
    table.write_bytes(b"table one")
    before = digest.report_digest(results.path, ("md",), [])
    table.write_bytes(b"table two")
    assert digest.report_digest(results.path, ("md",), []) != before


def _figure(value: object, path: Path) -> Path:
    """A stand-in drawing function (module-level, so a pool could run it): its data, written out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(PNG + repr(value).encode())
    return path


def test_a_figure_is_drawn_again_only_when_its_data_or_the_code_changed(results, tmp_path):
    figures = tmp_path / "figures"
    first = Context(results, figures, code="code")
    first.draw("a", _figure, {"x": np.arange(3.0)})
    first.draw("b", _figure, [1.0])
    assert first.reused == [] and set(first.keys) == {"a.png", "b.png"}
    again = Context(results, figures, code="code", reusable=first.keys)
    again.draw("a", _figure, {"x": np.arange(3.0)})  # the same data: kept
    again.draw("b", _figure, [2.0])  # other data: drawn again
    assert [path.name for path in again.reused] == ["a.png"]
    assert (figures / "b.png").read_bytes() == PNG + b"[2.0]"
    other_code = Context(results, figures, code="other code", reusable=again.keys)
    other_code.draw("a", _figure, {"x": np.arange(3.0)})
    assert other_code.reused == []


class RecordingPool(Executor):
    """Runs what it is handed at once, noting the figures' names."""

    def __init__(self) -> None:
        self.handed: list[str] = []

    def submit(self, fn, /, *args, **kwargs):
        self.handed.append(args[-1].name)
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


@pytest.mark.parametrize("count", [POOL_FIGURES - 1, POOL_FIGURES])
def test_figures_go_to_the_pool_only_when_enough_are_to_be_drawn(results, tmp_path, count):
    """A spawned process's start-up costs more than a few figures: fewer than POOL_FIGURES are drawn
    in the report's own process."""
    pool = RecordingPool()
    context = Context(results, tmp_path, pool)
    paths = [context.draw(f"f{i}", _figure, i) for i in range(count)]
    context.drawn()
    assert all(path.read_bytes() == PNG + repr(i).encode() for i, path in enumerate(paths))
    assert pool.handed == ([] if count < POOL_FIGURES else [path.name for path in paths])


def test_what_a_figure_shows_is_computed_only_when_it_is_drawn(results, tmp_path):
    """``prepare`` turns the figure's data into what it shows, in the report's process, before the
    pool gets it; a kept figure (its key is of the data, not of what ``prepare`` made) computes
    nothing."""
    prepared: list[float] = []

    def doubled(value: float) -> tuple[float]:
        prepared.append(value)
        return (2 * value,)

    figures = tmp_path / "figures"
    pool = RecordingPool()
    first = Context(results, figures, pool, code="code")
    paths = [first.draw(f"f{i}", _figure, float(i), prepare=doubled) for i in range(POOL_FIGURES)]
    first.drawn()
    assert prepared == [float(i) for i in range(POOL_FIGURES)] and len(pool.handed) == POOL_FIGURES
    assert all(path.read_bytes() == PNG + repr(2.0 * i).encode() for i, path in enumerate(paths))
    again = Context(results, figures, code="code", reusable=first.keys)
    again.draw("f0", _figure, 0.0, prepare=doubled)
    again.draw("f1", _figure, 5.0, prepare=doubled)
    assert [path.name for path in again.reused] == ["f0.png"] and prepared[POOL_FIGURES:] == [5.0]
    assert (figures / "f1.png").read_bytes() == PNG + b"10.0"
