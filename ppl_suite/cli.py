"""ppl-suite: run the comparison matrix, list what can be run, write reports.

Exit codes: 0 every cell ok; 1 some cell failed or diverged; 2 bad input (nothing ran);
130 interrupted (finished cells are kept: rerun with --resume).
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from ppl_suite import backends, executors, guides, matrix, registry

VERSIONED = (
    "ppl-suite",
    "torch",
    "pyro-ppl",
    "jax",
    "jaxlib",
    "numpyro",
    "arviz",
    "pandas",
    "numpy",
    "scipy",
    "dask",
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in VERSIONED:
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
    return config


def load_plugins(modules: Sequence[str]) -> None:
    """Import the user's modules (which register models) in this process, and check they exist."""
    from ppl_suite.executors.worker import configure

    try:
        configure(modules)
    except ImportError as error:
        raise matrix.ConfigError([f"cannot import plugin module: {error}"]) from None


def command_run(args: argparse.Namespace) -> int:
    load_plugins(args.plugins)
    if args.jobs is not None and args.jobs < 1:
        raise matrix.ConfigError([f"--jobs must be >= 1, got {args.jobs}"])
    plan = matrix.expand(config_from_args(args))
    for reason in plan.skipped:
        print(f"skip {reason}")
    if args.dry_run:
        print("\n".join(cell.key for cell in plan.cells))
        print(f"{len(plan.cells)} cells would run")
        return 0

    from ppl_suite.store import ResultsStore

    store = ResultsStore(args.out)
    if not args.resume:
        store.clear()
    todo = [cell for cell in plan.cells if not store.has(cell)]
    manifest = {
        "command": sys.argv,
        "config": plan.config,
        "cells": [c.key for c in plan.cells],
        "versions": versions(),
        "git_commit": git_commit(),
        "host": platform.node(),
        "executor": args.executor,
        "jobs": args.jobs,
        "started": _now(),
    }
    store.write_manifest(manifest)
    if len(todo) < len(plan.cells):
        print(f"resume: {len(plan.cells) - len(todo)} cells already done, {len(todo)} to run")
    executor = executors.get(args.executor, jobs=args.jobs, scheduler=args.scheduler, plugins=args.plugins)
    try:
        _run_with_progress(executor, todo, store)
    except KeyboardInterrupt:
        store.finalize()
        print(f"\ninterrupted: finished cells are kept in {args.out}; rerun with --resume", file=sys.stderr)
        return 130
    store.write_manifest(manifest | {"finished": _now()})
    return _finish(args, store)


def _run_with_progress(executor, cells, store) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        "eta",
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("cells", total=len(cells))

        def on_record(cell, record) -> None:
            store.write(cell, record)
            row = record.row
            if record.ok:
                detail = f"ELBO {row['elbo']:.4f} ± {row['elbo_se']:.1e}"
                if row.get("residual_se") == row.get("residual_se"):  # not NaN
                    detail += f", residual {row['residual_se']:+.2f} SE, KL {row['kl']:.2e}"
            else:
                detail = (row.get("error") or "").splitlines()[0] if row.get("error") else ""
            progress.console.print(f"{row['status']:8s} {cell.key}  {detail}  ({row['wall_seconds']:.1f} s)")
            progress.advance(task)

        executor.run(cells, on_record)


def _finish(args: argparse.Namespace, store) -> int:
    from ppl_suite.report.tables import failures_table, identity_table

    rows = store.finalize()
    print()
    print(identity_table(rows).to_string(index=False))
    print(f"\nrows: {store.path / 'rows.parquet'}")
    if not args.no_report:
        from ppl_suite.report.render import write_report

        written = write_report(store.path, args.report or Path("reports") / store.path.resolve().name)
        for kind, path in written.items():
            print(f"report ({kind}): {path}")
    failures = failures_table(rows)
    if not failures.empty:
        print(f"\n{len(failures)} cells did not finish:\n" + failures.to_string(index=False))
        return 1
    return 0


def command_report(args: argparse.Namespace) -> int:
    """Write the report (Markdown with PNGs, and/or one self-contained HTML page) of a results folder."""
    from ppl_suite.report.render import parse_formats, write_report

    results = Path(args.results)
    try:
        formats = parse_formats(args.format)
    except ValueError as error:
        raise matrix.ConfigError([str(error)]) from None
    if not (results / "manifest.json").is_file() and not (results / "cells").is_dir():
        raise matrix.ConfigError([f"not a results folder (no manifest.json or cells/): {results}"])
    written = write_report(results, args.out or Path("reports") / results.resolve().name, formats)
    for kind, path in written.items():
        print(f"report ({kind}): {path}")
    return 0


def command_list(args: argparse.Namespace) -> int:
    load_plugins(args.plugins)
    print("models:")
    for name in registry.names():
        spec = registry.get(name)
        oracle = "exact oracle" if spec.oracle else "no oracle"
        print(f"  {name:24s} guides: {', '.join(spec.guides):28s} {oracle:12s} {spec.description}")
    print("guide families:")
    for name in guides.names():
        print(f"  {name:12s} {guides.get(name).description}")
    from ppl_suite import estimators

    print("estimators:")
    for name in estimators.names():
        estimator = estimators.get(name)
        print(f"  {name:14s} {estimator.kind:12s} {estimators.QUANTITIES[estimator.quantity]}")
    print("backends:\n  " + ", ".join(backends.names()))
    print("executors:\n  " + ", ".join(executors.names()))
    print("profiles:\n  " + ", ".join(matrix.profiles()))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="ppl-suite",
        description="Compare what SVI optimizes across Pyro, NumPyro and hand-rolled estimators.",
    )
    commands = top.add_subparsers(dest="command")
    run = commands.add_parser("run", help="fit and evaluate the comparison matrix (default command)")
    run.add_argument("--profile", help=f"shipped profile: {', '.join(matrix.profiles())} (default: quick)")
    run.add_argument("--config", help="a TOML matrix config instead of a profile")
    run.add_argument("--models", nargs="+", help="model names (overrides the profile)")
    run.add_argument("--backends", nargs="+", help="backend names")
    run.add_argument("--guides", nargs="+", help="guide families (default: each model's own)")
    run.add_argument("--seeds", nargs="+", type=int, help="seeds: each is a data set and an SVI seed")
    run.add_argument("--steps", type=int, help="SVI steps")
    run.add_argument("--estimators", nargs="*", help="estimators run on each fitted guide (see `list`)")
    run.add_argument("--out", default="results/default", help="results folder (default: results/default)")
    run.add_argument("--jobs", type=int, help="worker processes (default: number of cores)")
    run.add_argument("--executor", default="local", choices=executors.names(), help="default: local")
    run.add_argument("--scheduler", help="Dask scheduler address tcp://HOST:PORT (default: a LocalCluster)")
    run.add_argument("--resume", action="store_true", help="keep finished cells of --out, run the rest")
    run.add_argument("--dry-run", action="store_true", help="print the cells that would run, run nothing")
    run.add_argument("--no-report", action="store_true", help="do not write the report")
    run.add_argument("--report", help="report folder (default: reports/<results folder name>)")
    listing = commands.add_parser("list", help="list models, guide families, backends, profiles")
    for sub in (run, listing):
        sub.add_argument("--plugins", nargs="+", default=[], help="modules to import first (user models)")
    run.set_defaults(handler=command_run)
    listing.set_defaults(handler=command_list)
    report = commands.add_parser("report", help="write the report of a results folder (Markdown, HTML)")
    report.add_argument("results", help="results folder written by `ppl-suite run`")
    report.add_argument("--out", help="report folder (default: reports/<results folder name>)")
    report.add_argument("--format", default="md,html", help="comma-separated: md, html (default: md,html)")
    report.set_defaults(handler=command_report)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in {"-h", "--help"}):
        argv = ["run", *argv]
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except matrix.ConfigError as error:
        for problem in error.problems:
            print(f"ppl-suite: error: {problem}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
