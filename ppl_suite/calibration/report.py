"""The calibration study's report section: the calibration table and its figure (the sd of the z's per
estimator and regime against its acceptance interval). Reads the tables the study stored
(``ppl_suite.calibration.tables``) and draws them; every number shown is stored, none is computed here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ppl_suite import schema
from ppl_suite.calibration import tables as t
from ppl_suite.calibration.plugin import CalibrationStudy
from ppl_suite.report.calibration_figure import draw_calibration
from ppl_suite.report.document import Block, Context, Image, SectionDefaults, Table, Text, register

TITLE = "Calibration: is (estimate − exact) / SE a standard normal draw?"


def draw(table: pd.DataFrame, level: float, path: Path) -> Path:
    """``draw_calibration`` with the path last (``Context.draw``'s order), its folder made first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return draw_calibration(table, path, level)


def level(context: Context) -> float:
    """The level of the acceptance intervals the study ran at (its manifest entry's settings)."""
    entry = context.manifest.get(CalibrationStudy.manifest_key, {})
    return float(entry.get(schema.MANIFEST_CONFIG, {}).get(CalibrationStudy.name, {}).get("level", t.LEVEL))


@dataclass(frozen=True)
class Calibration(SectionDefaults):
    """The calibration study of this results folder (section title ``TITLE``)."""

    title: str = TITLE
    without_cells: bool = True  # it reads the study's tables alone

    def build(self, context: Context) -> list[Block]:
        found = context.store.study_tables(t.FOLDER)
        if t.CALIBRATION not in found:
            return []
        table = found[t.CALIBRATION]
        at = level(context)
        failed = int(table["verdict"].map(t.failed).sum())
        return [
            Text(
                "Each estimator run R times on fixed guides (the exact posterior N(m, S) and N(m, s² S) "
                "for s below 1) against exact values: z = (estimate − exact) / SE over the replicates "
                f"must have sd and mean in the intervals standard normal z's fall in with probability "
                f"{at:g}. {len(table)} rows, {failed} failed."
            ),
            Table(
                table[list(t.COLUMNS[:10])],
                caption="Per model, estimator and guide regime (k-hat: the guide's PSIS k-hat).",
                formats={
                    name: "{:.3g}"
                    for name in ("z_mean", "z_sd", "frac_abs_z_gt_2", "frac_abs_z_gt_3", "khat")
                },
                details=len(table) > 30,
            ),
            Image(
                context.draw("calibration", draw, table, at),
                "The sd of z per estimator and regime on its acceptance interval (the bar); 1 is calibrated.",
                alt="Per model, points of the sd of z per estimator, one colour per guide regime.",
            ),
        ]


register(Calibration())
