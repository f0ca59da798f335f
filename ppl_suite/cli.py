"""ppl-suite: run the comparison matrix, list what can be run, write reports (exit codes: EXIT_CODES)."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import select
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from ppl_suite import __version__, backends, console, executors, guides, matrix, registry, runner
from ppl_suite.checking import command as check_command
from ppl_suite.errors import InputProblem
from ppl_suite.stop_signals import StopSignals
from ppl_suite.vae import command as vae_command

EXIT_CODES = """\
exit codes:
  0    every cell ran and no correctness check failed
  1    some cell failed, diverged or timed out (the others ran and were written)
  2    bad input: nothing ran (every problem is listed), or the results folder is in use
  3    every cell ran but a correctness check failed (the last lines name each)
  4    internal error (one line naming the traceback's file: RESULTS/logs/, or for report
       the report folder)
  130  interrupted by SIGINT (Ctrl-C), 143 by SIGTERM: finished cells are kept
  141  its standard output was closed (piped into a command that ended, such as head):
       stopped quietly, finished cells are kept"""
OUTPUT_CLOSED = 141  # 128 + SIGPIPE: what a shell reports of a command ended by its closed output


def plan_from_args(args: argparse.Namespace) -> runner.Plan:
    """The runner's plan of ``ppl-suite run``'s arguments."""
    return runner.Plan(
        profile=args.profile, config=args.config, models=args.models, backends=args.backends,
        guides=args.guides, seeds=args.seeds, steps=args.steps, estimators=args.estimators,
        cell_timeout=args.cell_timeout, executor=args.executor, jobs=args.jobs, scheduler=args.scheduler,
        plugins=args.plugins, fresh=args.fresh, dry_run=args.dry_run,
        report=None if args.no_report else report_dir(args), command=sys.argv,
    )  # fmt: skip


def report_dir(args: argparse.Namespace) -> Path:
    return Path(args.report) if args.report else Path("reports") / Path(args.out).resolve().name


def command_run(args: argparse.Namespace) -> int:
    """Run the matrix (``runner.run``), printing its events; bad input is a ``matrix.ConfigError``."""
    printer = console.Printer()
    try:
        outcome = runner.run(plan_from_args(args), args.out, on_event=printer)
    finally:
        printer.close()
    if outcome.status == runner.BAD_INPUT:
        raise matrix.ConfigError(outcome.problems)
    return outcome.exit_code


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


UNCHANGED = "report unchanged (same results, code and formats): not rewritten"


def command_report(args: argparse.Namespace) -> int:
    """Write the report (Markdown with PNGs, and/or one self-contained HTML page) of a results folder."""
    from ppl_suite.report.render import write_report

    problems = report_problems(args)
    if problems:
        raise matrix.ConfigError(problems)
    written = write_report(Path(args.results), report_out(args), args.format, force=args.force)
    if not written.rewritten:
        print(UNCHANGED)
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
    problems = registry.plugin_problems(args.plugins)
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
    chosen = [estimators.info(name) for name in estimators.names()]  # imports no estimator
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
        "fixed guides (the exact posterior, a slightly-off and a badly-off guide); writes the results "
        "folder DIR (tables under DIR/calibration/) and, as before, DIR/calibration.csv, "
        "DIR/calibration_by_khat.csv, DIR/calibration_replicates.csv and DIR/calibration.png. Exit 0, "
        "2 on bad input, or 3 when an estimator that did not label itself unreliable fails calibration.",
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
        "--out", default="results/calibration", help="results folder (also holds calibration.csv and .png)"
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
    report.add_argument(
        "--force", action="store_true", help="rewrite the report even when its results, code and formats "
        "are those it was written from (by default such a report is left as it is)"
    )  # fmt: skip
    report.set_defaults(handler=command_report)
    check_command.add_parser(commands, epilog=EXIT_CODES)
    vae_command.add_parser(commands, epilog=EXIT_CODES)
    return top


def command_calibrate(args: argparse.Namespace) -> int:
    from ppl_suite.calibration import command as calibrate_command  # the estimators: loaded here only

    return calibrate_command.command(args)


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
            if isinstance(error, BrokenPipeError) and _standard_output_closed():
                return _quiet_after_closed_output()
            log = _error_log(args, traceback.format_exc())
            print(
                f"ppl-suite: internal error: {type(error).__name__}: {error} (traceback: {log})",
                file=sys.stderr,
            )
            return 4


def _standard_output_closed() -> bool:
    """Whether standard output is a pipe whose reader has gone (``ppl-suite list | head -1``): the
    descriptor polls as an error. A worker's or another file's broken pipe leaves it writable, and is
    an internal error like any other."""
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a capture with no descriptor, or closed
        return False
    if not hasattr(select, "poll"):  # Windows: no poll on pipes
        return False
    poller = select.poll()
    poller.register(descriptor, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _quiet_after_closed_output() -> int:
    """OUTPUT_CLOSED, with standard output sent to the null device: what is still buffered for the
    closed pipe is dropped at exit instead of raising again (Python's advice for SIGPIPE)."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, sys.stdout.fileno())
    os.close(null)
    return OUTPUT_CLOSED


def run_command() -> None:
    """The ``ppl-suite`` command: ``main``, then the process ends with its exit code once Python's exit
    handlers have run (workers, logs, temporary folders) and the standard streams are flushed, without
    the interpreter's teardown, which takes 1-2 s once torch and JAX are loaded (clearing their
    modules' objects; every file the command writes is closed by then). The process ends as usual
    where something may still need the teardown's time: a thread other than daemons at work (the
    interpreter waits for it), a trace or profile function or a monitoring tool (coverage, profilers
    and debuggers that save in a ``finally`` of their own), or an exception ``main`` lets out (other
    than argparse's exit with a code, whose output is flushed like any command's)."""
    try:
        code = main()
    except SystemExit as exited:  # argparse's --help, --version and usage errors: flushed below too
        if not isinstance(exited.code, int | None):
            raise
        code = exited.code or 0
    code = _flushed(code)
    if _ending_watched():
        sys.exit(code)
    atexit._run_exitfuncs()  # what the interpreter's exit runs first (and forgets them)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or broken stream has nothing left to flush
            stream.flush()
    os._exit(code)


def _flushed(code: int) -> int:
    """``code`` once standard output is flushed; OUTPUT_CLOSED in place of 0 where the flush finds its
    pipe closed (output buffered until the end, ``ppl-suite run --dry-run | true``, never reached its
    reader: a script must not read success). Another flush error is left to the exit, as before."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        if _standard_output_closed():
            _quiet_after_closed_output()
            return OUTPUT_CLOSED if code == 0 else code
    except (OSError, ValueError):  # a stream that cannot be flushed, or closed: nothing left to say
        return code
    return code


def _ending_watched() -> bool:
    """Whether a non-daemon thread is at work, or a tracer, profiler or monitoring tool is set."""
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if any(t.is_alive() and not t.daemon for t in others):
        return True
    monitoring = getattr(sys, "monitoring", None)  # Python 3.12 and later
    tools = monitoring is not None and any(monitoring.get_tool(tool) for tool in range(6))
    return sys.gettrace() is not None or sys.getprofile() is not None or tools


if __name__ == "__main__":
    run_command()
