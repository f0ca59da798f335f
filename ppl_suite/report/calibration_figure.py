"""The calibration figure: the sd of z = (estimate - exact) / SE per estimator and guide regime, beside
the interval it falls in for standard normal z's (for a bound whose gap is no SE, IWAE, the sd of
(estimate - its mean) / SE: the calibration table says which).

Drawing only: every number drawn is a column of the calibration table (``ppl_suite.calibrate``):
``z_sd`` and its acceptance interval ``z_sd_low``..``z_sd_high``, and the verdict, which picks the
marker (filled: ok; hollow: the estimator labelled itself unreliable; cross: failed; an arrow at the
edge, with the value written beside it, when z_sd lies off the axis). Rows without a
z (diagnostics, approximations, SE-0 values, estimators that do not apply) are not drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ppl_suite.report.drawing import DPI, STYLE, WIDTH

REGIME_COLORS = {
    "exact": "#2e9e44", "scaled_0.9": "#66a61e", "slightly_off": "#1f6fb4", "scaled_0.85": "#7570b3",
    "scaled_0.75": "#e6ab02", "scaled_0.7": "#d95f02", "badly_off": "#c62828", "none": "#555555",
}  # fmt: skip
PANEL_HEIGHT = 3.2  # inches per model
OFFSET = 0.1  # horizontal spread of one estimator's regimes (eight at most: 0.7 in all)
Y_RANGE = (0.25, 4.0)  # z_sd outside is drawn at the edge as an arrow, its value written beside it
TICKS = (0.25, 0.5, 1.0, 2.0, 4.0)


def _marker(verdict: str, z_sd: float) -> dict:
    """Marker by verdict (cross: failed; hollow: labelled unreliable; filled: ok), an arrow at the
    edge when z_sd lies outside Y_RANGE."""
    shape = "x" if verdict.startswith("fail") else "o"
    if not Y_RANGE[0] <= z_sd <= Y_RANGE[1]:
        shape = "v" if z_sd < Y_RANGE[0] else "^"
    return {"marker": shape, "s": 60 if shape == "x" else 40, "hollow": verdict.startswith("unreliable")}


def _draw_point(ax: Any, x: float, row: pd.Series) -> None:
    """One regime's z_sd at ``x``: its acceptance interval as a bar behind it, its marker (clipped to
    Y_RANGE, then annotated with its value)."""
    color = REGIME_COLORS.get(row["regime"], "black")
    ax.plot([x, x], [row["z_sd_low"], row["z_sd_high"]], color=color, alpha=0.3, linewidth=6)
    style = _marker(str(row["verdict"]), row["z_sd"])
    hollow = style.pop("hollow")
    y = min(max(row["z_sd"], Y_RANGE[0]), Y_RANGE[1])
    colors = {"edgecolors": color, "facecolors": "none"} if hollow else {"color": color}
    ax.scatter([x], [y], zorder=3, **colors, **style)
    if y != row["z_sd"]:
        failed = " failed" if str(row["verdict"]).startswith("fail") else ""
        ax.annotate(
            f"{row['z_sd']:.2g}{failed}",
            (x, y),
            xytext=(4, 0),
            textcoords="offset points",
            fontsize=7,
            color=color,
            va="center",
        )


def draw_calibration(table: pd.DataFrame, path: Path, level: float) -> Path:
    """One panel per model: z_sd (log scale) per estimator, a point per regime with its acceptance
    interval as a bar behind it, and a line at 1; written to ``path`` (PNG)."""
    shown = table[np.isfinite(pd.to_numeric(table["z_sd"], errors="coerce"))]
    models = list(dict.fromkeys(table["model"]))
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(WIDTH, PANEL_HEIGHT * max(len(models), 1)), dpi=DPI, layout="constrained")
        axes = figure.subplots(max(len(models), 1), 1, squeeze=False)[:, 0]
        for ax, model in zip(axes, models, strict=False):
            rows = shown[shown["model"] == model]
            names = list(dict.fromkeys(rows["estimator"]))
            regimes = [r for r in REGIME_COLORS if r in set(rows["regime"])]
            for _, row in rows.iterrows():
                x = names.index(row["estimator"]) + OFFSET * (
                    regimes.index(row["regime"]) - (len(regimes) - 1) / 2
                )
                _draw_point(ax, x, row)
            ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
            ax.set_yscale("log")
            ax.set_ylim(Y_RANGE[0] / 1.15, Y_RANGE[1] * 1.15)
            ax.set_yticks(TICKS, [f"{t:g}" for t in TICKS])
            ax.minorticks_off()
            ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
            ax.set_xlim(-0.6, max(len(names), 1) - 0.4)
            ax.set_ylabel("sd of z")
            ax.set_title(
                f"{model}: sd of (estimate - exact) / SE (a bound: about its own mean); "
                f"bars: {100 * level:g}% interval for N(0, 1)"
            )
        handles = [
            Line2D([], [], color=c, marker="o", linestyle="", label=r) for r, c in REGIME_COLORS.items()
        ]
        handles += [
            Line2D([], [], color="black", marker="o", linestyle="", label="ok"),
            Line2D(
                [],
                [],
                color="black",
                marker="o",
                markerfacecolor="none",
                linestyle="",
                label="labelled unreliable",
            ),
            Line2D([], [], color="black", marker="x", linestyle="", label="failed"),
        ]
        figure.legend(handles=handles, loc="outside lower center", ncol=len(handles))
        figure.savefig(path)
    return Path(path)
