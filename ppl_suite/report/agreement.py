"""Backends against each other (same model, guide family, data and seed): ELBO and KL differences in
SE units, as a histogram against the ±4 SE band, every pair in a folded table; the libraries' own ELBO
against the suite's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ppl_suite import checks
from ppl_suite.report import drawing, tables, words
from ppl_suite.report.document import Block, Context, Heading, Image, SectionDefaults, Table, Text, register

AGREEMENT = (
    "The same model, guide family and seed fitted by different backends. Differences are in units of "
    "SE = sqrt(SE_a² + SE_b²) of the two ELBO estimates (for the KL, the Monte Carlo KL's SE is added "
    "where the KL is estimated); with a fixed model, ΔKL = −ΔELBO up to that noise. The SE has a floor "
    f"of {checks.LOG_JOINT_TOLERANCE:g} nats plus float64 rounding, what two conforming implementations "
    "of the model's log joint may differ by (an enumerated ELBO computed exactly by two libraries agrees "
    f"when they agree that closely). Beyond {checks.FLAG_SE:g} SE a difference is flagged: the backends "
    "reached different fits, or one computes something else."
)


@drawing.styled
def draw_differences(elbo: np.ndarray, kl: np.ndarray, flag: float, path: Path) -> Path:
    """Histograms of ΔELBO and ΔKL in SE units over all backend pairs (linear axes), the ±flag band
    shaded; any pair beyond it shows as a bar outside the band."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(drawing.WIDTH, 2.8), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    values = np.concatenate([elbo, kl])
    values = values[np.isfinite(values)]
    reach = max(float(np.max(np.abs(values))) if values.size else 0.0, flag) * 1.1
    bins = np.linspace(-reach, reach, 41)
    for axis, data, name, color in ((axes[0], elbo, "ΔELBO", "#1f6fb4"), (axes[1], kl, "ΔKL", "#f0a04b")):
        axis.axvspan(-flag, flag, color="#2e9e44", alpha=0.10, label=f"|difference| ≤ {flag:g} SE")
        axis.hist(data[np.isfinite(data)], bins=bins, color=color, edgecolor="white")
        axis.set_xlim(-reach, reach)
        axis.set_xlabel(f"{name} between backends (SE units)")
        axis.set_title(f"{name}: {int(np.isfinite(data).sum())} pairs", fontsize=10)
    axes[0].set_ylabel("backend pairs")
    axes[0].legend(loc="upper left", fontsize=8)
    return drawing.save(figure, path)


def flagged(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["flag"] != ""] if not table.empty else table


@dataclass(frozen=True)
class Agreement(SectionDefaults):
    """Backend pairs on the same cell; library vs suite ELBO."""

    title: str = words.AGREEMENT_TITLE

    def headline(self, context: Context) -> list[Block]:
        table = tables.agreement_table(context.rows)
        if table.empty:
            return []
        bad = flagged(table)
        worst = table[["ΔELBO (SE)", "ΔKL (SE)"]].abs().max(axis=1)
        text = (
            f"Backends agree: {words.count(len(table), 'pair')} of backends fitting the same cell, "
            f"largest difference {np.nanmax(worst):.2f} SE, "
        )
        if bad.empty:
            text += f"none beyond {checks.FLAG_SE:g} SE."
        else:
            names = [f"{r.model} / {r.guide} / {r.pair}" for r in bad.itertuples()]
            text = text.replace("Backends agree: ", "") + (
                f"{len(bad)} beyond {checks.FLAG_SE:g} SE ({words.listing(names, most=3)}): see "
                f'"{self.title}".'
            )
        return [Text(text)]

    def build(self, context: Context) -> list[Block]:
        table = tables.agreement_table(context.rows)
        library = tables.library_table(context.rows)
        if table.empty and library.empty:
            return []
        blocks: list[Block] = [Text(AGREEMENT)]
        if table.empty:
            blocks.append(words.absent("two backends on the same model, guide and seed"))
        else:
            bad = flagged(table)
            blocks.append(Text(f"{words.count(len(table), 'comparison')}, {len(bad)} flagged."))
            path = context.draw(
                "agreement",
                draw_differences,
                table["ΔELBO (SE)"].to_numpy(dtype=float),
                table["ΔKL (SE)"].to_numpy(dtype=float),
                checks.FLAG_SE,
            )
            blocks.append(
                Image(
                    path,
                    f"ΔELBO and ΔKL of every backend pair, in SE units; green: ±{checks.FLAG_SE:g} SE. "
                    "Differences within noise pile up around 0.",
                    alt="histograms of backend differences in standard errors",
                )
            )
            formats = {"ΔELBO": "{:+.3g}", "ΔELBO (SE)": "{:+.2f}", "ΔKL": "{:+.3g}", "ΔKL (SE)": "{:+.2f}"}
            if not bad.empty:
                blocks.append(Table(bad, caption="The flagged pairs.", formats=formats))
            blocks.append(
                Table(
                    table,
                    caption="Differences a − b of every backend pair (same model, guide, data seed, seed).",
                    formats=formats,
                    details=True,
                )
            )
        blocks.append(Heading("The libraries' own ELBO vs the suite's", 3))
        if library.empty:
            blocks.append(words.absent("a library ELBO (Pyro's or NumPyro's Trace_ELBO after the fit)"))
        else:
            bad = int((library["flag"] != "").sum())
            blocks.append(
                Text(
                    f"{words.count(len(library), 'cell')} with a library ELBO; {bad} differ from the "
                    f"suite's beyond {checks.FLAG_SE:g} SE."
                )
            )
            blocks.append(
                Table(
                    library,
                    caption="Pyro's / NumPyro's own Trace_ELBO of the fitted guide minus the suite's "
                    "ELBO estimate of the same guide, in nats and in combined SE units.",
                    formats={
                        "library ELBO": "{:.4f}",
                        "suite ELBO": "{:.4f}",
                        "difference": "{:+.3g}",
                        "difference (SE)": "{:+.2f}",
                    },
                    pm={"library ELBO": "library SE", "suite ELBO": "suite SE"},
                    details=True,
                )
            )
        return blocks


register(Agreement())
