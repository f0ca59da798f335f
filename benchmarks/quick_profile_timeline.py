"""Where the quick profile's ``--fresh`` run spends its wall time: its phases, then its cells by backend.

    python -m benchmarks.quick_profile_timeline [--out FOLDER]

Runs the quick profile twice in this process, through the runner (``runner.run``, as ``ppl-suite run
--fresh`` does, report included) into the same folders, and shows the second run: a rerun with
``--fresh``, whose report keeps the figures whose data did not change (the first run fills the
compilation cache and draws every figure: its whole time is printed too). Its phases, from the
runner's events:

- set-up: validation, the folder's clean-up and manifest (start to ``ExecutionStarted``);
- workers starting: to the first cell's start (the earliest ``UnitFinished`` less its cell's wall
  time): the workers' set-up, beside which this process imports the report's libraries
  (``report.ahead``);
- cells: the rest of the execution, to ``ExecutionFinished``;
- tables (and any study), then the report (``ReportStarted`` to ``ReportWritten``).

Then the cells' own seconds by backend, summed over the run's workers (``schema`` columns): the wall
time of a cell, its tracing and compilation, its SVI loop, and the rest (the library's ELBO, the
evaluation, the draws written). The phases add up to the wall time; the cells' seconds divided by
the workers come close to the cells' phase when the workers are kept busy (the quick profile has no
guide-free problem units, whose seconds the rows would not show).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from ppl_suite import runner, schema


def timeline(out: Path) -> tuple[dict[str, float], pd.DataFrame]:
    """(seconds of each phase, the cells' rows) of one ``--fresh`` quick-profile run into ``out``."""
    marks: dict[str, float] = {}
    starts: list[float] = []  # when each unit started: its finish less its wall time
    start = time.perf_counter()

    def on_event(event: runner.Event) -> None:
        now = time.perf_counter() - start
        marks.setdefault(type(event).__name__, now)
        if isinstance(event, runner.UnitFinished):
            wall = float(event.record.row.get(schema.WALL_SECONDS, float("nan")))
            starts.append(now - wall if math.isfinite(wall) else now)

    plan = runner.Plan(profile="quick", fresh=True, report=out / "report", command=["benchmark"])
    outcome = runner.run(plan, out / "results", on_event=on_event)
    total = time.perf_counter() - start
    if outcome.status not in (runner.OK, runner.CHECKS_FAILED):  # a flagged check: its timings hold
        raise SystemExit(f"the quick profile did not run: {outcome.status}")
    first = min(starts)
    phases = {
        "set-up (validation, clean-up, manifest)": marks["ExecutionStarted"],
        "workers starting (the report's imports beside)": first - marks["ExecutionStarted"],
        "cells": marks["ExecutionFinished"] - first,
        "tables (and any study)": marks["ReportStarted"] - marks["ExecutionFinished"],
        "report": marks["ReportWritten"] - marks["ReportStarted"],
        "after the report": total - marks["ReportWritten"],
        "whole run": total,
    }
    return phases, outcome.rows


def by_backend(rows: pd.DataFrame) -> pd.DataFrame:
    """Cells and their summed seconds by backend: wall, compile, fit, and the rest of each cell."""
    seconds = rows.groupby(schema.BACKEND).agg(
        cells=(schema.WALL_SECONDS, "size"),
        wall=(schema.WALL_SECONDS, "sum"),
        compile=(schema.COMPILE_SECONDS, "sum"),
        fit=(schema.FIT_SECONDS, "sum"),
    )
    seconds["rest"] = seconds["wall"] - seconds["compile"] - seconds["fit"]
    seconds.loc["all"] = seconds.sum()
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for the results and report (default: temporary)")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        first, _ = timeline(options.out or Path(scratch))
        phases, rows = timeline(options.out or Path(scratch))
    print(f"first run (compilation cache filled, every figure drawn): {first['whole run']:.2f} s\n")
    print("| phase | seconds |\n|---|---|")
    print("\n".join(f"| {name} | {value:.2f} |" for name, value in phases.items()))
    print("\n| backend | cells | wall | compile | fit | rest |\n|---|---|---|---|---|---|")
    for backend, row in by_backend(rows).iterrows():
        seconds = " | ".join(f"{row[column]:.1f}" for column in ("wall", "compile", "fit", "rest"))
        print(f"| {backend} | {int(row['cells'])} | {seconds} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
