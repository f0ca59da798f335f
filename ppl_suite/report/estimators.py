"""Estimators of log p(x) against the exact value, per model: errors in panels by estimator family
(lower bounds, unbiased, upper bounds, approximations...), unreliable ones marked; the IWAE bound over
K on a log-10 axis; the table of every estimate, folded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ppl_suite.report import drawing, tables, words
from ppl_suite.report.document import Block, Context, Heading, Image, SectionDefaults, Table, Text, register

IWAE_K_MAX = 10_000  # the IWAE axis reaches this K, whatever the run computed


@drawing.styled
def draw_errors(frame: pd.DataFrame, title: str, path: Path) -> Path:
    """Estimate − exact log p(x) ± SE, one panel per estimator (titled with its kind: lower bound,
    upper bound, unbiased...) on its own linear axis, one row per backend (or "once per problem" for a
    guide-free estimate), one marker per cell. An estimate without a valid SE (unreliable, or an
    approximation) is an open marker without a bar.

    ``frame``: columns estimator, kind, backend, error, se (NaN where not valid), reliable."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    names = list(dict.fromkeys(frame["estimator"]))
    rows = [list(dict.fromkeys(frame[frame["estimator"] == name]["backend"])) for name in names]
    columns = 2 if len(names) > 1 else 1
    height = max(max(len(r) for r in rows) * 0.32 + 0.9, 1.5)
    figure = Figure(
        figsize=(drawing.WIDTH, height * int(np.ceil(len(names) / columns)) + 0.6), layout="constrained"
    )
    axes = drawing.panel_grid(figure, len(names), columns)
    for axis, name, backends in zip(axes, names, rows, strict=True):
        part = frame[frame["estimator"] == name]
        power = drawing.power_of(float(np.nanmax(np.abs(part["error"]) + part["se"].fillna(0))))
        part = part.assign(error=part["error"] / 10.0**power, se=part["se"] / 10.0**power)
        for row, backend in enumerate(backends):
            chosen = part[part["backend"] == backend]
            y = np.full(len(chosen), float(row))
            reliable = chosen["reliable"].to_numpy(dtype=bool)
            color = drawing.backend_color(backend)
            axis.errorbar(
                chosen["error"][reliable], y[reliable], xerr=chosen["se"][reliable].fillna(0), fmt="o",
                color=color, markersize=3.5, capsize=2, alpha=0.8,
            )  # fmt: skip
            axis.plot(
                chosen["error"][~reliable], y[~reliable], "o", color=color, markerfacecolor="white",
                markersize=5,
            )  # fmt: skip
        axis.axvline(0.0, **drawing.EXACT_STYLE)
        axis.set_yticks(range(len(backends)), backends, fontsize=8)
        axis.set_ylim(len(backends) - 0.5, -0.5)
        axis.margins(x=0.12)
        axis.set_title(f"{name} ({part['kind'].iloc[0]}), {drawing.unit(power)}", fontsize=9, loc="left")
        axis.tick_params(axis="x", labelsize=8)
        axis.xaxis.set_major_locator(MaxNLocator(4))
        axis.ticklabel_format(axis="x", useOffset=False, style="plain")
        axis.set_xlabel("estimate − exact log p(x)", fontsize=8)
    backends = list(dict.fromkeys(frame["backend"]))
    handles = [
        Line2D([], [], marker="o", linestyle="", color=drawing.backend_color(b), label=b) for b in backends
    ]
    if not frame["reliable"].all():
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                markerfacecolor="white",
                color="#555555",
                label="no valid SE",
            )
        )
    handles.append(Line2D([], [], **drawing.EXACT_STYLE, label="exact log p(x)"))
    figure.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    figure.suptitle(title, fontweight="bold")
    return drawing.save(figure, path)


@drawing.styled
def draw_iwae(curves: list[dict[str, Any]], title: str, path: Path) -> Path:
    """log p(x) − IWAE_K ± SE over K (log-10 axis up to IWAE_K_MAX, linear nats), one line per cell
    (colour: backend, style: guide); 0, the dashed line, is the exact log p(x).

    ``curves``: dicts with backend, guide, k, gap, se (arrays)."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    figure = Figure(figsize=(drawing.WIDTH, 3.6), layout="constrained")
    axis = figure.subplots()
    guides = list(dict.fromkeys(c["guide"] for c in curves))
    for c in curves:
        style = drawing.SEED_STYLES[guides.index(c["guide"]) % len(drawing.SEED_STYLES)]
        axis.errorbar(
            c["k"], c["gap"], yerr=c["se"], color=drawing.backend_color(c["backend"]), linestyle=style,
            marker="o", markersize=3, capsize=2, alpha=0.8,
        )  # fmt: skip
    axis.axhline(0.0, **drawing.EXACT_STYLE)
    drawing.log_scale(axis, "x")
    axis.set_xlim(0.8, IWAE_K_MAX * 1.25)
    axis.set_xlabel("K, importance samples per bound (K = 1: the ELBO)")
    axis.set_ylabel("log p(x) − IWAE_K (nats)")
    backends = list(dict.fromkeys(c["backend"] for c in curves))
    handles = [Line2D([], [], color=drawing.backend_color(b), label=b) for b in backends]
    handles += [
        Line2D([], [], color="#555555", linestyle=drawing.SEED_STYLES[i % 4], label=f"guide {g}")
        for i, g in enumerate(guides)
    ]
    handles.append(Line2D([], [], **drawing.EXACT_STYLE, label="exact log p(x)"))
    figure.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6), frameon=False)
    figure.suptitle(title, fontweight="bold")
    return drawing.save(figure, path)


TABLE_CAPTION = (
    "Every estimate of log p(x): value ± SE, its error against the exact value in nats and in SE units, "
    "likelihood evaluations and seconds. Guide-free estimators (AIS, BDMC, Laplace, harmonic mean) "
    f'ran once per data set ("{tables.GUIDE_FREE}") unless θ is learned, when they depend on each '
    "fit's θ and ran per cell. Only a reliable estimate has an SE: an approximation (Laplace) shows "
    "its error in nats alone; an estimate whose diagnostic says its SE cannot be trusted shows "
    '"unreliable" and the diagnostic (e.g. a PSIS k-hat that leaves the weights\' variance possibly '
    "infinite). IWAE is a lower bound: its SE is the bound's own, its error in nats is how far the "
    "bound stays below log p(x), and it has no error in SE units."
)


def model_part(context: Context, model: str, rows: pd.DataFrame) -> list[Block]:
    """The errors figure, the IWAE curves and the table of one model with an exact log p(x)."""
    table = tables.estimator_table(rows, context.estimates, context.problems)
    blocks: list[Block] = []
    if not table.empty:
        backends = tables.estimate_backends(rows, context.problems)
        frame = pd.DataFrame(
            {
                "estimator": table["estimator"],
                "kind": table["kind"],
                "backend": table["cell"].map(backends),
                "error": table["error (nats)"],
                "se": table["SE"],
                "reliable": table["reliability"] == tables.RELIABLE,
            }
        ).dropna(subset=["error"])
        if not frame.empty:
            path = context.draw(
                f"{model}-estimators", draw_errors, frame, f"{model}: estimates of log p(x) − exact"
            )
            unreliable = int((~frame["reliable"]).sum())
            blocks.append(
                Image(
                    path,
                    "Each estimate minus the exact log p(x) ± SE; one panel per estimator (its kind in "
                    "brackets), each on its own linear scale; one marker per cell (colour: backend) or "
                    f"per data set for the guide-free ones. Open markers ({unreliable} here) have no "
                    "valid SE. A lower bound sits left of 0 and an upper bound right of it, within a "
                    "few SE: AIS (lower) and BDMC (upper) together sandwich log p(x).",
                    alt=f"{model}: estimator errors against the exact log p(x), by kind",
                )
            )
        blocks.append(
            Table(
                table.drop(columns=["kind"]),
                caption=TABLE_CAPTION,
                formats={
                    "log p(x)": "{:.4f}",
                    "estimate": "{:.4f}",
                    "error (nats)": "{:+.3g}",
                    "error (SE)": "{:+.2f}",
                    "evaluations": "{:,.0f}",
                    "seconds": "{:.2f}",
                },
                pm={"estimate": "SE"},
                details=True,
            )
        )
    curves = [
        {**curve, "guide": curve["label"].split(" / ")[1]}
        for curve in tables.iwae_curves(rows, context.estimates)
    ]
    if curves:
        path = context.draw(f"{model}-iwae", draw_iwae, curves, f"{model}: IWAE bound over K")
        blocks.append(
            Image(
                path,
                f"How far the IWAE bound with K importance samples stays below the exact log p(x), ± SE, "
                f"K on a log-10 axis to {IWAE_K_MAX:,}. K = 1 is the ELBO (the distance there is the KL); "
                "the bound tightens as K grows, fastest where q is close to the posterior. Points "
                "below 0 are within their SE of it: there the bound is already within noise of "
                "log p(x).",
                alt=f"{model}: IWAE bound gap over K",
            )
        )
    return blocks


@dataclass(frozen=True)
class Estimators(SectionDefaults):
    """Per model with an exact log p(x): estimator errors and the IWAE curves."""

    title: str = words.ESTIMATORS_TITLE

    def build(self, context: Context) -> list[Block]:
        rows = tables.with_exact(tables.ok_rows(context.rows))
        blocks: list[Block] = []
        for model in tables.models(rows):
            built = model_part(context, model, tables.of_model(rows, model))
            if built:
                blocks += [Heading(model, 3), *built]
        if not blocks:
            return []
        return [
            Text(
                "Other ways to estimate log p(x), checked where it is known exactly: importance sampling "
                "with q as proposal, IWAE, AIS and BDMC (which sandwich it), Laplace, the harmonic mean "
                "(the documented bad example), per model."
            ),
            *blocks,
        ]


register(Estimators())
