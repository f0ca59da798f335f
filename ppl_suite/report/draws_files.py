"""Draws as files: per cell, where its q draws and its reference draws lie as NetCDF (ArviZ
InferenceData, ``arviz.from_netcdf``), for a researcher who keeps working with them. ``ppl-suite
check`` keeps them in its results folder (``ppl_suite.draws_files``: the store's kept files);
``ppl_suite.check``'s ``CheckResult.draws`` and ``checking.draws.cell_draws`` make them for any cell
of any results folder.

The files are named by their path inside the results folder, not linked: a report is a document that
travels (committed, sent) without the results folder, where a link would lead nowhere."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ppl_suite import schema
from ppl_suite.draws_files import KINDS, RELATIVE, draws_files
from ppl_suite.references.inference_data import CHAINS
from ppl_suite.report.document import Block, Context, SectionDefaults, Table, Text, register
from ppl_suite.report.rows import ok_rows

CAPTION = (
    f"q: draws of the fitted guide (independent draws in {CHAINS} chains, the cell's ELBO, log p(x), KL "
    "and k-hat with their SEs as attributes); reference: the posterior the cell was compared with (the "
    "NUTS reference with its chains and sampler statistics, or exact draws). Both hold the observed data "
    "and the log-likelihood (`az.loo`, `az.compare`). Open with `arviz.from_netcdf`."
)


@dataclass(frozen=True)
class DrawsFiles(SectionDefaults):
    title: str = "Draws as files"

    def build(self, context: Context) -> list[Block]:
        root = context.store.path
        listed = []
        for _, row in ok_rows(context.rows).iterrows():
            files = draws_files(root, row[schema.KEY])
            if files:
                names = ", ".join(files[kind].name for kind in KINDS if kind in files)
                listed.append({"cell": row[schema.KEY], "files": names})
        if not listed:
            return []
        return [
            Text(
                f"In the results folder `{root.resolve().name}` (not part of this report), under "
                f"`{RELATIVE}/<cell>/`:"
            ),
            Table(pd.DataFrame(listed), caption=CAPTION),
        ]


register(DrawsFiles())
