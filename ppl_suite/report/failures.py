"""Cells and problem units that failed, diverged, timed out or never ran, with their errors."""

from __future__ import annotations

from dataclasses import dataclass

from ppl_suite import schema
from ppl_suite.report import words
from ppl_suite.report.document import Block, Code, Context, Heading, SectionDefaults, Table, Text, register
from ppl_suite.report.rows import NOT_RUN, planned_cells, planned_problems, units
from ppl_suite.report.run_tables import failures_table

ERROR_LINES = 25  # the last lines of a traceback are shown


@dataclass(frozen=True)
class Failures(SectionDefaults):
    """Cells (and problem units) that failed, diverged or timed out, with their errors, and planned
    ones with no result."""

    title: str = words.FAILURES_TITLE

    def headline(self, context: Context) -> list[Block]:
        every_unit = units(context.rows, context.problems)
        planned = planned_problems(context.manifest) + planned_cells(context.manifest)
        failures = failures_table(every_unit, planned)
        if failures.empty:
            return []
        return [
            Text(
                f"{len(failures)} units did not finish ({words.statuses(failures['status'])}): their "
                f'numbers are absent from this report; errors under "{self.title}".'
            )
        ]

    def build(self, context: Context) -> list[Block]:
        every_unit = units(context.rows, context.problems)
        problems = planned_problems(context.manifest)
        planned = problems + planned_cells(context.manifest)
        noun = "cells and problem units" if problems or not context.problems.empty else "cells"
        failures = failures_table(every_unit, planned)
        if failures.empty:
            return (
                [Text(f"None: all {len(every_unit)} {noun} finished with status ok.")]
                if len(every_unit)
                else []
            )
        total = len(every_unit) + int((failures["status"] == NOT_RUN).sum())
        counts = words.statuses(failures["status"])
        blocks: list[Block] = [
            Text(
                f"{len(failures)} of {total} {noun} did not finish ({counts}); their numbers are "
                "absent above."
            ),
            Table(failures, caption="Status and first line of each error; the full errors follow."),
        ]
        for _, row in every_unit[every_unit[schema.STATUS] != schema.OK].iterrows():
            error = row.get(schema.ERROR)
            lines = (error if isinstance(error, str) and error else "(no error text)").rstrip().splitlines()
            shown = lines if len(lines) <= ERROR_LINES else ["...", *lines[-ERROR_LINES:]]
            blocks += [Heading(f"{row[schema.KEY]} ({row[schema.STATUS]})", 4), Code("\n".join(shown))]
        return blocks


register(Failures())
