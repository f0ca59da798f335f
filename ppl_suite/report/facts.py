"""Run facts: the manifest's times, command, configuration and versions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ppl_suite import schema
from ppl_suite.report import words
from ppl_suite.report.document import Block, Context, Heading, SectionDefaults, Table, register
from ppl_suite.report.rows import column, planned_cells, planned_problems, status_counts
from ppl_suite.schema import STATUS


def run_table(manifest: dict[str, Any], rows: pd.DataFrame) -> pd.DataFrame:
    """When, where and how the run ran: the manifest's scalar facts and the count of cells by status."""
    facts = {
        "started": manifest.get(schema.MANIFEST_STARTED),
        "finished": manifest.get(schema.MANIFEST_FINISHED),
        "git commit": manifest.get(schema.MANIFEST_GIT_COMMIT),
        "host": manifest.get(schema.MANIFEST_HOST),
        "executor": manifest.get(schema.MANIFEST_EXECUTOR),
        "jobs": manifest.get(schema.MANIFEST_JOBS),
        "command": " ".join(map(str, manifest.get(schema.MANIFEST_COMMAND) or [])) or None,
        "schema version": manifest.get(schema.VERSION),
        "cells planned": len(planned_cells(manifest)) or None,
        "problem units planned": len(planned_problems(manifest)) or None,
    }
    for status, count in status_counts(column(rows, STATUS)).items():
        facts[f"cells {status}"] = count
    return pd.DataFrame([{"fact": k, "value": str(v)} for k, v in facts.items() if v is not None and v != ""])


def versions_table(manifest: dict[str, Any]) -> pd.DataFrame:
    """Package versions recorded in the manifest."""
    versions = manifest.get(schema.MANIFEST_VERSIONS) or {}
    return pd.DataFrame([{"package": k, "version": str(v)} for k, v in versions.items()])


def config_table(manifest: dict[str, Any]) -> pd.DataFrame:
    """The run's configuration, flattened to dotted keys (``svi.steps``)."""
    lines: list[dict[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            text = ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
            lines.append({"setting": prefix, "value": text})

    walk("", manifest.get(schema.MANIFEST_CONFIG) or {})
    return pd.DataFrame(lines)


@dataclass(frozen=True)
class RunFacts(SectionDefaults):
    """The manifest: times, command, configuration, versions."""

    title: str = words.FACTS_TITLE

    def build(self, context: Context) -> list[Block]:
        manifest = context.manifest
        if not manifest:
            return []
        blocks: list[Block] = [
            Table(run_table(manifest, context.rows), caption="From the results folder's manifest.")
        ]
        config = config_table(manifest)
        blocks += [Heading("Configuration", 3)]
        blocks += (
            [Table(config, caption="The configuration as run.", details=True)]
            if not config.empty
            else [words.absent("the configuration")]
        )
        versions = versions_table(manifest)
        blocks += [Heading("Versions", 3)]
        blocks += (
            [Table(versions, caption="Python's and the packages' versions.", details=True)]
            if not versions.empty
            else [words.absent("package versions")]
        )
        return blocks


register(RunFacts())
