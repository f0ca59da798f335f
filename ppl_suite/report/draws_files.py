"""Draws as files: per cell, where its q draws and its reference draws lie as NetCDF (ArviZ
InferenceData, ``arviz.from_netcdf``), for a researcher who keeps working with them. ``ppl-suite
check`` writes them into its results folder (``checking.stored.draws_files``); ``ppl_suite.check``'s
``CheckResult.draws`` and ``checking.draws.cell_draws`` make them for any cell of any results folder."""

from __future__ import annotations

from dataclasses import dataclass

from ppl_suite import schema
from ppl_suite.checking.stored import DRAWS_KINDS, draws_files
from ppl_suite.report.document import Block, Context, Links, SectionDefaults, Text, register
from ppl_suite.report.rows import ok_rows

CAPTION = (
    "q: draws of the fitted guide (one chain); reference: the posterior the cell was compared with (the "
    "NUTS reference with its chains and sampler statistics, or exact draws). Open with "
    "`arviz.from_netcdf`."
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
                links = tuple((f"{kind}.nc", files[kind]) for kind in DRAWS_KINDS if kind in files)
                listed.append((f"`{row[schema.KEY]}`", links))
        if not listed:
            return []
        return [
            Text(f"In the results folder `{root.resolve().name}`, under `draws/<cell>/`:"),
            Links(tuple(listed), CAPTION),
        ]


register(DrawsFiles())
