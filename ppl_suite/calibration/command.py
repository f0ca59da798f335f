"""``ppl-suite calibrate``: the calibration study alone through the runner into --out, a results folder
(its tables under calibration/, ``ppl_suite.calibration.tables``), printed by ``console.StudyPrinter``;
then, as the command always has, each table as CSV and the figure at the top of --out
(``tables.EXPORTS``). A folder holding only those files (what the command wrote before it wrote a
results folder) is adopted: the run records a manifest there and writes the files anew; nothing else in
it is touched.

Exit codes: 0 every verdict (rows and k-hat bins) is ok, labelled, an approximation or a diagnostic,
3 when the replicates an estimator labels reliable fail, 2 bad input (every problem listed, nothing
run) or the folder is in use.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ppl_suite.calibration import tables as t
from ppl_suite.calibration.plugin import CalibrationStudy
from ppl_suite.calibration.settings import Settings, chosen, problems


def validate(args: argparse.Namespace) -> Settings:
    """The settings the flags give; every problem with them (and with --out) is one ``ConfigError``
    message."""
    from ppl_suite.matrix import ConfigError
    from ppl_suite.store import unwritable

    settings = chosen(args.models, args.estimators, args.replicates, args.level)
    found = problems(settings, lambda key: f"--{key}")
    if cannot_write := unwritable(Path(args.out)):
        found.append(f"--out: {cannot_write}")
    if found:
        raise ConfigError(found)
    return settings


def export(found: Mapping[str, pd.DataFrame], folder: Path, level: float) -> list[Path]:
    """Each table as ``<folder>/<table>.csv`` and the figure as ``<folder>/calibration.png``
    (``tables.EXPORTS``, in that order); returns the files."""
    from ppl_suite import paths
    from ppl_suite.report.calibration_figure import draw_calibration

    written = [paths.inside(folder, name) for name in t.EXPORTS]
    for path in written[:-1]:
        found[path.stem].to_csv(path, index=False)
    draw_calibration(found[t.CALIBRATION], written[-1], level)
    return written


def command(args: argparse.Namespace) -> int:
    """Run ``ppl-suite calibrate``; bad input is a ``matrix.ConfigError`` (exit 2)."""
    from ppl_suite import console, matrix, runner
    from ppl_suite.numerics import setup
    from ppl_suite.store import ResultsStore

    setup()  # float64, one thread for XLA and torch, before anything computes
    settings = validate(args)
    study = CalibrationStudy.name
    plan = runner.Plan(command=list(sys.argv), studies={study: settings}, exports=t.EXPORTS)
    store = ResultsStore(args.out)
    outcome = runner.run(plan, store, on_event=console.StudyPrinter(store.path))
    if outcome.status == runner.BAD_INPUT:
        raise matrix.ConfigError(outcome.problems)
    if outcome.status == runner.STOPPED:  # SIGINT or SIGTERM: 130 or 143, the finished work kept
        return outcome.exit_code
    found = outcome.study_tables[study]
    written = export(found, store.path, settings.level)
    print(f"{CalibrationStudy().outcome(found)}; written {', '.join(map(str, written))}")
    return t.EXIT_FAILED if outcome.status == runner.FAILED else outcome.exit_code
