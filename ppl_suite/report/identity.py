"""The identity log p(x) = ELBO + KL(q || p(z|x)), cell by cell: its residuals (headline: count, largest
|z|, a QQ plot against N(0, 1)), KL against log p(x) − ELBO per model, and the cell table, folded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ppl_suite import checks, schema
from ppl_suite.report import drawing, numbers, words
from ppl_suite.report.document import Block, Code, Context, Image, SectionDefaults, Table, Text, register
from ppl_suite.report.rows import (
    RELIABLE,
    column,
    in_display_order,
    model_labels,
    model_names,
    of_model,
    ok_rows,
    reliability,
    text_column,
    with_exact,
)
from ppl_suite.schema import (
    BACKEND,
    CONVERGED,
    DATA_SEED,
    ELBO,
    ELBO_RELIABILITY,
    ELBO_SE,
    GUIDE,
    KL,
    KL_METHOD,
    LOG_EVIDENCE,
    OPTIMIZATION_GAP,
    RESIDUAL_SE,
    SEED,
    STATUS,
)

IDENTITY = "log p(x) = ELBO(q) + KL(q(z) || p(z | x))"
ENUMERATED = "enumerated"  # the KL route of an enumerating guide: KL 0 and ELBO = log p(x) by construction


# ----------------------------------------------------------------------------------------- figures
@drawing.styled
def draw_qq(z: np.ndarray, expected: np.ndarray, flag: float, path: Path) -> Path:
    """Sorted residuals against the standard normal's expected order statistics, with the line y = x
    and the ±flag band: on the line when every SE is right and nothing is wrong."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3.8, 3.0), layout="constrained")
    axis = figure.subplots()
    reach = max(float(np.max(np.abs(z))) if z.size else 0.0, float(np.max(np.abs(expected))), 2.5) * 1.1
    axis.axhspan(-flag, flag, color="#2e9e44", alpha=0.10, label=f"|z| ≤ {flag:g}")
    axis.plot([-reach, reach], [-reach, reach], **drawing.EXACT_STYLE, label="y = x: N(0, 1)")
    axis.scatter(expected, np.sort(z), s=14, color="#1f6fb4", zorder=3, label=f"{z.size} cells")
    axis.set_xlim(-reach, reach)
    axis.set_ylim(-max(reach, flag * 1.1), max(reach, flag * 1.1))
    axis.set_xlabel("standard normal quantile")
    axis.set_ylabel("residual z (SE units)")
    axis.legend(loc="upper left", fontsize=8)
    axis.set_title("Residuals of log p(x) = ELBO + KL", fontsize=10)
    return drawing.save(figure, path)


@drawing.styled
def draw_kl_vs_gap(panels: list[dict[str, Any]], path: Path) -> Path:
    """Per model, each cell's KL(q || p) (x) against log p(x) − ELBO ± SE (y), linear axes, with the
    line y = x where the identity puts every point. ``panels``: dicts with model, kl, gap, se, backend."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    columns = min(len(panels), 4)
    rows = int(np.ceil(len(panels) / columns))
    figure = Figure(figsize=(drawing.WIDTH, 2.3 * rows + 0.5), layout="constrained")
    axes = drawing.panel_grid(figure, len(panels), columns)
    for axis, panel in zip(axes, panels, strict=True):
        kl, gap, se, kl_se = (np.asarray(panel[k], dtype=float) for k in ("kl", "gap", "se", "kl_se"))
        reach = float(np.nanmax(np.abs(np.concatenate([kl + kl_se, gap + se]))))
        power = drawing.power_of(reach)
        kl, gap, se, kl_se = (
            values / 10.0**power for values in (kl, gap, se, kl_se)
        )  # shown in 10^power nats
        low = float(np.nanmin(np.concatenate([kl - kl_se, gap - se])))
        high = float(np.nanmax(np.concatenate([kl + kl_se, gap + se])))
        pad = 0.08 * (high - low) if high > low else max(abs(high), 1e-3) * 0.5
        limits = (low - pad, high + pad)
        axis.plot(limits, limits, **drawing.EXACT_STYLE)
        for backend in dict.fromkeys(panel["backend"]):
            chosen = np.asarray(panel["backend"]) == backend
            axis.errorbar(
                kl[chosen], gap[chosen], xerr=kl_se[chosen], yerr=se[chosen], fmt="o", markersize=3.5,
                capsize=2, color=drawing.backend_color(backend), alpha=0.85,
            )  # fmt: skip
        axis.set_xlim(limits)
        axis.set_ylim(limits)
        axis.set_aspect("equal", adjustable="box")
        axis.set_title(f"{panel['model']} ({drawing.unit(power)})", fontsize=9)
        axis.tick_params(labelsize=7)
        axis.xaxis.set_major_locator(MaxNLocator(3))
        axis.yaxis.set_major_locator(MaxNLocator(3))
        axis.ticklabel_format(useOffset=False, style="plain")
    figure.supxlabel("KL(q || p(z|x)), in each panel's unit", fontsize=9)
    figure.supylabel("log p(x) − ELBO", fontsize=9)
    backends = list(dict.fromkeys(b for panel in panels for b in panel["backend"]))
    handles = [
        Line2D([], [], marker="o", linestyle="", color=drawing.backend_color(b), label=b) for b in backends
    ]
    handles.append(Line2D([], [], **drawing.EXACT_STYLE, label="y = x (the identity)"))
    figure.legend(handles=handles, loc="outside upper center", ncol=len(handles), frameon=False)
    return drawing.save(figure, path)


# ---------------------------------------------------------------------------------------- sections
def _routes(rows: pd.DataFrame) -> str:
    """The KL routes of ``rows``, each with its cell count."""
    counts = text_column(ok_rows(rows), schema.KL_METHOD).value_counts()
    return ", ".join(f"{route or 'none'} ({n})" for route, n in counts.items())


def residual_sentence(found: numbers.Residuals, rows: pd.DataFrame) -> str:
    """The identity's evidence in one sentence, with this run's numbers."""
    if not found.count:
        return (
            "No cell of this run has an exact log p(x), so the identity cannot be checked term by term "
            "here: each KL is the reference's AIS log p(x) minus the ELBO, an estimate (see "
            f'"{words.REFERENCES_TITLE}").'
        )
    models = list(dict.fromkeys(found.frame["model"]))
    beyond = (
        "none beyond ±4"
        if not found.beyond
        else f"{found.beyond} beyond ±{checks.FLAG_SE:g}: a term is wrong there"
    )
    verdict = "holds" if not found.beyond else "fails somewhere"
    every = set(models) == set(model_names(ok_rows(rows)))
    which = "of every model" if every else f"of {words.listing(models)}"
    text = (
        f"The identity {verdict} in this run. In the {words.count(found.count, 'cell')} {which} with "
        "an exact log p(x), the residual "
        "z = (log p(x) − ELBO − KL) / SE, a standard normal draw when all three numbers are right, has "
        f"largest |z| = {found.largest:.2f} ({found.worst}); {beyond}."
    )
    if found.without:
        text += (
            f" {words.count(found.without, 'other cell')} {'has' if found.without == 1 else 'have'} no "
            "residual (a KL measured against a NUTS reference, or an ELBO without a valid SE)."
        )
    return text


def _negative(rows: pd.DataFrame) -> list[Text]:
    """Explanations of negative numbers that look like contradictions, where this run has them."""
    ok = ok_rows(rows)
    notes = []
    kl, kl_se = column(ok, schema.KL), column(ok, schema.KL_SE)
    gap = column(ok, schema.OPTIMIZATION_GAP)
    identity = column(ok, schema.KL_IDENTITY)
    negative_kl = int((kl < 0).sum())
    negative_gap = int((gap < 0).sum())
    negative_identity = int((identity < 0).sum())
    if negative_kl or negative_gap or negative_identity:
        within = int(((gap < 0) & (gap.abs() <= checks.FLAG_SE * kl_se.where(kl_se > 0))).sum())
        parts = [
            f"{n} {what}"
            for n, what in (
                (negative_kl, "a KL below 0"),
                (negative_identity, "log p(x) − ELBO below 0"),
                (negative_gap, "an optimization gap below 0"),
            )
            if n
        ]
        notes.append(
            Text(
                f"Negative values ({'; '.join(parts)} — counts of cells): a KL is never negative, but a "
                "Monte Carlo KL, and log p(x) minus a Monte Carlo ELBO, are estimates that scatter around "
                "their true value by their SE; when q is nearly exact the true value is close to 0 and "
                f"half the estimates fall below it. {within} of the {negative_gap} negative optimization "
                f"gaps are within {checks.FLAG_SE:g} SE of the KL's Monte Carlo noise (the gap is the "
                "fitted KL minus the family's best, both estimated); an enumerated cell's ±1e-13 is "
                "float64 rounding.",
                note=True,
            )
        )
    return notes


def _model_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per model: cells, KL routes, KL range, largest |z|, cells converged."""
    ok = ok_rows(rows)
    if ok.empty:
        return pd.DataFrame()
    frame = ok.assign(
        _model=model_labels(ok),
        _route=text_column(ok, schema.KL_METHOD),
        _z=column(ok, schema.RESIDUAL_SE).abs(),
        _kl=column(ok, schema.KL),
        _converged=column(ok, schema.CONVERGED),
    )
    lines = []
    for model, group in frame.groupby("_model", sort=False):
        lines.append(
            {
                "model": model,
                "cells": len(group),
                "KL route": ", ".join(dict.fromkeys(group["_route"])),
                "smallest KL": group["_kl"].min(),
                "largest KL": group["_kl"].max(),
                "largest |z|": group["_z"].max(),
                "converged": f"{int((group['_converged'] == True).sum())} of {len(group)}"  # noqa: E712
                if group["_converged"].notna().any()
                else "",
            }
        )
    return pd.DataFrame(lines)


EVIDENCE_CAPTION = (
    "Every cell: exact log p(x) (or the reference's AIS estimate), ELBO ± SE, KL(q || p(z|x)) by its "
    "route, the residual in units of sqrt(SE_ELBO² + SE_KL² + rounding floor²), the optimization gap "
    f"(KL minus the smallest KL the family reaches; converged below {checks.CONVERGED_GAP:g} nats)."
)


def evidence_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per cell: exact log p(x), ELBO and its SE, KL(q || p(z|x)), residual in SE units.

    The residual (log p(x) - ELBO - KL) / SE is the store's ``residual_se``; cells that did not
    finish keep their line with their status and empty numbers. Where the ELBO's SE is not reliable
    (``elbo_reliability``), the SE and the residual in SE units are left out and a column "ELBO
    reliability" gives the label.
    """
    if rows.empty:
        return pd.DataFrame()
    rows = in_display_order(rows)
    label = reliability(rows, ELBO_RELIABILITY).where(rows[STATUS] == schema.OK, "")
    trusted = (label == RELIABLE) | (label == "")
    table = pd.DataFrame(
        {
            "model": model_labels(rows),
            "backend": rows[BACKEND],
            "guide": rows[GUIDE],
            "data": rows[DATA_SEED],
            "seed": rows[SEED],
            "status": rows[STATUS],
            "log p(x)": column(rows, LOG_EVIDENCE),
            "ELBO": column(rows, ELBO),
            "ELBO SE": column(rows, ELBO_SE).where(trusted),
            "KL(q||p)": column(rows, KL),
            "KL route": text_column(rows, KL_METHOD),
            "residual (SE)": column(rows, RESIDUAL_SE).where(trusted),
            "opt. gap": column(rows, OPTIMIZATION_GAP),
            "converged": column(rows, CONVERGED),
        }
    )
    if not trusted.all():
        table.insert(table.columns.get_loc("ELBO SE") + 1, "ELBO reliability", label.to_numpy())
    return table.reset_index(drop=True)


def _kl_gap_panels(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Per model with an exact log p(x): its ok cells' KL and log p(x) - ELBO with their SEs (the
    figure's points), enumerated cells left out."""
    ok = in_display_order(ok_rows(with_exact(rows)))
    panels = []
    for model in model_names(ok):
        part = of_model(ok, model)
        part = part[
            np.isfinite(column(part, schema.KL))
            & np.isfinite(column(part, schema.KL_IDENTITY))
            & (text_column(part, schema.KL_METHOD) != ENUMERATED)
        ]
        if part.empty:
            continue
        panels.append(
            {
                "model": model,
                "kl": part[schema.KL].to_numpy(dtype=float),
                "gap": part[schema.KL_IDENTITY].to_numpy(dtype=float),
                "se": column(part, schema.ELBO_SE).fillna(0).to_numpy(dtype=float),
                "kl_se": column(part, schema.KL_SE).fillna(0).to_numpy(dtype=float),
                "backend": list(part[schema.BACKEND]),
            }
        )
    return panels


@dataclass(frozen=True)
class Identity(SectionDefaults):
    """The identity's check in every cell."""

    title: str = words.IDENTITY_TITLE

    def headline(self, context: Context) -> list[Block]:
        rows = context.rows
        if ok_rows(rows).empty:
            return []
        found = numbers.residuals(rows)
        blocks: list[Block] = [Text(residual_sentence(found, rows))]
        if found.count:
            z = found.frame["z"].to_numpy(dtype=float)
            path = context.draw("identity-qq", draw_qq, z, numbers.normal_quantiles(z.size), checks.FLAG_SE)
            blocks.append(
                Image(
                    path,
                    f"QQ plot of the {z.size} residuals against N(0, 1): on the dashed line when every SE "
                    f"is right; the green band is ±{checks.FLAG_SE:g}.",
                    alt=f"QQ plot: {z.size} identity residuals against the standard normal, largest "
                    f"|z| {found.largest:.2f}",
                )
            )
        return blocks

    def build(self, context: Context) -> list[Block]:
        rows = context.rows
        if rows.empty:
            return []
        blocks: list[Block] = [
            Code(IDENTITY),
            Text(
                "Each cell (model, backend, guide family, seed) estimates the three terms separately: the "
                "ELBO by Monte Carlo over q, log p(x) from the model's oracle, the KL by its route: "
                "analytic (closed form for the pair q, posterior), monte_carlo (E_q[log q − log p(z|x)] "
                "from draws of q), enumerated (discrete latents summed out: q is the exact posterior, "
                "KL = 0 and ELBO = log p(x) up to rounding) or reference (no oracle: AIS log p(x) − ELBO). "
                f"KL routes in this run: {_routes(rows)}."
            ),
        ]
        panels = _kl_gap_panels(rows)
        if panels:
            path = context.draw("identity-kl-vs-gap", draw_kl_vs_gap, panels)
            blocks.append(
                Image(
                    path,
                    "Per model, one point per cell: the KL of the fitted q ± its SE (x; a closed-form "
                    "KL has none) against log p(x) − ELBO ± SE (y), both in nats on the same linear "
                    "scale. The identity puts every point on the dashed line y = x, within its error "
                    "bars; points spread along it as guides and seeds reach different KLs. Enumerated "
                    "cells (KL 0 by construction) are left out.",
                    alt="KL against log p(x) minus ELBO per model: points on the line y = x",
                )
            )
        summary = _model_summary(rows)
        if not summary.empty:
            blocks.append(
                Table(
                    summary,
                    caption="Per model: finished cells, KL route, the range of the fitted KL, the largest "
                    "|residual| and how many fits converged.",
                    formats={"smallest KL": "{:.3g}", "largest KL": "{:.3g}", "largest |z|": "{:.2f}"},
                )
            )
        blocks += _negative(rows)
        blocks.append(
            Table(
                evidence_table(rows),
                caption=EVIDENCE_CAPTION,
                formats={
                    "log p(x)": "{:.6f}",
                    "ELBO": "{:.4f}",
                    "KL(q||p)": "{:.3g}",
                    "residual (SE)": "{:+.2f}",
                    "opt. gap": "{:.2g}",
                    "converged": words.yes_no,
                },
                pm={"ELBO": "ELBO SE"},
                details=True,
            )
        )
        return blocks


register(Identity())
