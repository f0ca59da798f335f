"""Backends against each other (same model, guide family, data and seed): ELBO and KL differences in
SE units, as a histogram against the ±4 SE band, every pair in a folded table; the libraries' own ELBO
against the suite's."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ppl_suite import checks
from ppl_suite.checks import FLAG_SE, implementation_allowance, in_se
from ppl_suite.report import drawing, words
from ppl_suite.report.document import Block, Context, Heading, Image, SectionDefaults, Table, Text, register
from ppl_suite.report.rows import (
    backend_rank,
    column,
    in_display_order,
    model_labels,
    ok_rows,
    reliability,
    trusted_se,
)
from ppl_suite.schema import (
    BACKEND,
    DATA_SEED,
    ELBO,
    ELBO_RELIABILITY,
    ELBO_SE,
    GUIDE,
    KL_MC_SE,
    KL_METHOD,
    LIBRARY_ELBO,
    LIBRARY_ELBO_SE,
    MODEL,
    SEED,
)

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


AGREEMENT_KEYS = [MODEL, GUIDE, DATA_SEED, SEED]


def agreement_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Every pair of backends on the same (model, guide, data seed, seed): ELBO and KL differences in
    nats and in units of SE = sqrt(SE_a^2 + SE_b^2) of the two ELBO estimates (and of the Monte Carlo
    KL estimates, where the KL is estimated), flagged when either |difference| > 4 SE. A pair with an
    ELBO whose SE is not reliable (``elbo_reliability``) has no differences in SE units, and says so."""
    ok = ok_rows(rows)
    if ok.empty:
        return pd.DataFrame()
    ok = ok.assign(
        model=model_labels(ok),
        elbo_se=trusted_se(column(ok, ELBO_SE), reliability(ok, ELBO_RELIABILITY)),
        kl_noise=np.where(column(ok, KL_METHOD) == "monte_carlo", column(ok, KL_MC_SE), 0.0),
    )
    lines = []
    for key, group in ok.groupby(AGREEMENT_KEYS, sort=True):
        group = group.assign(_rank=backend_rank(group[BACKEND])).sort_values(["_rank", BACKEND])
        for a, b in itertools.combinations(group.itertuples(), 2):
            elbo_se = float(
                np.hypot(np.hypot(a.elbo_se, b.elbo_se), implementation_allowance(a.elbo, b.elbo))
            )
            kl_se = float(np.hypot(elbo_se, np.hypot(a.kl_noise, b.kl_noise)))
            d_elbo, d_kl = a.elbo - b.elbo, a.kl - b.kl
            lines.append(
                dict(
                    zip(AGREEMENT_KEYS, key, strict=True),
                    pair=f"{a.backend} − {b.backend}",
                    **{
                        "ΔELBO": d_elbo,
                        "ΔELBO (SE)": in_se(d_elbo, elbo_se),
                        "ΔKL": d_kl,
                        "ΔKL (SE)": in_se(d_kl, kl_se),
                    },
                )
            )
    table = pd.DataFrame(lines)
    if table.empty:
        return table
    worst = table[["ΔELBO (SE)", "ΔKL (SE)"]].abs().max(axis=1)
    table["flag"] = _flags(worst)
    return table.rename(columns={DATA_SEED: "data"})


def _flags(worst: pd.Series) -> np.ndarray:
    """A difference's flag from its size in SE units: beyond FLAG_SE, or none (NaN: an SE
    that is not reliable)."""
    beyond = np.where(worst > FLAG_SE, f"> {FLAG_SE:g} SE", "")
    return np.where(worst.isna(), "no valid SE", beyond)


def library_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per ok cell with a library ELBO (Pyro's or NumPyro's own Trace_ELBO after the fit): the library
    value minus the suite's ELBO estimate, in nats and in units of their combined SE (none where the
    suite's SE is not reliable)."""
    ok = in_display_order(ok_rows(rows))
    ok = ok[column(ok, LIBRARY_ELBO).notna() & column(ok, ELBO).notna()]
    if ok.empty:
        return pd.DataFrame()
    ok = ok.assign(elbo_se=trusted_se(ok[ELBO_SE], reliability(ok, ELBO_RELIABILITY)))
    se = np.hypot(
        np.hypot(ok[LIBRARY_ELBO_SE], ok[ELBO_SE]), implementation_allowance(ok[LIBRARY_ELBO], ok[ELBO])
    )
    diff = ok[LIBRARY_ELBO] - ok[ELBO]
    table = pd.DataFrame(
        {
            "model": model_labels(ok),
            "backend": ok[BACKEND],
            "guide": ok[GUIDE],
            "data": ok[DATA_SEED],
            "seed": ok[SEED],
            "library ELBO": ok[LIBRARY_ELBO],
            "library SE": ok[LIBRARY_ELBO_SE],
            "suite ELBO": ok[ELBO],
            "suite SE": ok[ELBO_SE],
            "difference": diff,
            "difference (SE)": [in_se(d, s) for d, s in zip(diff, se, strict=True)],
        }
    )
    table["flag"] = _flags(table["difference (SE)"].abs())
    return table.reset_index(drop=True)


@dataclass(frozen=True)
class Agreement(SectionDefaults):
    """Backend pairs on the same cell; library vs suite ELBO."""

    title: str = words.AGREEMENT_TITLE

    def headline(self, context: Context) -> list[Block]:
        table = agreement_table(context.rows)
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
        table = agreement_table(context.rows)
        library = library_table(context.rows)
        if table.empty and library.empty:
            return []
        blocks: list[Block] = [Text(AGREEMENT)]
        if table.empty:
            blocks.append(words.absent("two backends on the same model, guide and seed"))
        else:
            blocks += self._pairs(context, table)
        blocks.append(Heading("The libraries' own ELBO vs the suite's", 3))
        if library.empty:
            blocks.append(words.absent("a library ELBO (Pyro's or NumPyro's Trace_ELBO after the fit)"))
        else:
            blocks += self._library(library)
        return blocks

    @staticmethod
    def _pairs(context: Context, table: pd.DataFrame) -> list[Block]:
        """Every backend pair's differences: their histogram, the flagged ones, all of them (folded)."""
        blocks: list[Block] = []
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
        return blocks

    @staticmethod
    def _library(library: pd.DataFrame) -> list[Block]:
        """The libraries' own ELBO of each fitted guide against the suite's estimate."""
        blocks: list[Block] = []
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
