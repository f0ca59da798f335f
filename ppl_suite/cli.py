"""ppl-suite command line: ``run`` the comparison, ``list`` what can be run.

Exit codes: 0 all cells ok; 1 some cell failed or diverged; 2 bad input (nothing was run).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from ppl_suite import backends, guides, registry
from ppl_suite.backends import SVIConfig

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
)


class UsageError(Exception):
    """Bad input: reported with what was wrong and what is valid, exit code 2."""


def _choose(kind: str, asked: Sequence[str] | None, valid: Sequence[str]) -> list[str]:
    if not asked:
        return list(valid)
    unknown = [name for name in asked if name not in valid]
    if unknown:
        raise UsageError(f"unknown {kind} {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}")
    return list(dict.fromkeys(asked))


def build_cells(args: argparse.Namespace) -> tuple[list, list[str]]:
    """The cells to run and the skip reasons of combinations that cannot run."""
    from ppl_suite.execute import Cell
    from ppl_suite.problem import Problem

    models = _choose("model", args.models, registry.names())
    backend_names = _choose("backend", args.backends, backends.names())
    guide_names = _choose("guide", args.guides, guides.names()) if args.guides else None
    try:
        svi = SVIConfig(**{k: v for k, v in {"steps": args.steps}.items() if v is not None})
    except ValueError as error:
        raise UsageError(str(error)) from None
    if any(seed < 0 for seed in args.seeds):
        raise UsageError(f"seeds must be >= 0, got {args.seeds}")
    cells, skipped = [], []
    for model in models:
        spec = registry.get(model)
        for guide in guide_names or spec.guides:
            if guide not in spec.guides:
                skipped.append(f"{model}/*/{guide}: model supports {', '.join(spec.guides)}")
                continue
            for backend_name in backend_names:
                reason = backends.get(backend_name).unsupported(Problem.build(model, 0), guide)
                if reason:
                    skipped.append(f"{model}/{backend_name}/{guide}: {reason}")
                    continue
                cells += [Cell(model, backend_name, guide, seed, seed, svi=svi) for seed in args.seeds]
    if not cells:
        raise UsageError("no cell can run with this selection:\n  " + "\n  ".join(skipped))
    return cells, skipped


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in VERSIONED:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "absent"
    return found


def command_run(args: argparse.Namespace) -> int:
    cells, skipped = build_cells(args)
    for reason in skipped:
        print(f"skip {reason}")
    _single_thread()
    from ppl_suite.execute import execute
    from ppl_suite.report.summary import write_summary
    from ppl_suite.report.tables import failures_table, identity_table
    from ppl_suite.store import ResultsStore

    store = ResultsStore(args.out)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    manifest = {"command": sys.argv, "cells": [c.key for c in cells], "versions": versions()}
    manifest |= {"host": platform.node(), "started": started}
    store.write_manifest(manifest)
    for index, cell in enumerate(cells, 1):
        record = execute(cell)
        store.write(cell, record)
        row = record.row
        detail = f"ELBO {row['elbo']:.4f}" if record.ok else row["error"].splitlines()[0]
        print(
            f"[{index}/{len(cells)}] {row['status']:8s} {cell.key}  {detail}  ({row['wall_seconds']:.1f} s)"
        )
    store.write_manifest(manifest | {"finished": datetime.now(UTC).isoformat(timespec="seconds")})
    rows = store.finalize()
    print()
    print(identity_table(rows).to_string(index=False))
    failures = failures_table(rows)
    summary = write_summary(args.out, args.report or Path("reports") / Path(args.out).name / "summary.md")
    print(f"\nrows: {Path(args.out) / 'rows.parquet'}\nsummary: {summary}")
    if not failures.empty:
        print("\nfailed cells:\n" + failures.to_string(index=False))
        return 1
    return 0


def command_list(args: argparse.Namespace) -> int:
    print("models:")
    for name in registry.names():
        spec = registry.get(name)
        oracle = "exact oracle" if spec.oracle else "no oracle"
        print(f"  {name:24s} guides: {', '.join(spec.guides):32s} {oracle}; {spec.description}")
    print("backends:\n  " + ", ".join(backends.names()))
    print("guide families:")
    for name in guides.names():
        print(f"  {name:12s} {guides.get(name).description}")
    return 0


def _single_thread() -> None:
    """One thread per process for torch and XLA: as fast at these sizes, and no oversubscription."""
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    import torch

    torch.set_num_threads(1)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="ppl-suite", description=__doc__.splitlines()[0])
    commands = top.add_subparsers(dest="command")
    run = commands.add_parser("run", help="fit and evaluate the comparison matrix")
    run.add_argument("--models", nargs="+", help="model names (default: all)")
    run.add_argument("--backends", nargs="+", help="backend names (default: all)")
    run.add_argument("--guides", nargs="+", help="guide families (default: each model's own)")
    run.add_argument("--seeds", nargs="+", type=int, default=[0], help="data and SVI seeds (default: 0)")
    run.add_argument("--steps", type=int, help=f"SVI steps (default: {SVIConfig().steps})")
    run.add_argument("--out", default="results/default", help="results folder (default: results/default)")
    run.add_argument("--report", help="summary path (default: reports/<results name>/summary.md)")
    run.set_defaults(handler=command_run)
    listing = commands.add_parser("list", help="list models, backends and guide families")
    listing.set_defaults(handler=command_list)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command is None:
        args = parser().parse_args(["run", *(argv or [])])
    try:
        return args.handler(args)
    except UsageError as error:
        print(f"ppl-suite: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
