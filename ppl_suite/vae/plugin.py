"""The VAE study as a plug-in (``ppl_suite.studies``): its ``[vae]`` section, its tables under
``<results>/vae/``, its kept work under ``vae/parts/``, its report section and its step. Light to
import: the study's modules load when it is asked to check its settings or to run."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ppl_suite import studies
from ppl_suite.errors import InputProblem
from ppl_suite.vae import results as r


def section_settings(module: Any, table: Any, config: Mapping[str, Any]) -> Any:
    """A study's settings (``module.from_table``) from its section ``table``, whose backends default to
    the config's; ``InputProblem`` lists every problem."""
    from ppl_suite.vae.settings import SettingsError

    if isinstance(table, dict) and "backends" not in table and "backends" in config:
        table = {**table, "backends": config["backends"]}
    try:
        return module.from_table(table)
    except SettingsError as error:
        raise InputProblem(*error.problems) from None


def runs_failed(tables: Mapping[str, pd.DataFrame], runs: str) -> bool:
    """Whether a row of table ``runs`` is not ok."""
    return bool((tables[runs][r.STATUS] != r.OK).any())


def runs_outcome(tables: Mapping[str, pd.DataFrame], runs: str, noun: str) -> str:
    """'2 of 3 <noun>s ok': the rows of table ``runs`` whose status is ok."""
    found = tables[runs]
    ok = int((found[r.STATUS] == r.OK).sum())
    return f"{ok} of {len(found)} {noun}{'s' if len(found) != 1 else ''} ok"


class TrainedStudy:
    """What the VAE and the VQ-VAE studies share: settings, kept parts, step and failure read through
    the study's own package (``package``: its ``settings``, ``study.run_study``), a runs table."""

    package: str
    runs_table: str
    part_kinds: frozenset[str]

    def settings(self, table: Any, config: Mapping[str, Any]) -> Any:
        return section_settings(importlib.import_module(f"{self.package}.settings"), table, config)

    def owns_part(self, name: str) -> bool:
        return name.partition(".")[2] in self.part_kinds

    def run(self, settings: Any, folder: Path, log: studies.Log) -> dict[str, pd.DataFrame]:
        return importlib.import_module(f"{self.package}.study").run_study(settings, folder, log=log)

    def failed(self, tables: Mapping[str, pd.DataFrame]) -> bool:
        return runs_failed(tables, self.runs_table)


class VAEStudy(TrainedStudy):
    """The digits VAE trained with each backend and evaluated (``ppl_suite.vae.study``)."""

    name = "vae"
    package = "ppl_suite.vae"
    title = "VAE"
    folder = r.FOLDER
    tables = r.TABLES
    runs_table = "backends"
    manifest_key = r.MANIFEST_VAE
    report = "ppl_suite.vae.report"
    # the kinds of its kept parts: a backend's trained weights and its per-backend tables
    part_kinds = frozenset({r.TRAINED, *(f"{table}.parquet" for table in r.TABLES)})

    def summary_lines(self, tables: Mapping[str, pd.DataFrame]) -> list[str]:
        """The backends' table and the flagged disagreements, as printed lines."""
        shown = [
            r.BACKEND, r.STATUS, r.LOG_P, r.se(r.LOG_P), r.IWAE, r.ELBO, r.KL, r.se(r.KL), r.APPROXIMATION,
            r.AMORTIZATION,
        ]  # fmt: skip
        lines = [tables["backends"][shown].to_string(index=False, float_format=lambda v: f"{v:.3f}")]
        agreement = tables["agreement"]
        flagged = agreement[agreement[r.FLAGGED]] if not agreement.empty else agreement
        for row in flagged.itertuples(index=False):
            lines.append(
                f"backends differ beyond noise: {getattr(row, r.QUANTITY)} {getattr(row, r.BACKEND_A)} - "
                f"{getattr(row, r.BACKEND_B)} = {getattr(row, r.DIFFERENCE):.3f} ({getattr(row, r.Z):.1f} SE)"
            )
        return lines

    def outcome(self, tables: Mapping[str, pd.DataFrame]) -> str:
        return runs_outcome(tables, self.runs_table, "backend")


STUDY = VAEStudy()
