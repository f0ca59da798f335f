"""Run facts: the manifest's times, command, configuration and versions."""

from __future__ import annotations

from dataclasses import dataclass

from ppl_suite.report import tables, words
from ppl_suite.report.document import Block, Context, Heading, SectionDefaults, Table, register


@dataclass(frozen=True)
class RunFacts(SectionDefaults):
    """The manifest: times, command, configuration, versions."""

    title: str = words.FACTS_TITLE

    def build(self, context: Context) -> list[Block]:
        manifest = context.manifest
        if not manifest:
            return []
        blocks: list[Block] = [
            Table(tables.run_table(manifest, context.rows), caption="From the results folder's manifest.")
        ]
        config = tables.config_table(manifest)
        blocks += [Heading("Configuration", 3)]
        blocks += (
            [Table(config, caption="The configuration as run.", details=True)]
            if not config.empty
            else [words.absent("the configuration")]
        )
        versions = tables.versions_table(manifest)
        blocks += [Heading("Versions", 3)]
        blocks += (
            [Table(versions, caption="Python's and the packages' versions.", details=True)]
            if not versions.empty
            else [words.absent("package versions")]
        )
        return blocks


register(RunFacts())
