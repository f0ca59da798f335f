"""A run's events on a terminal (``ppl_suite.runner``): a progress bar with a steady ETA, one line per
finished unit, and at the end the identity table, the summary, the failed checks and the units that
did not finish. Used by ``ppl-suite run`` and ``ppl-suite check``, and by ``ppl_suite.check(...,
progress=True)``."""

from __future__ import annotations

import errno
import math
import os
import shutil
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ppl_suite import runner, schema, studies
from ppl_suite.cell import Record

if TYPE_CHECKING:
    import pandas as pd


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def _width() -> int:
    return shutil.get_terminal_size().columns


def unit_detail(record: Record) -> str:
    """What a finished unit's progress line says: a cell's ELBO, residual and KL; a problem unit's
    estimates; the first line of the error of a unit that did not finish."""
    row = record.row
    if not record.ok:
        return (row.get(schema.ERROR) or "").splitlines()[0] if row.get(schema.ERROR) else ""
    if schema.ELBO not in row:  # a problem unit
        return ", ".join(
            f"{e[schema.ESTIMATOR]} {e[schema.VALUE]:.4f}" if e[schema.STATUS] == schema.ESTIMATE_OK
            else f"{e[schema.ESTIMATOR]} {e[schema.STATUS]}"
            for e in record.estimates
        )  # fmt: skip
    detail = f"ELBO {row[schema.ELBO]:.4f} ± {row[schema.ELBO_SE]:.1e}"
    if not math.isnan(row.get(schema.RESIDUAL_SE, math.nan)):
        detail += f", residual {row[schema.RESIDUAL_SE]:+.2f} SE, KL {row[schema.KL]:.2e}"
    elif row.get(schema.KL_METHOD) == schema.KL_BY_REFERENCE:  # no oracle: KL from the reference's AIS
        se = row.get(schema.KL_SE, math.nan)
        error = f"± {se:.1e}" if not math.isnan(se) else f"({row.get(schema.KL_RELIABILITY)})"
        detail += f", KL {row[schema.KL]:.3f} {error} (vs NUTS/AIS reference)"
    return detail


def summary(rows: pd.DataFrame, planned: int, problems: pd.DataFrame | None = None) -> str:
    """'N cells: a ok, b not converged (optimization gap > 0.01 nats), c failed, ...', then the problem
    units that did not finish, if any."""
    from ppl_suite import checks

    counts = rows[schema.STATUS].value_counts().to_dict() if not rows.empty else {}
    late = int(checks.not_converged(rows).sum()) if not rows.empty else 0
    parts = [f"{counts.pop('ok', 0) - late} ok"]
    if late:
        parts.append(f"{late} not converged (optimization gap > {checks.CONVERGED_GAP:g} nats)")
    words = {"failed": "failed", "diverged": "diverged", "timeout": "timed out"}
    parts += [f"{count} {words.get(status, status)}" for status, count in sorted(counts.items())]
    if planned > len(rows):
        parts.append(f"{planned - len(rows)} missing")
    text = f"{_count(planned, 'cell')}: " + ", ".join(parts)
    unfinished = (
        int((problems[schema.STATUS] != "ok").sum()) if problems is not None and not problems.empty else 0
    )
    if unfinished:
        text += f"; {unfinished} of {_count(len(problems), 'problem unit')} did not finish"
    return text


def _pipe_console() -> Any:
    """A rich console on standard output that stops the command the way a ``print`` to a closed pipe
    does (``BrokenPipeError``: exit code 141, ``cli.OUTPUT_CLOSED``), where rich's own exits with
    ``SystemExit(1)``, which here means a failed cell. Its progress bar's refresh thread only
    silences it; the next event raises in the main thread (``Printer.__call__``)."""
    from rich.console import Console

    class PipeConsole(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True  # nothing more is written to the closed pipe
            if threading.current_thread() is threading.main_thread():
                raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))

    return PipeConsole()


def _steady_eta_column() -> Any:
    """A rich progress column: the runner's projected time left (``runner.eta_seconds``), counting down
    between units."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class SteadyEta(ProgressColumn):
        def render(self, task) -> Text:
            if task.finished:
                return Text("")
            left = runner.eta_seconds(
                task.fields["at_last"], int(task.completed), int(task.total), task.elapsed or 0
            )
            return Text("eta --:--" if left is None else f"eta {int(left) // 60:d}:{int(left) % 60:02d}")

    return SteadyEta()


class Printer:
    """An ``on_event`` for ``runner.run`` that prints each event as ``ppl-suite run`` shows it; call
    ``close`` when the run returns or raises (it ends a progress bar still shown)."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._task: Any = None
        self._handlers: dict[type, Callable[[Any], None]] = {
            runner.JobsCapped: self._jobs_capped,
            runner.Skipped: lambda e: print(f"skip {e.reason}"),
            runner.TemporaryRemoved: lambda e: print(
                f"removed {e.count} temporary files of interrupted writes in {e.folder}"
            ),
            runner.StoredRemoved: lambda e: print(
                f"--fresh: removed {e.count} stored files of earlier runs from {e.folder}"
            ),
            runner.DamagedCells: lambda e: print(
                f"warning: {len(e.damages)} damaged cell files, rerunning their cells: {'; '.join(e.damages)}"
            ),
            runner.Reusing: self._reusing,
            runner.ExecutionStarted: self._start,
            runner.UnitFinished: self._unit_finished,
            runner.StudyStarted: lambda e: print(f"\nrunning the {studies.get(e.name).title} study"),
            runner.StudyProgress: lambda e: print(e.text),
            runner.StudyFinished: self._study_finished,
            runner.Stopped: self._stopped,
            runner.Finalizing: lambda e: print(f"writing {' and '.join(e.tables)}"),
            runner.Finalized: self._finalized,
            runner.ReportStarted: lambda e: print("writing the report"),
            runner.ReportWritten: self._report_written,
            runner.Finished: self._finished,
        }

    def __call__(self, event: runner.Event) -> None:
        closed = self._progress is not None and self._progress.console.quiet  # its pipe (_pipe_console)
        if closed and not isinstance(event, runner.Stopped):  # a stop still says so, on stderr
            raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))
        if not isinstance(event, runner.UnitFinished):
            self.close()
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    @staticmethod
    def _jobs_capped(event: runner.JobsCapped) -> None:
        print(
            f"warning: --jobs {event.requested} is more than the {event.available} cores; "
            f"using {event.available}",
            file=sys.stderr,
        )

    @staticmethod
    def _reusing(event: runner.Reusing) -> None:
        again = (
            f" ({event.unfinished} of them failed, diverged or timed out before)" if event.unfinished else ""
        )
        problems = f" and {_count(event.problem_units, 'problem unit')}" if event.problem_units else ""
        print(
            f"reusing {event.cells} finished cells{problems} stored in {event.folder}; "
            f"running {event.running}{again}"
        )

    def _start(self, event: runner.ExecutionStarted) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        columns = (
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            _steady_eta_column(),
        )
        first = (
            "compiling and running"
            if event.jobs == 1
            else f"starting {min(event.jobs, event.total)} workers, compiling"
        )
        self._progress = Progress(*columns, transient=False, console=_pipe_console())
        self._progress.start()
        self._task = self._progress.add_task(first, total=event.total, at_last=0.0)

    def _unit_finished(self, event: runner.UnitFinished) -> None:
        row = event.record.row
        line = (
            f"{row[schema.STATUS]:8s} {event.unit.key}  {unit_detail(event.record)}  "
            f"({row[schema.WALL_SECONDS]:.1f} s)"
        )
        self._progress.console.print(line)
        self._progress.update(self._task, advance=1, description="running", at_last=event.elapsed)

    @staticmethod
    def _study_finished(event: runner.StudyFinished) -> None:
        print("\n".join(studies.get(event.name).summary_lines(event.tables)))

    @staticmethod
    def _stopped(event: runner.Stopped) -> None:
        study = "; the study's finished work is kept too" if event.in_study else ""
        kept = (
            f"{event.kept} of {event.planned} cells are kept"
            if event.planned
            else "its finished work is kept"
        )
        print(
            f"\n{event.signal_name}: stopped; {kept} in {event.folder}{study if event.planned else ''}; "
            "rerun the same command to run the others",
            file=sys.stderr,
        )

    @staticmethod
    def _finalized(event: runner.Finalized) -> None:
        from ppl_suite.report.run_tables import identity_table

        table = identity_table(event.rows)
        if not table.empty:
            print()
            print(table.to_string(index=False, line_width=_width()))
        rows, estimates = event.files
        print(f"\nrows: {rows}\nestimates: {estimates}")

    @staticmethod
    def _report_written(event: runner.ReportWritten) -> None:
        if not getattr(event.files, "rewritten", True):  # render.ReportFiles
            print("report unchanged (same results, code and formats): not rewritten")
        for kind, path in event.files.items():
            print(f"report ({kind}): {path}")

    @staticmethod
    def _finished(event: runner.Finished) -> None:
        outcome = event.outcome
        if outcome.status == runner.DRY_RUN:
            plan = outcome.matrix
            print("\n".join(unit.key for unit in plan.units))
            problems = f" after {_count(len(plan.problems), 'problem unit')}" if plan.problems else ""
            vae = "".join(f" and the {studies.get(name).title} study" for name in plan.studies)
            print(f"{len(plan.cells)} cells would run{problems}{vae}")
            return
        lines = [summary(outcome.rows, outcome.planned, outcome.problem_rows)] if outcome.planned else []
        lines += [study_outcome(name, tables) for name, tables in outcome.study_tables.items()]
        print("\n" + "\n".join(lines))
        if outcome.failed_checks:
            print(
                f"{len(outcome.failed_checks)} correctness checks failed:\n"
                + "\n".join(outcome.failed_checks)
            )
        if outcome.failures is not None and (
            not outcome.failures.empty or len(outcome.rows) < outcome.planned
        ):
            print(
                f"\n{len(outcome.failures)} cells did not finish:\n"
                + outcome.failures.to_string(index=False, line_width=_width())
            )


def study_outcome(name: str, tables: Any) -> str:
    """'the VAE study: 3 of 3 backends ok' (``Study.outcome``)."""
    study = studies.get(name)
    return f"the {study.title} study: {study.outcome(tables)}"


class StudyPrinter:
    """An ``on_event`` for a plan of studies alone (``ppl-suite vae``): the clean-up, each study's
    progress lines, its summary and the folder of its tables, the report's files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __call__(self, event: runner.Event) -> None:
        if isinstance(event, runner.TemporaryRemoved):
            print(f"removed {event.count} temporary files left by an interrupted run in {event.folder}")
        elif isinstance(event, runner.StoredRemoved):
            names = " and ".join(studies.get(name).title for name in event.studies)
            print(f"--fresh: removed {event.count} files of earlier {names} studies from {event.folder}")
        elif isinstance(event, runner.StudyProgress):
            print(event.text)
        elif isinstance(event, runner.StudyFinished):
            study = studies.get(event.name)
            print("\n".join(study.summary_lines(event.tables)))
            print(f"\n{study.title} tables: {self.folder / study.folder}")
        elif isinstance(event, runner.ReportWritten):
            for kind, path in event.files.items():
                print(f"report ({kind}): {path}")
