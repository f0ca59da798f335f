"""ppl-suite: run the comparison matrix, list what can be run, write reports (exit codes: EXIT_CODES)."""

from __future__ import annotations

import argparse
import importlib
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ppl_suite import __version__, backends, executors, guides, matrix, registry, schema
from ppl_suite.cell import Cell, Record, Unit
from ppl_suite.checking import command as check_command
from ppl_suite.compilation_cache import VARIABLE as CACHE_VARIABLE
from ppl_suite.compilation_cache import cache_dir
from ppl_suite.errors import InputProblem
from ppl_suite.stop_signals import StopSignals
from ppl_suite.vae import command as vae_command

if TYPE_CHECKING:
    import pandas as pd

    from ppl_suite.store import ResultsStore

EXIT_CODES = """\
exit codes:
  0    every cell ran and no correctness check failed
  1    some cell failed, diverged or timed out (the others ran and were written)
  2    bad input: nothing ran (every problem is listed), or the results folder is in use
  3    every cell ran but a correctness check failed (the last lines name each)
  4    internal error (one line naming the traceback's file: RESULTS/logs/, or for report
       the report folder)
  130  interrupted by SIGINT (Ctrl-C), 143 by SIGTERM: finished cells are kept"""

OTHER_VERSIONED = ("ppl-suite", "pandas", "dask")  # in the manifest beside the numerical packages


def versions() -> dict[str, str]:
    """Python's and the packages' versions, for the manifest."""
    from ppl_suite.store import package_versions

    found = {"python": platform.python_version(), **package_versions()}
    for package in OTHER_VERSIONED:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "absent"
    return found


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The profile or config file, with command-line flags taking precedence."""
    config = matrix.load(args.profile, args.config)
    for key in ("models", "backends", "guides", "seeds"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    if args.steps is not None:
        config["svi"] = {**config.get("svi", {}), "steps": args.steps}
    if args.estimators is not None:  # the profile's settings where it has them, else the defaults
        configured = config.get("estimators", {})
        config["estimators"] = {name: configured.get(name, {}) for name in args.estimators}
    if args.cell_timeout is not None:
        config["cell_timeout"] = args.cell_timeout
    return config


def plugin_problems(modules: Sequence[str]) -> list[str]:
    """Import the user's modules (which register models) in this process; one problem per module that
    cannot be imported, whatever it raised."""
    problems = []
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as error:
            problems.append(f"cannot import plugin module {module!r}: {type(error).__name__}: {error}")
    return problems


def cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def report_dir(args: argparse.Namespace) -> Path:
    return Path(args.report) if args.report else Path("reports") / Path(args.out).resolve().name


SCHEDULER_TIMEOUT = 5.0  # seconds to open a connection to a Dask scheduler during validation


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


def run_problems(args: argparse.Namespace) -> list[str]:
    """Every problem of the command line that the matrix does not check: flags, folders, plugins."""
    from ppl_suite.store import ResultsStore, unwritable

    problems = plugin_problems(args.plugins)
    if args.jobs is not None and args.jobs < 1:
        problems.append(f"--jobs must be >= 1, got {args.jobs}")
    if args.scheduler is not None and args.executor != "dask":
        problems.append(f"--scheduler needs --executor dask (the {args.executor} executor has no scheduler)")
    elif args.scheduler is not None and (reason := unreachable(args.scheduler)) is not None:
        problems.append(f"--scheduler {args.scheduler}: {reason}")
    if args.fresh and args.dry_run:
        problems.append("--fresh removes stored cells, --dry-run runs nothing: choose one")
    out = ResultsStore(args.out).problem()
    if out is not None:
        problems.append(f"--out: {out}")
    if not args.no_report and (reason := unwritable(report_dir(args))) is not None:
        problems.append(f"--report: {reason}")
    cache = cache_dir()
    if cache is not None and (reason := unwritable(cache)) is not None:
        problems.append(f"compilation cache ({CACHE_VARIABLE}={cache}): {reason}; set {CACHE_VARIABLE}=off")
    return problems


def _jobs(requested: int | None) -> int:
    """--jobs (default: the cores this process may run on), capped at that number with a warning
    (more workers only share the same cores)."""
    available = cores()
    if requested is None:
        return available
    if requested > available:
        print(
            f"warning: --jobs {requested} is more than the {available} cores; using {available}",
            file=sys.stderr,
        )
        return available
    return requested


def command_run(args: argparse.Namespace) -> int:
    problems = run_problems(args)
    plan = None
    try:
        config = config_from_args(args)
        plan = matrix.expand(config)
    except matrix.ConfigError as error:
        problems += error.problems
    if problems or plan is None:
        raise matrix.ConfigError(problems)
    jobs = _jobs(args.jobs)
    for reason in plan.skipped:
        print(f"skip {reason}")
    if args.dry_run:
        print("\n".join(unit.key for unit in plan.units))
        problems = f" after {_count(len(plan.problems), 'problem unit')}" if plan.problems else ""
        vae = " and the VAE study" if plan.vae is not None else ""
        vae += " and the VQ-VAE study" if plan.vqvae is not None else ""
        print(f"{len(plan.cells)} cells would run{problems}{vae}")
        return 0

    from ppl_suite.store import FolderBusy, ResultsStore

    store = ResultsStore(args.out)
    timeout = plan.config.get("cell_timeout")
    try:
        with store.locked():
            executor = executors.get(
                args.executor, jobs=jobs, scheduler=args.scheduler, plugins=args.plugins, cell_timeout=timeout
            )
            return _run_locked(args, store, plan, executor, jobs, timeout)
    except FolderBusy as error:
        raise matrix.ConfigError([str(error)]) from None


def _run_locked(
    args: argparse.Namespace,
    store: ResultsStore,
    plan: matrix.Matrix,
    executor: executors.Executor,
    jobs: int,
    timeout: float | None,
) -> int:
    """The run proper, under the folder's lock: clean up, choose the cells to run, run, finish."""
    from ppl_suite.store import now

    if removed := store.clean_temporary():
        print(f"removed {removed} temporary files of interrupted writes in {store.path}")
    if args.fresh and (removed := store.discard()):
        print(f"--fresh: removed {removed} stored files of earlier runs from {store.path}")
    stored = {unit: store.stored(unit) for unit in plan.units}
    damaged = [state.damage for state in stored.values() if state.damage]
    if damaged:
        print(f"warning: {len(damaged)} damaged cell files, rerunning their cells: {'; '.join(damaged)}")
    todo = [unit for unit in plan.units if not stored[unit].reusable]
    reused = len(plan.cells) - sum(isinstance(unit, Cell) for unit in todo)
    reused_problems = len(plan.problems) - sum(not isinstance(unit, Cell) for unit in todo)
    if reused or reused_problems:
        unfinished = sum(stored[unit].status not in (None, schema.OK) for unit in todo)
        again = f" ({unfinished} of them failed, diverged or timed out before)" if unfinished else ""
        problems = f" and {_count(reused_problems, 'problem unit')}" if reused_problems else ""
        print(f"reusing {reused} finished cells{problems} stored in {store.path}; running {len(todo)}{again}")
    manifest = {
        schema.MANIFEST_COMMAND: sys.argv,
        schema.MANIFEST_CONFIG: plan.config,
        schema.MANIFEST_CELLS: [cell.key for cell in plan.cells],
        schema.MANIFEST_DIGESTS: [stored[cell].digest for cell in plan.cells],
        schema.MANIFEST_PROBLEMS: [unit.key for unit in plan.problems],
        schema.MANIFEST_PROBLEM_DIGESTS: [stored[unit].digest for unit in plan.problems],
        schema.MANIFEST_REUSED: reused,
        schema.MANIFEST_REUSED_PROBLEMS: reused_problems,
        schema.MANIFEST_VERSIONS: versions(),
        schema.MANIFEST_GIT_COMMIT: git_commit(),
        schema.MANIFEST_HOST: platform.node(),
        schema.MANIFEST_EXECUTOR: args.executor,
        schema.MANIFEST_JOBS: jobs,
        schema.MANIFEST_CELL_TIMEOUT: timeout,
        schema.MANIFEST_STARTED: now(),
    }
    store.write_manifest(manifest)
    in_vae = False  # the stop came during the VAE study (after the cells)
    with StopSignals() as stop:
        try:
            _run_with_progress(executor, todo, store, jobs)
            in_vae = plan.vae is not None or plan.vqvae is not None
            vae_failed = plan.vae is not None and vae_command.run_after_cells(plan.vae, store)
            if plan.vqvae is not None:
                from ppl_suite.vqvae.command import run_after_cells

                vae_failed = run_after_cells(plan.vqvae, store) or vae_failed
        except KeyboardInterrupt:
            stop.ignore()  # a second Ctrl-C must not break the clean-up
            rows = store.finalize()
            name = signal.Signals(stop.received or signal.SIGINT).name
            store.write_manifest(
                manifest | {schema.MANIFEST_STOPPED: now(), schema.MANIFEST_STOPPED_BY: name}
            )
            vae = "; the VAE study's finished backends and runs are kept too" if in_vae else ""
            print(
                f"\n{name}: stopped; {len(rows)} of {len(plan.cells)} cells are kept in {store.path}{vae}; "
                "rerun the same command to run the others",
                file=sys.stderr,
            )
            return 128 + (stop.received or signal.SIGINT)
    store.write_manifest(manifest | {schema.MANIFEST_FINISHED: now()})
    code = _finish(args, store, len(plan.cells))
    return 1 if vae_failed and code in (0, 3) else code


def eta_seconds(elapsed_at_last: float, done: int, total: int, elapsed: float) -> float | None:
    """Seconds left: the finish time projected at the last finished cell at the run's mean rate so far,
    elapsed_at_last * total / done, minus the time elapsed. It counts down between cells and moves only
    by the change of a cumulative mean when a cell finishes, so it does not jump."""
    if done == 0:
        return None
    return max(elapsed_at_last * total / done - elapsed, 0.0)


def _run_with_progress(
    executor: executors.Executor, units: Sequence[Unit], store: ResultsStore, jobs: int
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TimeElapsedColumn
    from rich.text import Text

    class SteadyEta(ProgressColumn):
        def render(self, task) -> Text:
            if task.finished:
                return Text("")
            left = eta_seconds(
                task.fields["at_last"], int(task.completed), int(task.total), task.elapsed or 0
            )
            return Text("eta --:--" if left is None else f"eta {int(left) // 60:d}:{int(left) % 60:02d}")

    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        SteadyEta(),
    )
    if not units:
        return
    with Progress(*columns, transient=False) as progress:
        first = (
            "compiling and running" if jobs == 1 else f"starting {min(jobs, len(units))} workers, compiling"
        )
        task = progress.add_task(first, total=len(units), at_last=0.0)

        def on_record(unit: Unit, record: Record) -> None:
            store.write(unit, record)
            row = record.row
            line = (
                f"{row[schema.STATUS]:8s} {unit.key}  {_detail(record)}  ({row[schema.WALL_SECONDS]:.1f} s)"
            )
            progress.console.print(line)
            elapsed = progress.tasks[task].elapsed or 0.0
            progress.update(task, advance=1, description="running", at_last=elapsed)

        executor.run(units, on_record)


def _detail(record: Record) -> str:
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


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def _width() -> int:
    return shutil.get_terminal_size().columns


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


def _finish(args: argparse.Namespace, store: ResultsStore, planned: int) -> int:
    from ppl_suite import checks
    from ppl_suite.report.tables import failures_table, identity_table, units
    from ppl_suite.store import ESTIMATES, ROWS

    print(f"writing {ROWS} and {ESTIMATES}")
    rows = store.finalize()
    problems = store.problems()
    table = identity_table(rows)
    if not table.empty:
        print()
        print(table.to_string(index=False, line_width=_width()))
    print(f"\nrows: {store.path / ROWS}\nestimates: {store.path / ESTIMATES}")
    if not args.no_report:
        from ppl_suite.report.render import write_report

        print("writing the report")
        for kind, path in write_report(store.path, report_dir(args)).items():
            print(f"report ({kind}): {path}")
    failures = failures_table(units(rows, problems))
    failed = checks.failed_checks(rows)
    print("\n" + summary(rows, planned, problems))
    if failed:
        print(f"{len(failed)} correctness checks failed:\n" + "\n".join(failed))
    if not failures.empty or len(rows) < planned:
        print(
            f"\n{len(failures)} cells did not finish:\n"
            + failures.to_string(index=False, line_width=_width())
        )
        return 1
    return 3 if failed else 0


def report_out(args: argparse.Namespace) -> Path:
    """The folder ``ppl-suite report`` writes: --out, else reports/<results folder name>."""
    return Path(args.out) if args.out else Path("reports") / Path(args.results).resolve().name


def report_problems(args: argparse.Namespace) -> list[str]:
    """Every problem of a ``report`` command line: formats, the results folder, the report folder."""
    from ppl_suite.report.render import parse_formats
    from ppl_suite.store import ResultsStore, unwritable

    problems = []
    try:
        parse_formats(args.format)
    except ValueError as error:
        problems.append(str(error))
    results = Path(args.results)
    if not ResultsStore(results).is_results_folder() and not (results / "cells").is_dir():
        problems.append(f"not a results folder (no manifest.json or cells/): {results}")
    if (reason := unwritable(report_out(args))) is not None:
        problems.append(f"--out: {reason}")
    return problems


def command_report(args: argparse.Namespace) -> int:
    """Write the report (Markdown with PNGs, and/or one self-contained HTML page) of a results folder."""
    from ppl_suite.report.render import write_report

    problems = report_problems(args)
    if problems:
        raise matrix.ConfigError(problems)
    written = write_report(Path(args.results), report_out(args), args.format)
    for kind, path in written.items():
        print(f"report ({kind}): {path}")
    return 0


def _aligned(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows of text as lines, every column but the last padded to its longest entry."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)] if rows else []
    return [
        "  " + " ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]])
        for row in rows
    ]


def command_list(args: argparse.Namespace) -> int:
    problems = plugin_problems(args.plugins)
    if problems:
        raise matrix.ConfigError(problems)
    print("models:")
    specs = [registry.get(name) for name in registry.names()]
    rows = [(s.name, "exact oracle" if s.oracle else "no oracle", s.description) for s in specs]
    for line, spec in zip(_aligned(rows), specs, strict=True):
        print(line)
        print(f"      guides: {', '.join(spec.guides)}")
    print("guide families:")
    print("\n".join(_aligned([(name, guides.get(name).description) for name in guides.names()])))
    from ppl_suite import estimators

    print("estimators:")
    chosen = [estimators.get(name) for name in estimators.names()]
    print("\n".join(_aligned([(e.name, e.kind, estimators.QUANTITIES[e.quantity]) for e in chosen])))
    print("backends:\n  " + ", ".join(backends.names()))
    print("executors:\n  " + ", ".join(executors.names()))
    print("profiles:\n  " + ", ".join(matrix.profiles()))
    return 0


def parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    top = argparse.ArgumentParser(
        prog="ppl-suite",
        description="Compare what SVI optimizes across Pyro, NumPyro and hand-rolled estimators.",
        epilog=EXIT_CODES,
        formatter_class=formatter,
    )
    top.add_argument("--version", action="version", version=f"ppl-suite {__version__}")
    commands = top.add_subparsers(dest="command")
    run = commands.add_parser(
        "run", help="fit and evaluate the comparison matrix", epilog=EXIT_CODES, formatter_class=formatter
    )
    run.add_argument("--profile", help=f"shipped profile: {', '.join(matrix.profiles())} (default: quick)")
    run.add_argument("--config", help="a TOML matrix config instead of a profile")
    run.add_argument("--models", nargs="+", help="model names (overrides the profile)")
    run.add_argument("--backends", nargs="+", help="backend names")
    run.add_argument("--guides", nargs="+", help="guide families (default: each model's own)")
    run.add_argument(
        "--seeds", nargs="+", type=int, help="seeds in [0, 2**32): each is a data set and an SVI seed"
    )
    run.add_argument("--steps", type=int, help="SVI steps")
    run.add_argument("--estimators", nargs="*", help="estimators run on each fitted guide (see `list`)")
    run.add_argument(
        "--out",
        default="results/default",
        help="results folder (default: results/default); its finished cells of the same definition, "
        "code and versions are reused, the others run",
    )
    run.add_argument(
        "--fresh",
        action="store_true",
        help="first remove what earlier runs stored in --out: cells, tables, the VAE study's kept work "
        "(only the suite's files)",
    )
    run.add_argument("--jobs", type=int, help="worker processes (default and maximum: the number of cores)")
    run.add_argument("--executor", default="local", choices=executors.names(), help="default: local")
    run.add_argument("--scheduler", help="Dask scheduler address tcp://HOST:PORT (default: a LocalCluster)")
    run.add_argument(
        "--cell-timeout",
        type=float,
        help=f"seconds a cell may run before it is stopped and recorded as timed out (default: the "
        f"config's cell_timeout, else {matrix.DEFAULT_CELL_TIMEOUT:g})",
    )
    run.add_argument("--dry-run", action="store_true", help="print the cells that would run, run nothing")
    run.add_argument("--no-report", action="store_true", help="do not write the report")
    run.add_argument("--report", help="report folder (default: reports/<results folder name>)")
    listing = commands.add_parser("list", help="list models, guide families, backends, profiles")
    for sub in (run, listing):
        sub.add_argument("--plugins", nargs="+", default=[], help="modules to import first (user models)")
    run.set_defaults(handler=command_run)
    listing.set_defaults(handler=command_list)
    calibration = commands.add_parser(
        "calibrate",
        help="run estimators many times on fixed guides and check their SEs against exact answers",
        description="Is (estimate - exact) / SE a standard normal draw? Each estimator runs R times on "
        "fixed guides (the exact posterior, a slightly-off and a badly-off guide); writes "
        "DIR/calibration.csv and DIR/calibration.png. Exit 0, or 3 when an estimator that did not "
        "label itself unreliable fails calibration.",
    )
    calibration.add_argument(
        "--models", nargs="+", help="models (default: every model calibration applies to)"
    )
    calibration.add_argument(
        "--estimators", nargs="+", help="estimators (default: all, and both library ELBOs)"
    )
    calibration.add_argument("--replicates", type=int, help="R, runs per estimator and guide (default 200)")
    calibration.add_argument(
        "--level", type=float, help="probability of each acceptance interval (default 0.99)"
    )
    calibration.add_argument(
        "--out", default="results/calibration", help="folder for calibration.csv and .png"
    )
    calibration.set_defaults(handler=command_calibrate)
    reference = commands.add_parser(
        "reference",
        help="build, or show when cached, a model's NUTS reference posterior and AIS evidence",
        description="NumPyro NUTS (4 chains, vectorized) until rank-normalized R-hat < 1.01, bulk and tail "
        "ESS >= 1000 for every latent coordinate and no divergences, and log p(x) by AIS; cached on "
        "disk ($PPL_SUITE_REFERENCE_CACHE). Exit 0, 2 on bad input, 3 when a gate failed (nothing is "
        "stored), 4 on an internal error.",
        formatter_class=formatter,
    )
    reference.add_argument("model", help="model name (see `list`)")
    reference.add_argument("--data-seed", type=int, default=0, help="data set (default 0)")
    reference.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="parameter overrides, values in TOML as in a config's [params.<model>] (e.g. n=50)",
    )
    reference.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    reference.add_argument("--rebuild", action="store_true", help="build it even when one is cached")
    reference.add_argument("--plugins", nargs="+", default=[], help="modules to import first (user models)")
    reference.set_defaults(handler=command_reference)
    report = commands.add_parser("report", help="write the report of a results folder (Markdown, HTML)")
    report.add_argument("results", help="results folder written by `ppl-suite run`")
    report.add_argument("--out", help="report folder (default: reports/<results folder name>)")
    report.add_argument("--format", default="md,html", help="comma-separated: md, html (default: md,html)")
    report.set_defaults(handler=command_report)
    check_command.add_parser(commands, epilog=EXIT_CODES)
    vae_command.add_parser(commands, epilog=EXIT_CODES)
    return top


def command_calibrate(args: argparse.Namespace) -> int:
    from ppl_suite import calibrate  # torch and JAX: loaded only when calibrating

    return calibrate.command(args)


def command_reference(args: argparse.Namespace) -> int:
    from ppl_suite.references import command as reference_command  # JAX, NumPyro: loaded here only

    return reference_command.command(args)


def _error_log(args: argparse.Namespace, text: str) -> Path:
    """Write an internal error's traceback where the command writes: the logs of the results folder
    it writes (run, calibrate, check, vae), the report folder of ``report`` (which only reads its
    results folder), else the temp folder. Returns the file."""
    from ppl_suite.store import ResultsStore

    name = f"ppl-suite-error-{datetime.now(UTC).strftime('%Y-%m-%dT%H-%M-%S')}-"
    folder = getattr(args, "out", None) if args.command in ("run", "calibrate", "check", "vae") else None
    store = ResultsStore(folder) if folder else None
    candidates = []
    if store is not None and store.is_results_folder():
        candidates.append(store.log_error)
    elif args.command == "report" and report_out(args).is_dir():
        candidates.append(lambda text: _write_log(report_out(args), name, text))
    for write in candidates:
        try:
            return write(text)
        except OSError:
            pass
    return _write_log(Path(tempfile.gettempdir()), name, text)


def _write_log(folder: Path, prefix: str, text: str) -> Path:
    with tempfile.NamedTemporaryFile("w", dir=folder, prefix=prefix, suffix=".log", delete=False) as log:
        log.write(text)
    return Path(log.name)


def main(argv: Sequence[str] | None = None) -> int:
    top = parser()
    args = top.parse_args(argv)
    if args.command is None:
        top.print_help()
        return 0
    handler: Callable[[argparse.Namespace], int] = args.handler
    with StopSignals() as stop:  # every command stops the same way on SIGINT and SIGTERM
        try:
            return handler(args)
        except (matrix.ConfigError, InputProblem) as error:  # bad input, a damaged or unsafe folder
            for problem in error.problems:
                print(f"ppl-suite: error: {problem}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"ppl-suite: {stop.name()}: stopped; rerun the same command to go on", file=sys.stderr)
            return stop.exit_code()
        except Exception as error:
            log = _error_log(args, traceback.format_exc())
            print(
                f"ppl-suite: internal error: {type(error).__name__}: {error} (traceback: {log})",
                file=sys.stderr,
            )
            return 4


if __name__ == "__main__":
    sys.exit(main())
