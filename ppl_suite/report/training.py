"""How the ELBO rises during SVI. With θ fixed, log p(x) is a flat line and the ELBO climbs towards it
(the KL is what falls). With θ learned (cells that store a training curve, artifacts ``training.*``),
log p_θ(x), the ELBO and the KL at checkpoints, and the ELBO's gain split into Δlog p_θ(x) and −ΔKL
(the headline: stacked bars, with SEs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ppl_suite import schema
from ppl_suite.report import drawing, numbers, words
from ppl_suite.report.document import Block, Context, Heading, Image, SectionDefaults, Table, Text, register
from ppl_suite.report.rows import (
    REFERENCE_METHOD,
    cell_labels,
    in_display_order,
    model_labels,
    model_names,
    of_model,
    ok_rows,
    text_column,
)

SMOOTHING_WINDOWS = 20  # a training curve is smoothed by a running mean over steps / this many steps
SETTLED = 0.1  # the y range of a fixed-θ trace starts after this fraction of the steps
GAIN_COLORS = {"evidence": "#1f6fb4", "kl_drop": "#f0a04b"}


# ----------------------------------------------------------------------------------------- figures
@drawing.styled
def draw_traces(panels: list[dict[str, Any]], title: str, path: Path) -> Path:
    """Fixed θ: the ELBO over SVI steps (running mean, linear axis) per backend, one panel per guide,
    and log p(x) as a flat line above it. ``panels``: dicts with guide, evidence (float), lines (dicts
    with backend, step, smooth) and low (the y axis's lower end)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(drawing.WIDTH, 2.9 * int(np.ceil(len(panels) / 2)) + 0.5), layout="constrained")
    axes = drawing.panel_grid(figure, len(panels), 2)
    for axis, panel in zip(axes, panels, strict=True):
        for line in panel["lines"]:
            axis.plot(
                line["step"], line["smooth"], color=drawing.backend_color(line["backend"]),
                linestyle=drawing.backend_style(line["backend"]), linewidth=1.5,
                label=f"ELBO ({line['backend']})",
            )  # fmt: skip
        axis.axhline(panel["evidence"], color="black", linewidth=1.4, label=panel["evidence_name"])
        top = panel["evidence"] + 0.15 * (panel["evidence"] - panel["low"])
        axis.set_ylim(panel["low"], top)
        axis.ticklabel_format(axis="y", useOffset=False)
        axis.set_title(f"guide: {panel['guide']}", fontsize=10)
        axis.set_xlabel("SVI step")
        axis.set_ylabel("nats")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=len(handles), frameon=False)
    figure.suptitle(title, fontweight="bold")
    return drawing.save(figure, path)


@drawing.styled
def draw_learning(curves: list[dict[str, Any]], title: str, path: Path) -> Path:
    """Learned θ: log p_θ(x) (solid) and the ELBO (dotted) on the left, KL(q || p_θ(z|x)) on a log axis on
    the right, at the stored checkpoints, one line per cell (colour: backend). ``curves``: dicts with
    backend, step, log_evidence, elbo, kl."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    figure = Figure(figsize=(drawing.WIDTH, 3.6), layout="constrained")
    left, right = figure.subplots(1, 2)
    for curve in curves:
        color = drawing.backend_color(curve["backend"])
        left.plot(curve["step"], curve["log_evidence"], color=color, linewidth=1.3, alpha=0.8)
        left.plot(curve["step"], curve["elbo"], color=color, linewidth=1.3, linestyle=":", alpha=0.8)
        kl = np.asarray(curve["kl"], dtype=float)
        right.plot(curve["step"], np.where(kl > 0, kl, np.nan), color=color, linewidth=1.3, alpha=0.8)
    left.set_title("log p_θ(x) and ELBO", fontsize=10)
    left.set_xlabel("SVI step (checkpoints)")
    left.set_ylabel("nats")
    right.set_title("KL(q || p_θ(z|x))", fontsize=10)
    if any(np.any(np.asarray(c["kl"], dtype=float) > 0) for c in curves):
        drawing.log_scale(right, "y")
    else:
        right.text(0.5, 0.5, "KL = 0 at every checkpoint:\nq is the exact posterior (enumerated)",
                   transform=right.transAxes, ha="center", va="center", fontsize=9)  # fmt: skip
    right.set_xlabel("SVI step (checkpoints)")
    right.set_ylabel("nats (log scale)")
    backends = list(dict.fromkeys(c["backend"] for c in curves))
    handles = [Line2D([], [], color=drawing.backend_color(b), label=b) for b in backends]
    handles += [
        Line2D([], [], color="#555555", label="log p_θ(x)"),
        Line2D([], [], color="#555555", linestyle=":", label="ELBO"),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    figure.suptitle(title, fontweight="bold")
    return drawing.save(figure, path)


@drawing.styled
def draw_gains(frame: pd.DataFrame, path: Path) -> Path:
    """The ELBO's gain over training per cell as stacked bars: Δlog p_θ(x) (blue) then −ΔKL (orange)
    from its end; the measured ELBO gain ± SE as a black tick, where the two bars end when the identity
    holds; one panel per model. ``frame``: columns model, cell, gain, gain_se, evidence, kl_drop."""
    from matplotlib.figure import Figure

    models = list(dict.fromkeys(frame["model"]))
    heights = [int((frame["model"] == m).sum()) + 1.2 for m in models]
    figure = Figure(figsize=(drawing.WIDTH, 0.9 + 0.22 * sum(heights)), layout="constrained")
    axes = figure.subplots(len(models), 1, squeeze=False, height_ratios=heights)[:, 0]
    for axis, model in zip(axes, models, strict=True):
        part = frame[frame["model"] == model]
        y = np.arange(len(part))
        axis.barh(y, part["evidence"], height=0.65, color=GAIN_COLORS["evidence"], label="Δlog p_θ(x)")
        axis.barh(
            y, part["kl_drop"], left=part["evidence"], height=0.65, color=GAIN_COLORS["kl_drop"],
            label="−ΔKL(q || p_θ(z|x))",
        )  # fmt: skip
        axis.errorbar(
            part["gain"], y, xerr=part["gain_se"], fmt="|", color="black", markersize=12, capsize=3,
            label="ELBO gain ± SE (measured)",
        )  # fmt: skip
        axis.axvline(0.0, color="black", linewidth=0.8)
        axis.set_yticks(y, part["cell"], fontsize=8)
        axis.set_ylim(len(part) - 0.5, -0.5)
        axis.set_title(model, fontsize=9, loc="left")
    axes[-1].set_xlabel("nats gained from the first to the last checkpoint (each model its own scale)")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=3, frameon=False)
    return drawing.save(figure, path)


# ----------------------------------------------------------------------------------------- numbers
def learned_cells(context: Context) -> pd.DataFrame:
    """The ok cells that stored a training curve (learned θ), in display order."""
    ok = in_display_order(ok_rows(context.rows))
    step = schema.training_artifact("step")
    return ok[[step in context.artifacts(digest) for digest in ok[schema.DIGEST]]] if not ok.empty else ok


def learned_models(context: Context) -> list[str]:
    """The models of this run with a stored training curve."""
    return model_names(learned_cells(context))


def gains(context: Context) -> pd.DataFrame:
    """Per learned-θ cell: the ELBO's gain split (``numbers.gain_split``), with the cell's label."""
    cells = learned_cells(context)
    lines = [
        {"model": model, "cell": label, **numbers.gain_split(numbers.curve_of(context.artifacts(digest)))}
        for model, label, digest in zip(
            model_labels(cells), cell_labels(cells), cells[schema.DIGEST], strict=True
        )
    ]
    return pd.DataFrame(lines, columns=["model", "cell", *numbers.GAIN_COLUMNS])


def gain_sentence(model: str, frame: pd.DataFrame) -> str:
    """One learned-θ model's split in words: the first cell's numbers, then the range over its cells."""
    first = frame.iloc[0]
    text = (
        f"{model}, {first['cell']}: from step {first['start']:.0f} to {first['end']:.0f} the ELBO rose by "
        f"{words.nats(first['gain'], first['gain_se'])} = Δlog p_θ(x) "
        f"{words.nats(first['evidence'], first['evidence_se'])} + (−ΔKL) "
        f"{words.nats(first['kl_drop'], first['kl_drop_se'])}."
    )
    if len(frame) > 1:
        share = (frame["evidence"] / frame["gain"]).round(2)
        if share.min() == share.max():
            part = f"log p_θ(x) gave {share.min():.0%} of the gain in each"
        else:
            part = f"log p_θ(x) gave {share.min():.0%} to {share.max():.0%} of the gain"
        drop = (
            "the KL stayed 0 (q is the exact posterior)"
            if (frame["kl_drop"] == 0).all()
            else f"the KL fell by {frame['kl_drop'].min():.3g} to {frame['kl_drop'].max():.3g} nats"
        )
        text += f" Over its {len(frame)} cells, {part}; {drop}."
    return text


GAIN_FORMATS = {"from step": "{:.0f}", "to step": "{:.0f}"}


def _steps(curves: list[dict[str, Any]]) -> str:
    """The stored checkpoint steps of the first curve, in words (``0, 150, 300, ..., 3000``)."""
    steps = [f"{step:.0f}" for step in np.asarray(curves[0].get("step", []), dtype=float)]
    return ", ".join(steps) if len(steps) <= 5 else ", ".join([*steps[:3], "...", steps[-1]])


def gain_table(frame: pd.DataFrame) -> Table:
    table = pd.DataFrame(
        {
            "cell": frame["cell"],
            "from step": frame["start"],
            "to step": frame["end"],
            "ELBO gain": frame["gain"],
            "ELBO gain SE": frame["gain_se"],
            "Δlog p_θ(x)": frame["evidence"],
            "Δlog p SE": frame["evidence_se"],
            "−ΔKL": frame["kl_drop"],
            "−ΔKL SE": frame["kl_drop_se"],
        }
    )
    return Table(
        table,
        caption="ELBO gain = Δlog p_θ(x) + (−ΔKL), per cell, first to last checkpoint; an exact "
        "log p_θ(x) or closed-form KL has SE 0.",
        formats=GAIN_FORMATS,
        pm={"ELBO gain": "ELBO gain SE", "Δlog p_θ(x)": "Δlog p SE", "−ΔKL": "−ΔKL SE"},
        details=len(table) > 4,
    )


# ---------------------------------------------------------------------------------------- sections
def _evidence_name(rows: pd.DataFrame) -> str:
    """What log p(x) is for these cells: exact, or the NUTS reference's AIS estimate."""
    by_reference = (text_column(rows, schema.KL_METHOD) == REFERENCE_METHOD).any()
    return "log p(x) by the reference's AIS" if by_reference else "exact log p(x)"


def _trace_panels(context: Context, rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Per guide, the first data set's cells: each backend's smoothed ELBO over steps."""
    ok = in_display_order(ok_rows(rows))
    if ok.empty:
        return []
    first = ok[(ok[schema.DATA_SEED] == ok[schema.DATA_SEED].min())]
    first = first[first[schema.SEED] == first[schema.SEED].min()]
    panels = []
    for guide, group in first.groupby(schema.GUIDE, sort=False):
        lines, evidence, settled = [], np.nan, []
        for _, row in group.iterrows():
            loss = context.trace(row[schema.DIGEST])
            evidence = row.get(schema.LOG_EVIDENCE, np.nan)
            if loss is None or loss.size == 0 or not np.isfinite(evidence):
                continue
            elbo = pd.Series(-loss)
            smooth = elbo.rolling(max(len(elbo) // SMOOTHING_WINDOWS, 1), min_periods=1).mean().to_numpy()
            lines.append(
                {"backend": row[schema.BACKEND], "step": np.arange(1, len(elbo) + 1), "smooth": smooth}
            )
            settled.append(smooth[int(SETTLED * len(smooth)) :])
        if lines:
            low = float(np.nanmin(np.concatenate(settled)))
            span = max(float(evidence) - low, 1e-3)
            panels.append(
                {
                    "guide": guide,
                    "evidence": float(evidence),
                    "evidence_name": f"{_evidence_name(group)} (flat: q cannot move it)",
                    "lines": lines,
                    "low": low - 0.1 * span,
                }
            )
    return panels


@dataclass(frozen=True)
class Training(SectionDefaults):
    """Per model: the ELBO during SVI (fixed θ) or log p_θ(x), ELBO and KL at checkpoints (learned θ)."""

    title: str = words.TRAINING_TITLE

    def headline(self, context: Context) -> list[Block]:
        frame = gains(context)
        if frame.empty:
            return []
        blocks: list[Block] = [
            Text(gain_sentence(model, part)) for model, part in frame.groupby("model", sort=False)
        ]
        path = context.draw("training-gains", draw_gains, frame)
        blocks.append(
            Image(
                path,
                "Where the ELBO's gain came from, per cell with learned θ: Δlog p_θ(x) (blue) plus the "
                "fall of the KL (orange) ends at the measured ELBO gain (black tick ± SE).",
                alt="stacked bars: ELBO gain per cell split into the rise of log p_theta(x) and the fall "
                "of the KL",
            )
        )
        return blocks

    def build(self, context: Context) -> list[Block]:
        rows = context.rows
        if ok_rows(rows).empty:
            return []
        learned = set(learned_models(context))
        cells = learned_cells(context)
        frame = gains(context)
        blocks: list[Block] = [
            Text(
                "With θ fixed, log p(x) is a flat line: the ELBO can only climb towards it, and the "
                "distance left is the KL. With θ learned, log p_θ(x) moves too, and the ELBO rises "
                "through both. Curves are the training loss's running mean (−ELBO estimate per step, "
                f"over 1/{SMOOTHING_WINDOWS} of the run), for the first data set and seed; the first "
                f"{SETTLED:.0%} of the steps may start below the axis."
            )
        ]
        for model in model_names(ok_rows(rows)):
            blocks.append(Heading(model, 3))
            model_rows = of_model(rows, model)
            if model in learned:
                part = cells[model_labels(cells) == model]
                curves = [
                    {"backend": backend, **numbers.curve_of(context.artifacts(digest))}
                    for backend, digest in zip(part[schema.BACKEND], part[schema.DIGEST], strict=True)
                ]
                path = context.draw(f"{model}-learning", draw_learning, curves, f"{model}: learning θ")
                blocks.append(
                    Image(
                        path,
                        f"{model}, every cell at the stored checkpoints: log p_θ(x) at the current θ "
                        "(solid) and the ELBO (dotted) rise together; the KL (right, log scale) falls. "
                        "log p_θ(x) and the ELBO differ by the KL, too small to see at the left's scale. "
                        f"Checkpoints: steps {_steps(curves)}; the rise before the first one after 0, "
                        "where θ moves most, is a single segment.",
                        alt=f"{model}: log p_theta(x), ELBO and KL over training",
                    )
                )
                blocks.append(gain_table(frame[frame["model"] == model]))
                continue
            panels = _trace_panels(context, model_rows)
            if not panels:
                blocks.append(words.absent("training traces with a log p(x)"))
                continue
            path = context.draw(f"{model}-traces", draw_traces, panels, f"{model}: ELBO during SVI")
            blocks.append(
                Image(
                    path,
                    f"{model}: the ELBO during SVI (running mean; one line per backend) below the flat "
                    f"{_evidence_name(model_rows)} of the same data set (black); the distance between "
                    "them is the KL.",
                    alt=f"{model}: ELBO traces rising to the flat log p(x)",
                )
            )
        return blocks


register(Training())
