"""Models without a closed form, per model: the NUTS reference each cell is measured against, and how
far each fit is from it (KL by AIS log p(x) − ELBO, mean and sd errors, W2 beside its floor), with the
uncertainty of both sides."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ppl_suite import schema
from ppl_suite.report import drawing, words
from ppl_suite.report.document import Block, Context, Heading, Image, SectionDefaults, Table, Text, register
from ppl_suite.report.render import format_pm
from ppl_suite.report.rows import (
    PARETO_K_QUANTITY,
    REFERENCE_METHOD,
    RELIABLE,
    cell_labels,
    column,
    in_display_order,
    model_names,
    of_model,
    ok_rows,
    per_cell,
    text_column,
    with_exact,
)
from ppl_suite.schema import BACKEND, GUIDE, KL, KL_METHOD, SEED

CAPTION = (
    "No closed form: KL(q || p) = log p(x) by the reference's AIS − ELBO, its SE combining both (an "
    "estimate, never exact). Mean and sd errors: q's posterior means and sds minus the NUTS reference's, "
    "in reference posterior sds, at the worst coordinate (of d coordinates: even a q with the "
    "reference's means reads about √(2 ln d) SE from 0 there). W2: the 2-Wasserstein distance between "
    "q's and the reference's draws; the floor is the reference's distance to itself at the same number "
    "of draws, so q is indistinguishable from the reference when W2 is within a few SE of it."
)


@drawing.styled
def draw_distances(frame: pd.DataFrame, title: str, path: Path) -> Path:
    """Per cell: KL ± SE (left), worst mean and sd errors ± SE (middle, reference sds), W2 ± SE beside
    its floor (right), linear axes. ``frame``: columns of ``reference_table`` and cell."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    n = len(frame)
    figure = Figure(figsize=(drawing.WIDTH, max(2.4, 1.2 + 0.3 * n)), layout="constrained")
    axes = figure.subplots(1, 3, sharey=True)
    y = np.arange(n)
    colors = [drawing.backend_color(b) for b in frame["backend"]]

    def dots(axis: Any, value: str, se: str, offset: float = 0.0, marker: str = "o") -> None:
        if value not in frame:
            return
        errors = frame[se].fillna(0) if se in frame else None
        for k in range(n):
            axis.errorbar(
                frame[value].iloc[k], y[k] + offset, xerr=None if errors is None else errors.iloc[k],
                fmt=marker, color=colors[k], markersize=4, capsize=2,
            )  # fmt: skip

    dots(axes[0], "KL(q||p)", "KL SE")
    axes[0].set_xlabel("KL(q || p), nats")
    dots(axes[1], "worst mean error (sd)", "mean error SE", -0.15, "o")
    dots(axes[1], "worst sd error", "sd error SE", 0.15, "s")
    axes[1].axvline(0.0, **drawing.EXACT_STYLE)
    axes[1].set_xlabel("worst error (reference sds)")
    dots(axes[2], "W2", "W2 SE")
    if "W2 floor" in frame:
        axes[2].scatter(frame["W2 floor"], y, marker="|", s=200, color="black", zorder=3)
    axes[2].set_xlabel("W2 to the reference")
    for axis in axes:
        axis.margins(x=0.12)
    handles = [
        Line2D([], [], marker="o", linestyle="", color="#555555", label="mean error (middle)"),
        Line2D([], [], marker="s", linestyle="", color="#555555", label="sd error (middle)"),
        Line2D([], [], marker="|", linestyle="", markersize=12, color="black", label="W2 floor (right)"),
    ]
    handles += [
        Line2D([], [], marker="o", linestyle="", color=drawing.backend_color(b), label=b)
        for b in dict.fromkeys(frame["backend"])
    ]
    figure.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=8)
    axes[0].set_yticks(y, frame["cell"], fontsize=8)
    axes[0].set_ylim(n - 0.5, -0.5)
    figure.suptitle(title, fontweight="bold")
    return drawing.save(figure, path)


def model_part(context: Context, model: str, rows: pd.DataFrame) -> list[Block]:
    lines = reference_lines(rows)
    table = reference_table(rows, context.estimates)
    if not lines and table.empty:
        return []
    blocks: list[Block] = [Text(f"Reference: {line}") for line in lines]
    if not table.empty:
        ok = in_display_order(ok_rows(rows))
        ok = ok[text_column(ok, schema.KL_METHOD) == REFERENCE_METHOD]
        frame = table.assign(cell=cell_labels(ok).to_numpy())
        path = context.draw(
            f"{model}-reference", draw_distances, frame, f"{model}: q against the NUTS reference"
        )
        blocks.append(
            Image(
                path,
                "Per cell (colour: backend): the KL by AIS log p(x) − ELBO ± SE; q's worst standardized "
                "errors of means and sds; the W2 distance to the reference's draws ± SE beside the "
                "reference's own floor (black tick).",
                alt=f"{model}: KL, moment errors and W2 per cell against the NUTS reference",
            )
        )
        formats = {
            "KL(q||p)": "{:.3g}",
            "worst mean error (sd)": "{:+.3f}",
            "worst sd error": "{:+.3f}",
            "W2": "{:.3f}",
            "W2 floor": "{:.3f}",
            "k-hat": "{:.2f}",
        }
        pm = {
            "KL(q||p)": "KL SE",
            "worst mean error (sd)": "mean error SE",
            "worst sd error": "sd error SE",
            "W2": "W2 SE",
        }
        blocks.append(
            Table(
                table,
                caption=CAPTION,
                formats=formats,
                pm={k: v for k, v in pm.items() if k in table and v in table},
                details=len(table) > 6,
            )
        )
    return blocks


MEAN_ERROR_QUANTITY = "posterior_mean_error"


WASSERSTEIN_QUANTITY = "wasserstein_to_reference"


def reference_lines(rows: pd.DataFrame) -> list[str]:
    """The distinct descriptions of the NUTS references (or why none was built) of ``rows``."""
    return [text for text in dict.fromkeys(text_column(rows, schema.REFERENCE)) if text]


def reference_table(rows: pd.DataFrame, estimates: pd.DataFrame) -> pd.DataFrame:
    """Per ok cell compared with a NUTS reference: KL = AIS log p(x) - ELBO ± SE, the worst
    standardized errors of q's posterior means and sds (with their coordinates), the 2-Wasserstein
    distance to the reference draws ± SE beside the reference's own floor, and the PSIS k-hat."""
    ok = in_display_order(ok_rows(rows))
    ok = ok[text_column(ok, KL_METHOD) == REFERENCE_METHOD]
    if ok.empty:
        return pd.DataFrame()
    moments = per_cell(ok, estimates, MEAN_ERROR_QUANTITY)
    distance = per_cell(ok, estimates, WASSERSTEIN_QUANTITY)
    khat = per_cell(ok, estimates, PARETO_K_QUANTITY)

    def extra(frame: pd.DataFrame, name: str) -> pd.Series:
        return frame["extras"].map(lambda extras: extras.get(name, np.nan))

    table = pd.DataFrame(
        {
            "backend": ok[BACKEND],
            "guide": ok[GUIDE],
            "seed": ok[SEED],
            "KL(q||p)": column(ok, KL),
            "KL SE": column(ok, schema.KL_SE),
            "KL reliability": text_column(ok, schema.KL_RELIABILITY),
            "worst mean error (sd)": moments["value"],
            "mean error SE": moments["se"],
            "at": extra(moments, "coordinate"),
            "worst sd error": extra(moments, "worst_sd_error"),
            "sd error SE": extra(moments, "worst_sd_error_se"),
            "sd at": extra(moments, "worst_sd_coordinate"),
            "W2": distance["value"],
            "W2 SE": distance["se"],
            "W2 floor": extra(distance, "floor"),
            "k-hat": khat["value"],
        }
    )
    if (table["KL reliability"] == RELIABLE).all():
        table = table.drop(columns="KL reliability")
    return table.drop(columns=[c for c in table if table[c].isna().all()]).reset_index(drop=True)


@dataclass(frozen=True)
class References(SectionDefaults):
    """Models measured against a NUTS reference."""

    title: str = words.REFERENCES_TITLE

    def headline(self, context: Context) -> list[Block]:
        ok = ok_rows(context.rows)
        by_reference = ok[text_column(ok, schema.KL_METHOD) == REFERENCE_METHOD]
        if by_reference.empty:
            return []
        models = model_names(by_reference)
        worst = by_reference.loc[by_reference[schema.KL].idxmax()]
        best = by_reference.loc[by_reference[schema.KL].idxmin()]
        label = cell_labels(by_reference, with_model=len(models) > 1)
        if len(by_reference) == 1:
            span = f"{format_pm(best[schema.KL], best.get(schema.KL_SE))} nats ({label[best.name]})"
        else:
            span = (
                f"from {format_pm(best[schema.KL], best.get(schema.KL_SE))} nats ({label[best.name]}) to "
                f"{format_pm(worst[schema.KL], worst.get(schema.KL_SE))} ({label[worst.name]})"
            )
        return [
            Text(
                f"{words.listing(models)} {'has' if len(models) == 1 else 'have'} no closed form: in "
                f"{'its' if len(models) == 1 else 'their'} {words.count(len(by_reference), 'cell')} the "
                f"KL is the NUTS reference's AIS log p(x) minus the ELBO, {span}."
            )
        ]

    def build(self, context: Context) -> list[Block]:
        ok = ok_rows(context.rows)
        by_reference = ok[text_column(ok, schema.KL_METHOD) == REFERENCE_METHOD]
        blocks: list[Block] = []
        for model in model_names(by_reference):
            built = model_part(context, model, of_model(by_reference, model))
            if built:
                blocks += [Heading(model, 3), *built]
        if blocks:
            return blocks
        exact = model_names(with_exact(ok))
        if not exact:
            return []
        one = len(exact) == 1
        return [
            Text(
                f"{words.listing(exact, most=10)} {'has' if one else 'have'} an exact log p(x): no NUTS "
                f"reference was needed for {'it' if one else 'them'}.",
                note=True,
            )
        ]


register(References())
