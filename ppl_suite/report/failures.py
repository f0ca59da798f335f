"""Cells and problem units that failed, diverged, timed out or never ran, with their errors."""

from __future__ import annotations

from dataclasses import dataclass

from ppl_suite import schema
from ppl_suite.report import tables, words
from ppl_suite.report.document import Block, Code, Context, Heading, SectionDefaults, Table, Text, register

ERROR_LINES = 25  # the last lines of a traceback are shown


@dataclass(frozen=True)
class Failures(SectionDefaults):
    """Cells (and problem units) that failed, diverged or timed out, with their errors, and planned
    ones with no result."""

    title: str = words.FAILURES_TITLE

    def headline(self, context: Context) -> list[Block]:
        units = tables.units(context.rows, context.problems)
        planned = tables.planned_problems(context.manifest) + tables.planned_cells(context.manifest)
        failures = tables.failures_table(units, planned)
        if failures.empty:
            return []
        return [
            Text(
                f"{len(failures)} units did not finish ({words.statuses(failures['status'])}): their "
                f'numbers are absent from this report; errors under "{self.title}".'
            )
        ]

    def build(self, context: Context) -> list[Block]:
        units = tables.units(context.rows, context.problems)
        problems = tables.planned_problems(context.manifest)
        planned = problems + tables.planned_cells(context.manifest)
        noun = "cells and problem units" if problems or not context.problems.empty else "cells"
        failures = tables.failures_table(units, planned)
        if failures.empty:
            return [Text(f"None: all {len(units)} {noun} finished with status ok.")] if len(units) else []
        total = len(units) + int((failures["status"] == tables.NOT_RUN).sum())
        counts = words.statuses(failures["status"])
        blocks: list[Block] = [
            Text(
                f"{len(failures)} of {total} {noun} did not finish ({counts}); their numbers are "
                "absent above."
            ),
            Table(failures, caption="Status and first line of each error; the full errors follow."),
        ]
        for _, row in units[units[schema.STATUS] != schema.OK].iterrows():
            error = row.get(schema.ERROR)
            lines = (error if isinstance(error, str) and error else "(no error text)").rstrip().splitlines()
            shown = lines if len(lines) <= ERROR_LINES else ["...", *lines[-ERROR_LINES:]]
            blocks += [Heading(f"{row[schema.KEY]} ({row[schema.STATUS]})", 4), Code("\n".join(shown))]
        return blocks


register(Failures())
