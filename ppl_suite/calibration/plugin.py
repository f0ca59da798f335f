"""Calibration as a study (``ppl_suite.studies``): its ``[calibration]`` section, its tables under
``<results>/calibration/``, its report section and its step. Light to import: the estimators, torch and
JAX load when it is asked to check its settings or to run."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ppl_suite import studies
from ppl_suite.calibration import tables as t


def failures(tables: Mapping[str, pd.DataFrame]) -> tuple[int, int]:
    """The failed rows of the calibration table and the failed bins of the k-hat table."""
    return tuple(int(tables[name]["verdict"].map(t.failed).sum()) for name in (t.CALIBRATION, t.BY_KHAT))


class CalibrationStudy:
    """Each estimator run R times on fixed guides against exact values (``ppl_suite.calibrate``)."""

    name = "calibration"
    title = "calibration"
    folder = t.FOLDER
    tables = t.TABLES
    runs_table = t.CALIBRATION
    manifest_key = "calibration_study"
    report = "ppl_suite.calibration.report"

    def settings(self, table: Any, config: Mapping[str, Any]) -> Any:
        from ppl_suite.calibration import settings

        return settings.from_table(table)

    def owns_part(self, name: str) -> bool:
        return False  # it keeps no work between runs

    def run(self, settings: Any, folder: Path, log: studies.Log) -> dict[str, pd.DataFrame]:
        """Calibrate (``calibrate.calibration_tables``) and store the tables in ``folder``."""
        from ppl_suite import calibrate
        from ppl_suite.store import ResultsStore

        found = calibrate.calibration_tables(settings, progress=log)
        store = ResultsStore(folder)
        for name, frame in found.items():
            store.write_study_table(self.name, name, frame)
        return found

    def failed(self, tables: Mapping[str, pd.DataFrame]) -> bool:
        return any(failures(tables))

    def summary_lines(self, tables: Mapping[str, pd.DataFrame]) -> list[str]:
        """The calibration table (its first ten columns) and the k-hat table, as printed lines."""
        shown = tables[t.CALIBRATION][list(t.COLUMNS[:10])]
        width = shutil.get_terminal_size().columns
        lines = [shown.to_string(index=False, line_width=width, float_format="{:.3g}".format)]
        by_khat = tables[t.BY_KHAT]
        if len(by_khat):
            lines.append(by_khat.drop(columns="z_about").to_string(index=False, float_format="{:.3g}".format))
        return lines

    def outcome(self, tables: Mapping[str, pd.DataFrame]) -> str:
        rows, bins = failures(tables)
        table, by_khat = tables[t.CALIBRATION], tables[t.BY_KHAT]
        return f"{len(table)} rows: {rows} failed calibration; {bins} of {len(by_khat)} k-hat bins failed"


STUDY = CalibrationStudy()
