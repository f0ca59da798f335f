"""The run's life as a library: validate, lock, expand, execute, write, finalize, run the studies' steps.

    outcome = run(Plan(profile="quick"), "results/default", on_event=print)

``run`` prints nothing and returns an ``Outcome`` (plain data: the status, the cell and problem-unit
tables, the failed checks, the units that did not finish, the report's files). What happens on the way
(cells reused, each unit finished with the projected time left, the VAE study, a stop by a signal)
reaches the caller as ``Event`` values through ``on_event``: ``ppl_suite.console`` prints them for the
command line, ``ppl_suite.check`` passes them on only when asked. The front ends map the outcome to
their own result: ``cli`` to an exit code (``Outcome.exit_code``), ``check`` to a ``CheckResult``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ppl_suite import executors, matrix, provenance, registry, schema, studies
from ppl_suite.cell import Cell, Record, Unit
from ppl_suite.compilation_cache import VARIABLE as CACHE_VARIABLE
from ppl_suite.compilation_cache import cache_dir
from ppl_suite.errors import InputProblem
from ppl_suite.stop_signals import StopSignals

if TYPE_CHECKING:
    import pandas as pd

    from ppl_suite.store import ResultsStore

SCHEDULER_TIMEOUT = 5.0  # seconds to open a connection to a Dask scheduler during validation


@dataclass(frozen=True)
class Plan:
    """What to run and how: the matrix config (a shipped profile or a TOML file, with overrides that
    take precedence), the executor, and what to do around the cells. ``report``: the report's folder
    (None: no report); ``command``: the command line kept in the manifest. ``studies``: instead of a
    matrix, these studies' settings by name (``ppl-suite vae``): no cell runs, the folder's manifest
    gains each study's entry (a new folder gets one of its own), ``fresh`` removes only their work."""

    profile: str | None = None
    config: str | Path | None = None
    models: Sequence[str] | None = None
    backends: Sequence[str] | None = None
    guides: Sequence[str] | None = None
    seeds: Sequence[int] | None = None
    steps: int | None = None
    estimators: Sequence[str] | None = None
    cell_timeout: float | None = None
    executor: str = "local"
    jobs: int | None = None
    scheduler: str | None = None
    plugins: Sequence[str] = ()
    fresh: bool = False
    dry_run: bool = False
    report: Path | None = None
    command: Sequence[str] = field(default_factory=lambda: list(sys.argv))
    studies: Mapping[str, Any] | None = None  # a run of these studies alone: their settings by name
    exports: tuple[str, ...] = ()  # files the command writes at the folder's top (``store.problem``)
    # a front end's own step before the cells, before the folder is locked or written (``check``: its
    # verification; a run of studies takes none); it is given a function that starts the executor's
    # workers ahead, to call when it has work of its own for them to set up beside; what it raises
    # propagates, the workers stopped
    preparing: Callable[[Callable[[], None]], None] | None = None
    # a front end's own step, under the folder's lock after the tables, before the report (``check``:
    # its declaration and the cells' draws, which the report links)
    finishing: Callable[[ResultsStore], None] | None = None


# -- events: what a front end may show while a run goes -------------------------------------------


class Event:
    """Something that happened during a run (the subclasses below)."""


@dataclass(frozen=True)
class JobsCapped(Event):
    """More workers were asked for than there are cores: ``available`` are used."""

    requested: int
    available: int


@dataclass(frozen=True)
class Skipped(Event):
    """A combination of the matrix that cannot run, and why."""

    reason: str


@dataclass(frozen=True)
class TemporaryRemoved(Event):
    """Temporary files of interrupted writes were removed from the folder."""

    count: int
    folder: Path


@dataclass(frozen=True)
class StoredRemoved(Event):
    """``fresh``: the stored files of earlier runs were removed from the folder (``studies``: only
    these studies' work, for a plan of studies alone)."""

    count: int
    folder: Path
    studies: tuple[str, ...] = ()


@dataclass(frozen=True)
class DamagedCells(Event):
    """Stored cell files that cannot be read; their cells run again."""

    damages: list[str]


@dataclass(frozen=True)
class Reusing(Event):
    """Finished cells and problem units reused from the folder; ``running`` units run, of which
    ``unfinished`` failed, diverged or timed out before."""

    cells: int
    problem_units: int
    running: int
    unfinished: int
    folder: Path


@dataclass(frozen=True)
class ExecutionStarted(Event):
    """``total`` units start on ``jobs`` workers."""

    total: int
    jobs: int


@dataclass(frozen=True)
class UnitFinished(Event):
    """A unit finished (ok or not) and was written: ``done`` of ``total``, ``elapsed`` seconds since
    execution started, ``eta`` seconds left (``eta_seconds``; None before the first)."""

    unit: Unit
    record: Record
    done: int
    total: int
    elapsed: float
    eta: float | None


@dataclass(frozen=True)
class ExecutionFinished(Event):
    """Every unit of the run finished."""

    done: int
    total: int


@dataclass(frozen=True)
class StudyStarted(Event):
    """A study's step starts after the cells (``name``: ``vae``)."""

    name: str


@dataclass(frozen=True)
class StudyProgress(Event):
    """A line of a study's progress (a backend trained, evaluated...)."""

    name: str
    text: str


@dataclass(frozen=True)
class StudyFinished(Event):
    """A study's step finished: its tables, and whether some part of it failed."""

    name: str
    tables: Mapping[str, pd.DataFrame]
    failed: bool


@dataclass(frozen=True)
class Stopped(Event):
    """SIGINT or SIGTERM stopped the run: ``kept`` of ``planned`` cells are kept (``in_study``: the
    stop came during a study, whose finished parts are kept too)."""

    signal_name: str
    kept: int
    planned: int
    folder: Path
    in_study: bool


@dataclass(frozen=True)
class Finalizing(Event):
    """The folder's tables are being written."""

    tables: tuple[str, ...]


@dataclass(frozen=True)
class Finalized(Event):
    """The folder's tables were written: the cells, the problem units, and the tables' files."""

    rows: pd.DataFrame
    problem_rows: pd.DataFrame
    files: tuple[Path, ...]


@dataclass(frozen=True)
class ReportStarted(Event):
    """The report is being written into ``folder``."""

    folder: Path


@dataclass(frozen=True)
class ReportWritten(Event):
    """The report's files, by kind (md, html)."""

    files: Mapping[str, Path]


@dataclass(frozen=True)
class Finished(Event):
    """The run is over (not sent for bad input or a stop): its outcome."""

    outcome: Outcome


OnEvent = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The default ``on_event``: nothing is shown."""


# -- the outcome ------------------------------------------------------------------------------------

OK = "ok"  # every cell ran and no correctness check failed
FAILED = "failed"  # some cell failed, diverged or timed out, or a study's part failed
CHECKS_FAILED = "checks failed"  # every cell ran but a correctness check failed
BAD_INPUT = "bad input"  # nothing ran: ``problems`` lists every problem
STOPPED = "stopped"  # SIGINT or SIGTERM: finished cells are kept
DRY_RUN = "dry run"  # the plan was expanded, nothing ran
EXIT_CODES = {OK: 0, FAILED: 1, BAD_INPUT: 2, CHECKS_FAILED: 3, DRY_RUN: 0}  # STOPPED: 128 + signal


@dataclass(frozen=True)
class Outcome:
    """What a run did. ``matrix``: the expanded plan (None when the input was bad); ``rows`` and
    ``problem_rows``: the folder's cell and problem-unit tables; ``failed_checks``: one line per failed
    correctness check; ``failures``: the units that did not finish; ``stopped_by``: the signal number."""

    status: str
    problems: list[str] = field(default_factory=list)
    matrix: matrix.Matrix | None = None
    rows: pd.DataFrame | None = None
    problem_rows: pd.DataFrame | None = None
    failed_checks: list[str] = field(default_factory=list)
    failures: pd.DataFrame | None = None
    study_failed: bool = False
    stopped_by: int | None = None
    report_files: dict[str, Path] = field(default_factory=dict)
    study_tables: dict[str, Mapping[str, pd.DataFrame]] = field(default_factory=dict)  # by study

    @property
    def planned(self) -> int:
        """The cells of the plan."""
        return len(self.matrix.cells) if self.matrix is not None else 0

    @property
    def exit_code(self) -> int:
        """The command line's exit code: 0 ok, 1 cells failed, 2 bad input, 3 checks failed, 128 + the
        signal that stopped the run."""
        if self.status == STOPPED:
            return 128 + (self.stopped_by or signal.SIGINT)
        return EXIT_CODES[self.status]


# -- validation ---------------------------------------------------------------------------------------


def cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def unreachable(address: str) -> str | None:
    """Why no connection can be opened to a scheduler at ``tcp://HOST:PORT`` (a sentence), or None."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(address if "://" in address else f"tcp://{address}")
        host, port = parts.hostname, parts.port
    except ValueError as error:
        return f"not an address tcp://HOST:PORT ({error})"
    if parts.scheme != "tcp" or not host or port is None:
        return "not an address tcp://HOST:PORT"
    try:
        socket.create_connection((host, port), timeout=SCHEDULER_TIMEOUT).close()
    except OSError as error:
        return f"cannot connect within {SCHEDULER_TIMEOUT:g} s ({error.strerror or error})"
    return None


def run_problems(plan: Plan, store: ResultsStore) -> list[str]:
    """Every problem of the plan that the matrix does not check: options, folders, plugins (imported
    here, so that their models are registered)."""
    problems = registry.plugin_problems(plan.plugins)
    if plan.jobs is not None and plan.jobs < 1:
        problems.append(f"--jobs must be >= 1, got {plan.jobs}")
    if plan.scheduler is not None and plan.executor != "dask":
        problems.append(f"--scheduler needs --executor dask (the {plan.executor} executor has no scheduler)")
    elif plan.scheduler is not None and (reason := unreachable(plan.scheduler)) is not None:
        problems.append(f"--scheduler {plan.scheduler}: {reason}")
    if plan.fresh and plan.dry_run:
        problems.append("--fresh removes stored cells, --dry-run runs nothing: choose one")
    return problems + folder_problems(store, plan.report)


def folder_problems(store: ResultsStore, report: Path | None) -> list[str]:
    """The problems of the results folder, the report folder and the caches (nothing imported, no
    model registered): part of ``run_problems``, also asked before a check answers from its memo."""
    from ppl_suite.references.cache import cache_dir as reference_cache_dir
    from ppl_suite.store import unwritable

    problems = []
    out = store.problem()
    if out is not None:
        problems.append(f"--out: {out}")
    if report is not None and (reason := unwritable(report)) is not None:
        problems.append(f"--report: {reason}")
    cache = cache_dir()
    if cache is not None and (reason := unwritable(cache)) is not None:
        problems.append(f"compilation cache ({CACHE_VARIABLE}={cache}): {reason}; set {CACHE_VARIABLE}=off")
    try:  # the NUTS references' cache: a variable naming a file is bad input before any cell runs
        reference_cache_dir()
    except InputProblem as error:
        problems += error.problems
    return problems


def config_of(plan: Plan) -> dict[str, Any]:
    """The profile or config file, with the plan's overrides taking precedence."""
    config = matrix.load(plan.profile, plan.config)
    for key in ("models", "backends", "guides", "seeds"):
        if getattr(plan, key) is not None:
            config[key] = list(getattr(plan, key))
    if plan.steps is not None:
        config["svi"] = {**config.get("svi", {}), "steps": plan.steps}
    if plan.estimators is not None:  # the profile's settings where it has them, else the defaults
        configured = config.get("estimators", {})
        config["estimators"] = {name: configured.get(name, {}) for name in plan.estimators}
    if plan.cell_timeout is not None:
        config["cell_timeout"] = plan.cell_timeout
    return config


def _jobs(requested: int | None, on_event: OnEvent) -> int:
    """The workers: ``requested`` (default: the cores this process may run on), capped at that number
    (more workers only share the same cores)."""
    available = cores()
    if requested is None:
        return available
    if requested > available:
        on_event(JobsCapped(requested, available))
        return available
    return requested


# -- the run ------------------------------------------------------------------------------------------


def run(
    plan: Plan,
    store: ResultsStore | str | Path,
    executor: executors.Executor | None = None,
    on_event: OnEvent = ignore,
) -> Outcome:
    """Validate the plan (every problem at once: status BAD_INPUT, nothing started), take the plan's
    ``preparing`` step (a run of cells), then under the folder's lock: clean up, reuse the finished
    units, run the others on ``executor`` (default: the plan's, built here with the cell timeout; one
    given is the caller's, recorded in the manifest under ``plan.executor`` with no cell timeout, as
    the runner gave it none), write each as it finishes, run the studies' steps, write the tables and
    the report. Prints nothing; raises only what ``preparing`` raises, and on internal errors."""
    from ppl_suite.store import FolderBusy, ResultsStore

    store = store if isinstance(store, ResultsStore) else ResultsStore(store)
    if plan.studies is not None:
        return _run_studies(plan, store, on_event)
    problems = run_problems(plan, store)
    expanded = None
    try:
        expanded = matrix.expand(config_of(plan))
    except matrix.ConfigError as error:
        problems += error.problems
    if problems or expanded is None:
        return Outcome(BAD_INPUT, problems=problems)
    jobs = _jobs(plan.jobs, on_event)
    for reason in expanded.skipped:
        on_event(Skipped(reason))
    if plan.dry_run:
        return _over(Outcome(DRY_RUN, matrix=expanded), on_event)
    timeout = expanded.config.get("cell_timeout") if executor is None else None
    if executor is None:
        executor = executors.get(
            plan.executor, jobs=jobs, scheduler=plan.scheduler, plugins=list(plan.plugins),
            cell_timeout=timeout,
        )  # fmt: skip
    try:
        with _prepared(plan, executor, min(jobs, len(expanded.units))) as started, store.locked():
            return _run_locked(plan, store, expanded, executor, (jobs, timeout), on_event, started)
    except FolderBusy as error:
        return Outcome(BAD_INPUT, problems=[str(error)], matrix=expanded)


@contextlib.contextmanager
def _prepared(plan: Plan, executor: executors.Executor, workers: int) -> Iterator[bool]:
    """The body after ``plan.preparing`` (if any), which may start ``workers`` of the executor ahead
    (where it can: ``executors.StartsAhead``); if it did, those the run did not take are stopped at the
    end, whatever happened. Yields whether it started them."""
    starting = executor if isinstance(executor, executors.StartsAhead) else None
    started = False

    def start_workers() -> None:
        nonlocal started
        if starting is not None:
            started = True
            starting.start_ahead(workers)

    try:
        if plan.preparing is not None:
            plan.preparing(start_workers)
        yield started
    finally:
        if started and starting is not None:
            starting.stop_ahead()


def _over(outcome: Outcome, on_event: OnEvent) -> Outcome:
    on_event(Finished(outcome))
    return outcome


def _run_locked(
    plan: Plan,
    store: ResultsStore,
    expanded: matrix.Matrix,
    executor: executors.Executor,
    workers: tuple[int, float | None],
    on_event: OnEvent,
    started: bool,
) -> Outcome:
    """The run proper, under the folder's lock: clean up, choose the units to run, run, finish.
    ``workers``: the jobs and the cell timeout the executor holds (None: none); ``started``: whether
    the plan's ``preparing`` step started them ahead."""
    from ppl_suite.store import now

    jobs = workers[0]

    if removed := store.clean_temporary():
        on_event(TemporaryRemoved(removed, store.path))
    if plan.fresh and (removed := store.discard()):
        on_event(StoredRemoved(removed, store.path))
    stored = {unit: store.stored(unit) for unit in expanded.units}
    damaged = [state.damage for state in stored.values() if state.damage]
    if damaged:
        on_event(DamagedCells(damaged))
    todo = [unit for unit in expanded.units if not stored[unit].reusable]
    reused = len(expanded.cells) - sum(isinstance(unit, Cell) for unit in todo)
    reused_problems = len(expanded.problems) - sum(not isinstance(unit, Cell) for unit in todo)
    if reused or reused_problems:
        unfinished = sum(stored[unit].status not in (None, schema.OK) for unit in todo)
        on_event(Reusing(reused, reused_problems, len(todo), unfinished, store.path))
    manifest = _manifest(plan, expanded, stored, (reused, reused_problems), workers)
    store.write_manifest(manifest)
    in_study = False  # the stop came during a study (after the cells)
    with StopSignals() as stop:
        try:
            execute(executor, todo, store, jobs, on_event, _report_imports(plan, started))
            in_study = bool(expanded.studies)
            tables = _studies(expanded.studies, store, on_event)
        except KeyboardInterrupt:
            stop.ignore()  # a second Ctrl-C must not break the clean-up
            rows = store.finalize()
            signum, name = stop.exit_code() - 128, stop.name()
            store.write_manifest(
                manifest | {schema.MANIFEST_STOPPED: now(), schema.MANIFEST_STOPPED_BY: name}
            )
            on_event(Stopped(name, len(rows), len(expanded.cells), store.path, in_study))
            return Outcome(STOPPED, matrix=expanded, rows=rows, stopped_by=signum)
    store.write_manifest(manifest | {schema.MANIFEST_FINISHED: now()})
    return _finish(plan, store, expanded, tables, on_event)


def _manifest(
    plan: Plan,
    expanded: matrix.Matrix,
    stored: Mapping[Unit, Any],
    reused: tuple[int, int],
    workers: tuple[int, float | None],
) -> dict[str, Any]:
    """The run's manifest as it starts: command, config, units and digests, what is reused, provenance,
    the executor with its jobs and cell timeout."""
    from ppl_suite.store import now

    return {
        schema.MANIFEST_COMMAND: list(plan.command),
        schema.MANIFEST_CONFIG: expanded.config,
        schema.MANIFEST_CELLS: [cell.key for cell in expanded.cells],
        schema.MANIFEST_DIGESTS: [stored[cell].digest for cell in expanded.cells],
        schema.MANIFEST_PROBLEMS: [unit.key for unit in expanded.problems],
        schema.MANIFEST_PROBLEM_DIGESTS: [stored[unit].digest for unit in expanded.problems],
        schema.MANIFEST_REUSED: reused[0],
        schema.MANIFEST_REUSED_PROBLEMS: reused[1],
        schema.MANIFEST_VERSIONS: provenance.versions(),
        schema.MANIFEST_GIT_COMMIT: provenance.git_commit(),
        schema.MANIFEST_HOST: provenance.host(),
        schema.MANIFEST_EXECUTOR: plan.executor,
        schema.MANIFEST_JOBS: workers[0],
        schema.MANIFEST_CELL_TIMEOUT: workers[1],
        schema.MANIFEST_STARTED: now(),
    }


def eta_seconds(elapsed_at_last: float, done: int, total: int, elapsed: float) -> float | None:
    """Seconds left: the finish time projected at the last finished cell at the run's mean rate so far,
    elapsed_at_last * total / done, minus the time elapsed. It counts down between cells and moves only
    by the change of a cumulative mean when a cell finishes, so it does not jump."""
    if done == 0:
        return None
    return max(elapsed_at_last * total / done - elapsed, 0.0)


def _report_imports(plan: Plan, started: bool) -> Callable[[], None] | None:
    """What this process imports while its workers start, when the run ends with a report
    (``report.ahead``). Not where the plan's ``preparing`` step ``started`` them (``check``, while it
    verifies its reference): by the cells they are mostly ready, and the imports would hold up their
    first cells."""
    if plan.report is None or started:
        return None
    from ppl_suite.report import ahead

    return ahead.load


def execute(
    executor: executors.Executor,
    units: Sequence[Unit],
    store: ResultsStore,
    jobs: int,
    on_event: OnEvent,
    meanwhile: Callable[[], None] | None = None,
) -> None:
    """Run ``units`` on ``executor``, writing each record to ``store`` as it comes. With none to run,
    workers started ahead (``Plan.preparing``) are stopped now, not after the studies and the report.
    ``meanwhile``: this process's own work, done while the executor's workers start (started here,
    ahead of its ``run``, where it can: ``executors.StartsAhead``; else not done)."""
    if not units:
        if isinstance(executor, executors.StartsAhead):
            executor.stop_ahead()
        return
    on_event(ExecutionStarted(len(units), jobs))
    start = time.monotonic()
    done = 0

    def on_record(unit: Unit, record: Record) -> None:
        nonlocal done
        store.write(unit, record)
        done += 1
        elapsed = time.monotonic() - start
        eta = eta_seconds(elapsed, done, len(units), elapsed)
        on_event(UnitFinished(unit, record, done, len(units), elapsed, eta))

    ahead = meanwhile is not None and isinstance(executor, executors.StartsAhead)
    try:
        if ahead:
            executor.start_ahead(min(jobs, len(units)))
            meanwhile()
        executor.run(units, on_record)
    finally:
        if ahead:  # workers started here that ``run`` never took (a stop or an error before it did)
            executor.stop_ahead()
    on_event(ExecutionFinished(done, len(units)))


def _studies(
    chosen: Mapping[str, Any], store: ResultsStore, on_event: OnEvent
) -> dict[str, Mapping[str, pd.DataFrame]]:
    """The ``chosen`` studies (their settings by name; ``ppl_suite.studies``), in the registry's order,
    into the run's folder after its cells; their tables by name."""
    return {name: _study(name, chosen[name], store, on_event) for name in studies.names() if name in chosen}


def _study(name: str, settings: Any, store: ResultsStore, on_event: OnEvent) -> Mapping[str, pd.DataFrame]:
    """One study's step: its ``run`` (progress lines as events); its tables."""
    from ppl_suite.numerics import setup

    study = studies.get(name)
    setup(one_thread=False)  # float64 in JAX and torch (Pyro trains here, in the runner's own process)
    on_event(StudyStarted(name))
    tables = study.run(settings, store.path, lambda text: on_event(StudyProgress(name, text)))
    on_event(StudyFinished(name, tables, study.failed(tables)))
    return tables


def _study_failed(tables: Mapping[str, Mapping[str, pd.DataFrame]]) -> bool:
    """Whether some part of a study failed."""
    return any(studies.get(name).failed(found) for name, found in tables.items())


def _run_studies(plan: Plan, store: ResultsStore, on_event: OnEvent) -> Outcome:
    """A plan of studies alone (``Plan.studies``): under the folder's lock, clean up, with ``fresh``
    remove their earlier work, run each recorded in the manifest, write the report. SIGINT or SIGTERM
    stops it as it stops cells: the parts finished are kept, the manifest's entry says stopped, the
    outcome is STOPPED (no report)."""
    from ppl_suite.store import FolderBusy

    chosen = dict(plan.studies or {})
    unknown = [f"unknown study {name!r}; valid: {', '.join(studies.names())}" for name in chosen
               if name not in studies.names()]  # fmt: skip
    if unknown or (problem := store.problem(plan.exports)) is not None:
        return Outcome(BAD_INPUT, problems=unknown or [problem])
    expanded = matrix.Matrix([], [], {}, [], chosen)
    try:
        with store.locked():
            if removed := store.clean_temporary():
                on_event(TemporaryRemoved(removed, store.path))
            if plan.fresh and (removed := store.discard(only=list(chosen))):
                on_event(StoredRemoved(removed, store.path, tuple(chosen)))
            tables: dict[str, Mapping[str, pd.DataFrame]] = {}
            with StopSignals() as stop:
                try:
                    for name, settings in chosen.items():
                        tables[name] = _recorded(plan, store, name, settings, on_event, stop)
                except KeyboardInterrupt:
                    on_event(Stopped(stop.name(), 0, 0, store.path, in_study=True))
                    signum = stop.exit_code() - 128
                    return Outcome(STOPPED, matrix=expanded, stopped_by=signum, study_tables=tables)
    except FolderBusy as error:
        return Outcome(BAD_INPUT, problems=[str(error)], matrix=expanded)
    files = _report(plan, store, on_event)
    status = FAILED if _study_failed(tables) else OK
    outcome = Outcome(
        status, matrix=expanded, study_failed=status == FAILED, report_files=files, study_tables=tables
    )
    return _over(outcome, on_event)


def _recorded(
    plan: Plan, store: ResultsStore, name: str, settings: Any, on_event: OnEvent, stop: StopSignals
) -> Mapping[str, pd.DataFrame]:
    """Study ``name`` run into ``store``, recorded in its manifest under the study's key: a new folder
    gets a manifest of its own; a results folder of an earlier run keeps its manifest, with the study's
    entry added. Stopped by a signal (``stop``), the entry (and a new folder's manifest) says when and
    by which, and the KeyboardInterrupt goes on."""
    from ppl_suite.store import now

    existing = store.manifest() if store.is_results_folder() else {}
    entry = {
        schema.MANIFEST_COMMAND: list(plan.command),
        schema.MANIFEST_CONFIG: {name: dataclasses.asdict(settings)},
        schema.MANIFEST_STARTED: now(),
    }
    base = existing or {
        **entry,
        schema.MANIFEST_VERSIONS: provenance.versions(),
        schema.MANIFEST_GIT_COMMIT: provenance.git_commit(),
    }
    key = studies.get(name).manifest_key
    store.write_manifest(base | {key: entry})
    try:
        tables = _study(name, settings, store, on_event)
    except KeyboardInterrupt:
        stop.ignore()  # a second Ctrl-C must not break the clean-up
        stopped = {schema.MANIFEST_STOPPED: now(), schema.MANIFEST_STOPPED_BY: stop.name()}
        store.write_manifest(base | {key: entry | stopped} | ({} if existing else stopped))
        raise
    finished = {} if existing else {schema.MANIFEST_FINISHED: now()}
    store.write_manifest(base | {key: entry | {schema.MANIFEST_FINISHED: now()}} | finished)
    return tables


def _report(plan: Plan, store: ResultsStore, on_event: OnEvent) -> dict[str, Path]:
    """The report's files (none when the plan asks for none)."""
    if plan.report is None:
        return {}
    from ppl_suite.report.render import write_report

    on_event(ReportStarted(plan.report))
    files = write_report(store.path, plan.report)
    on_event(ReportWritten(files))
    return files


def _finish(
    plan: Plan,
    store: ResultsStore,
    expanded: matrix.Matrix,
    tables: dict[str, Mapping[str, pd.DataFrame]],
    on_event: OnEvent,
) -> Outcome:
    """Write the folder's tables and the report; the outcome from what the folder holds."""
    from ppl_suite import checks
    from ppl_suite.report.rows import units
    from ppl_suite.report.run_tables import failures_table
    from ppl_suite.store import ESTIMATES, ROWS

    on_event(Finalizing((ROWS, ESTIMATES)))
    rows = store.finalize()
    problem_rows = store.problems()
    on_event(Finalized(rows, problem_rows, (store.path / ROWS, store.path / ESTIMATES)))
    if plan.finishing is not None:
        plan.finishing(store)
    files = _report(plan, store, on_event)
    study_failed = _study_failed(tables)
    failures = failures_table(units(rows, problem_rows))
    failed_checks = checks.failed_checks(rows)
    unfinished = not failures.empty or len(rows) < len(expanded.cells)
    status = FAILED if unfinished or study_failed else CHECKS_FAILED if failed_checks else OK
    outcome = Outcome(
        status, matrix=expanded, rows=rows, problem_rows=problem_rows, failed_checks=failed_checks,
        failures=failures, study_failed=study_failed, report_files=files, study_tables=tables,
    )  # fmt: skip
    return _over(outcome, on_event)
