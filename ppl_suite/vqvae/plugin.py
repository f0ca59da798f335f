"""The VQ-VAE study as a plug-in (``ppl_suite.studies``): its ``[vqvae]`` section, its tables beside
the VAE's under ``<results>/vae/`` (the names do not overlap), its kept work under ``vae/parts/``, its
report section and its step. Light to import."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from ppl_suite.vae.plugin import TrainedStudy, runs_outcome
from ppl_suite.vqvae import results as r


class VQVAEStudy(TrainedStudy):
    """The digits VQ-VAE, every term exact by enumeration (``ppl_suite.vqvae.study``)."""

    name = "vqvae"
    package = "ppl_suite.vqvae"
    title = "VQ-VAE"
    folder = r.FOLDER
    tables = r.TABLES
    runs_table = "vqvae_runs"
    manifest_key = r.MANIFEST_VQVAE
    report = "ppl_suite.vqvae.report"
    part_kinds = frozenset({r.TRAINED, *(f"{table}.parquet" for table in r.TABLES)})

    def summary_lines(self, tables: Mapping[str, pd.DataFrame]) -> list[str]:
        """Per backend and objective: the final test log p, ELBO and KL (exact), and the training's cost."""
        shown = [
            r.BACKEND, r.OBJECTIVE, r.STATUS, r.LOG_EVIDENCE, r.ELBO, r.KL, r.KL_NEAREST, r.TRAINING_SECONDS,
        ]  # fmt: skip
        return [tables["vqvae_runs"][shown].to_string(index=False, float_format=lambda v: f"{v:.3f}")]

    def outcome(self, tables: Mapping[str, pd.DataFrame]) -> str:
        return runs_outcome(tables, self.runs_table, "run")


STUDY = VQVAEStudy()
