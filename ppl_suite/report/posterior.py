"""q against the posterior, per model: marginal densities of each backend's q beside the exact (or NUTS
reference) posterior, a pair plot where the posterior is most correlated (what a mean-field q cannot
hold), and PSIS k-hat with what it means for a nearly exact q."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ppl_suite import schema
from ppl_suite.report import drawing, numbers, words
from ppl_suite.report.document import Block, Context, Heading, Image, SectionDefaults, Table, Text, register
from ppl_suite.report.rows import (
    PARETO_K_QUANTITY,
    REFERENCE_METHOD,
    cell_labels,
    column,
    in_display_order,
    model_names,
    of_model,
    ok_rows,
    per_cell,
    text_column,
)
from ppl_suite.schema import BACKEND, DATA_SEED, GUIDE, SEED

PSIS_THRESHOLDS = (0.5, 0.7)  # good below the first, unreliable from the second (Vehtari et al. 2024)
NEAR_EXACT_KL = 0.01  # nats: a q this close to the posterior gives nearly constant importance weights
PAIR_MIN_CORRELATION = 0.3  # a pair plot is drawn where the posterior's strongest |correlation| exceeds it
PAIR_POINTS = 1500  # draws shown per source in a pair plot
POSTERIOR_COLOR = "#555555"


def _density(axis: Any, density: numbers.Density, color: str, fill: bool) -> None:
    """``density`` drawn into ``axis`` with the artists ArviZ's ``plot_dist`` draws: a KDE's line and
    its fill (invisible where ``fill`` is False, but still taking the axis down to 0), or a histogram's
    bars (filled or as a step line) with a tick per bin."""
    if density.kind == "hist":
        style = {"alpha": 0.35, "rwidth": 0.8} if fill else {"histtype": "step", "linewidth": 1.5}
        axis.hist(density.x[:-1], bins=density.x, weights=density.y, align="left", color=color, **style)
        axis.set_xticks(density.x[:-1])
        return
    axis.set_ylim(0, auto=True)
    axis.plot(density.x, density.y, color=color, linewidth=1.2 if fill else 1.6)
    axis.fill_between(density.x, density.y, color=color, alpha=0.25 if fill else 0.0)


def marginal_densities(
    labels: list[str], rows: list[dict[str, Any]], posterior: str, title: str
) -> tuple[list[str], list[dict[str, Any]], str, str]:
    """``draw_marginals``' data from draws: in each row, every set of draws (draws x coordinates)
    replaced by its coordinates' densities (``numbers.marginal_density``)."""

    def densities(draws: np.ndarray | None) -> list[numbers.Density] | None:
        return None if draws is None else [numbers.marginal_density(draws[:, i]) for i in range(len(labels))]

    shown = [
        {
            "name": row["name"],
            "reference": densities(row["reference"]),
            "fitted": {backend: densities(draws) for backend, draws in row["fitted"].items()},
        }
        for row in rows
    ]
    return labels, shown, posterior, title


@drawing.styled
def draw_marginals(
    labels: list[str], rows: list[dict[str, Any]], posterior: str, title: str, path: Path
) -> Path:
    """One row of panels per backend's q (``rows``: dicts with name, reference (a density per
    coordinate, or None), fitted: backend -> q's density per coordinate; ``marginal_densities``), one
    panel per coordinate: the posterior filled grey, the q a line of the backend's colour; with one
    coordinate, the backends side by side. Density axes."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    lines = [(backend, row["reference"], shown) for row in rows for backend, shown in row["fitted"].items()]
    across = len(labels) == 1  # one coordinate: the backends side by side
    shape = (1, len(lines)) if across else (len(lines), len(labels))
    figure = Figure(figsize=(drawing.WIDTH, 1.7 * shape[0] + 0.9), layout="constrained")
    axes = figure.subplots(*shape, squeeze=False, sharex="col" if not across else "all")
    for k, (backend, reference, shown) in enumerate(lines):
        panels = axes[0, k : k + 1] if across else axes[k]
        for i, axis in enumerate(panels):
            if reference is not None:
                _density(axis, reference[i], POSTERIOR_COLOR, fill=True)
            _density(axis, shown[i], drawing.backend_color(backend), fill=False)
            axis.set_title(f"{labels[i]}, {backend}" if across else labels[i] if k == 0 else "", fontsize=9)
            axis.tick_params(labelsize=7)
            axis.locator_params(axis="x", nbins=4)
        panels[0].set_ylabel(f"q ({backend})\ndensity", fontsize=8, color=drawing.backend_color(backend))
    backends = list(dict.fromkeys(backend for backend, _, _ in lines))
    handles: list[Any] = [
        Patch(facecolor=POSTERIOR_COLOR, alpha=0.3, edgecolor=POSTERIOR_COLOR, label=posterior)
    ]
    handles += [
        Line2D([], [], color=drawing.backend_color(b), linewidth=1.6, label=f"q ({b})") for b in backends
    ]
    figure.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    figure.suptitle(title, fontweight="bold")
    return drawing.save(figure, path)


@drawing.styled
def draw_pair(
    names: tuple[str, str],
    reference: np.ndarray,
    fitted: dict[str, np.ndarray],
    correlations: list[float],
    posterior: str,
    title: str,
    path: Path,
) -> Path:
    """Two coordinates' joint draws: the posterior (left) and each backend's q (one panel each), on the
    same axes; the title of each panel gives the draws' correlation (``correlations``, the posterior's
    first, then the backends' in the order of ``fitted``)."""
    from matplotlib.figure import Figure

    sources = {posterior: (reference, POSTERIOR_COLOR)} | {
        f"q ({b})": (draws, drawing.backend_color(b)) for b, draws in fitted.items()
    }
    figure = Figure(figsize=(min(drawing.WIDTH, 2.6 * len(sources) + 0.4), 2.9), layout="constrained")
    axes = figure.subplots(1, len(sources), sharex=True, sharey=True, squeeze=False)[0]
    for axis, (name, (draws, color)), correlation in zip(axes, sources.items(), correlations, strict=True):
        shown = draws[:PAIR_POINTS]
        axis.scatter(shown[:, 0], shown[:, 1], s=3, alpha=0.35, color=color, linewidths=0)
        axis.set_title(f"{name}\ncorrelation {correlation:+.2f}", fontsize=8)
        axis.set_xlabel(names[0], fontsize=8)
        axis.tick_params(labelsize=7)
    axes[0].set_ylabel(names[1], fontsize=8)
    figure.suptitle(title, fontweight="bold", fontsize=10)
    return drawing.save(figure, path)


@drawing.styled
def draw_khat(frame: pd.DataFrame, title: str, path: Path) -> Path:
    """PSIS k-hat per cell (x) against the cell's KL (y, log scale where positive), coloured by the stored
    reading, with the thresholds as vertical lines. ``frame``: columns k-hat, KL, reading."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    figure = Figure(figsize=(drawing.WIDTH * 0.7, 3.0), layout="constrained")
    axis = figure.subplots()
    kl = frame["KL"].where(frame["KL"] > 0)
    colors = [drawing.READING_COLORS.get(str(r), "#555555") for r in frame["reading"]]
    axis.scatter(frame["k-hat"], kl, c=colors, s=30, edgecolor="black", linewidths=0.5, zorder=3)
    good, ok = PSIS_THRESHOLDS
    axis.axvline(good, color="#e0a100", linestyle=":")
    axis.axvline(ok, color="#c62828", linestyle=":")
    axis.axhline(NEAR_EXACT_KL, color="#555555", linewidth=0.8, linestyle="--")
    if kl.notna().any():
        drawing.log_scale(axis, "y")
    axis.set_xlabel("PSIS k-hat of the weights p(x, z) / q(z), z ~ q")
    axis.set_ylabel("KL(q || p) (nats)")
    handles = [
        Line2D([], [], marker="o", linestyle="", color=c, label=r) for r, c in drawing.READING_COLORS.items()
    ]
    handles.append(Line2D([], [], color="#555555", linestyle="--", label=f"KL = {NEAR_EXACT_KL:g}"))
    figure.legend(handles=handles, loc="outside right center", frameon=False, fontsize=8)
    figure.suptitle(title, fontweight="bold", fontsize=10)
    return drawing.save(figure, path)


# ---------------------------------------------------------------------------------------- the parts
def _shared(references: dict[str, np.ndarray], fitted: dict[str, np.ndarray]) -> np.ndarray | None:
    """The posterior's draws when every backend stored the same ones (θ fixed), else None."""
    if not references or set(references) != set(fitted):
        return None
    first, *others = references.values()
    return first if all(np.array_equal(first, other) for other in others) else None


def _draws(
    context: Context, group: pd.DataFrame
) -> tuple[list[str], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Labels, q's draws and the posterior's draws per backend of the cells ``group``."""
    labels: list[str] = []
    fitted: dict[str, np.ndarray] = {}
    references: dict[str, np.ndarray] = {}
    for _, row in group.iterrows():
        arrays = context.artifacts(row[schema.DIGEST])
        if schema.Q_DRAWS not in arrays:
            continue
        labels = labels or draw_labels(row)
        fitted[row[schema.BACKEND]] = arrays[schema.Q_DRAWS]
        if schema.POSTERIOR_DRAWS in arrays:
            references[row[schema.BACKEND]] = arrays[schema.POSTERIOR_DRAWS]
    return labels, fitted, references


def _panel_rows(
    shared: np.ndarray | None,
    references: dict[str, np.ndarray],
    fitted: dict[str, np.ndarray],
    posterior: str,
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], str]:
    """The marginals figure's rows, the draws its summary table describes, and what a row shows: one
    row against the ``shared`` posterior, or (θ learned) each backend against its own."""
    if shared is not None or not references:
        panel_rows = [{"name": "", "reference": shared, "fitted": fitted}]
        sources = ({posterior: shared} if shared is not None else {}) | {
            f"q ({b})": d for b, d in fitted.items()
        }
        return (
            panel_rows,
            sources,
            f"one row per backend: its q (line) against the {posterior} (grey, filled)",
        )
    panel_rows = [{"name": b, "reference": references.get(b), "fitted": {b: d}} for b, d in fitted.items()]
    sources = {}
    for backend, draws in fitted.items():
        if backend in references:
            sources[f"exact posterior (θ of {backend})"] = references[backend]
        sources[f"q ({backend})"] = draws
    what = "one row per backend: its q (line) and the exact posterior at that backend's own learned θ (grey)"
    return panel_rows, sources, what


def _pair_part(
    context: Context,
    model: str,
    guide: str,
    labels: list[str],
    shared: np.ndarray,
    fitted: dict[str, np.ndarray],
    posterior: str,
) -> list[Block]:
    """The pair plot of the two coordinates the posterior correlates most, where it correlates them."""
    i, j, r = numbers.strongest_pair(shared)
    if not abs(r) > PAIR_MIN_CORRELATION:
        return []
    reference = shared[:, [i, j]]
    pair = {b: d[:, [i, j]] for b, d in fitted.items()}
    correlations = [numbers.correlation(draws, 0, 1) for draws in (reference, *pair.values())]
    name = f"{model}, guide {guide}"
    path = context.draw(
        f"{model}-{guide}-pair", draw_pair, (labels[i], labels[j]), reference, pair, correlations,
        posterior, f"{name}: {labels[i]} and {labels[j]}",
    )  # fmt: skip
    return [
        Image(
            path,
            f"The two coordinates the {posterior} correlates most ({r:+.2f}): its draws and "
            f"each backend's q, with each one's correlation. A mean-field q has none in the "
            "unconstrained space it is fitted in, so where its correlation here is near 0 it "
            "lost what the posterior has; a full-rank q can hold it (a correlation that "
            "survives in a mean-field q comes from the transform to the constrained space).",
            alt=f"{name}: pair plot of {labels[i]} and {labels[j]}",
        )
    ]


def marginals_part(context: Context, model: str, rows: pd.DataFrame) -> list[Block]:
    """Per guide, for the first data set and seed: each backend's q against the posterior (one shared
    posterior where θ is fixed, each backend's own at its learned θ otherwise), a pair plot where the
    posterior is correlated, and the ArviZ summary of the same draws (folded)."""
    ok = in_display_order(ok_rows(rows))
    blocks: list[Block] = []
    by_nuts = (text_column(ok, schema.KL_METHOD) == REFERENCE_METHOD).any()
    posterior = "NUTS reference posterior" if by_nuts else "exact posterior"
    for guide, group in ok.groupby(schema.GUIDE, sort=False):
        first = group.iloc[0]
        same = group[
            (group[schema.DATA_SEED] == first[schema.DATA_SEED]) & (group[schema.SEED] == first[schema.SEED])
        ]
        labels, fitted, references = _draws(context, same)
        if not fitted or not labels:
            blocks.append(
                Text(
                    f"Guide {guide}: no draws of q stored (an enumerated guide's q is the exact posterior).",
                    note=True,
                )
            )
            continue
        seed = f"data seed {first[schema.DATA_SEED]}, seed {first[schema.SEED]}"
        shared = _shared(references, fitted)
        panel_rows, sources, what = _panel_rows(shared, references, fitted, posterior)
        path = context.draw(
            f"{model}-{guide}-marginals", draw_marginals, labels, panel_rows,
            "exact posterior" if shared is None and references and not by_nuts else posterior,
            f"{model}, guide {guide} ({seed})", prepare=marginal_densities,
        )  # fmt: skip
        blocks.append(
            Image(
                path,
                f"Guide {guide}, {seed}: marginal densities (ArviZ plot_dist) of the first {len(labels)} "
                f"latent coordinate(s): {what}.",
                alt=f"{model}, guide {guide}: marginal densities of q and the posterior",
            )
        )
        if shared is not None:
            blocks += _pair_part(context, model, guide, labels, shared, fitted, posterior)
        blocks.append(
            Table(
                posterior_summary(sources, labels),
                caption=f"ArviZ summary of the same draws (guide {guide}, {seed}): mean, sd and 94% HDI.",
                formats={c: "{:.4g}" for c in ("mean", "sd", "hdi_3%", "hdi_97%")},
                details=True,
            )
        )
    return blocks


def khat_part(context: Context, model: str, rows: pd.DataFrame) -> list[Block]:
    """PSIS k-hat per cell against its KL, with what a large k-hat of a nearly exact q means."""
    table = diagnostics_table(rows, context.estimates)
    if table.empty or "k-hat" not in table:
        return []
    ok = in_display_order(ok_rows(rows))
    kl = pd.Series(column(ok, schema.KL).to_numpy(), index=cell_labels(ok).to_numpy())
    frame = table.assign(KL=table["cell"].map(kl)).dropna(subset=["k-hat"])
    blocks: list[Block] = []
    near_exact = frame[(frame["k-hat"] > PSIS_THRESHOLDS[1]) & (frame["KL"] < NEAR_EXACT_KL)]
    path = context.draw(f"{model}-khat", draw_khat, frame, f"{model}: PSIS k-hat and KL per cell")
    blocks.append(
        Image(
            path,
            f"Pareto k-hat of the importance weights p(x, z) / q(z) (x) against the cell's KL (y): below "
            f"{PSIS_THRESHOLDS[0]:g} q covers the posterior well, above {PSIS_THRESHOLDS[1]:g} importance "
            "sampling with q is unreliable.",
            alt=f"{model}: PSIS k-hat against KL per cell",
        )
    )
    if not near_exact.empty:
        blocks.append(
            Text(
                f'{words.count(len(near_exact), "cell")} here read "unreliable" (k-hat up to '
                f"{near_exact['k-hat'].max():.2f}) although their KL is below {NEAR_EXACT_KL:g} nats "
                f"(at most {near_exact['KL'].max():.2g}). This is not q missing posterior mass: k-hat is "
                "estimated from the largest weights, and when q is nearly exact the weights are nearly "
                "constant, so their tail's shape is the k-hat estimator's own noise. The KL is the "
                "better reading there.",
                note=True,
            )
        )
    blocks.append(
        Table(
            frame.drop(columns=["cell"]),
            caption="PSIS k-hat and its reading per cell; KL(p || q), the inclusive divergence, where "
            "estimated.",
            formats={"k-hat": "{:.2f}", "KL": "{:.3g}", "KL(p||q)": "{:.3g}"},
            pm={"KL(p||q)": "KL(p||q) SE"} if "KL(p||q) SE" in frame else {},
            details=True,
        )
    )
    return blocks


INCLUSIVE_KL_QUANTITY = "kl_from_posterior"


def diagnostics_table(rows: pd.DataFrame, estimates: pd.DataFrame) -> pd.DataFrame:
    """Per ok cell: PSIS k-hat with its reading, and the inclusive KL(p || q) ± SE, where stored."""
    ok = in_display_order(ok_rows(rows))
    khat = per_cell(ok, estimates, PARETO_K_QUANTITY)
    inclusive = per_cell(ok, estimates, INCLUSIVE_KL_QUANTITY)
    table = pd.DataFrame(
        {
            "cell": cell_labels(ok),
            "backend": ok[BACKEND],
            "guide": ok[GUIDE],
            "data": ok[DATA_SEED],
            "seed": ok[SEED],
            "k-hat": khat["value"],
            "reading": khat["extras"].map(lambda extras: extras.get("interpretation", np.nan)),
            "KL(p||q)": inclusive["value"],
            "KL(p||q) SE": inclusive["se"],
        }
    )
    table = table.dropna(subset=["k-hat", "KL(p||q)"], how="all")
    return table.drop(columns=[c for c in table if table[c].isna().all()]).reset_index(drop=True)


def draw_labels(row: pd.Series) -> list[str]:
    """The latent coordinates of a cell's stored draws (the row's JSON ``draw_labels``)."""
    text = row.get(schema.DRAW_LABELS)
    return json.loads(text) if isinstance(text, str) and text else []


def posterior_summary(draws: dict[str, np.ndarray], labels: list[str]) -> pd.DataFrame:
    """ArviZ's summary (mean, sd, 94% HDI) of each named set of draws (draws x coordinates), one line
    per (coordinate, source). Each set is one chain of one xarray variable, its coordinates along a
    dimension (rather than one variable per coordinate: half the time, and the same numbers, each
    coordinate's draws reduced in the same order)."""
    import arviz as az  # deferred: ArviZ is heavy, and only reports need it
    import xarray as xr  # ArviZ's own data structure

    parts = []
    for source, values in draws.items():
        by_coordinate = np.ascontiguousarray(np.asarray(values)[:, : len(labels)].T)[:, None, :]
        data = xr.Dataset({"draws": (("coordinate", "chain", "draw"), by_coordinate)})
        summary = az.summary(data, kind="stats", round_to="none")
        summary.index = pd.Index(labels)
        summary.insert(0, "draws of", source)
        parts.append(summary.rename_axis("coordinate").reset_index())
    if not parts:
        return pd.DataFrame()
    table = pd.concat(parts, ignore_index=True)
    order = {label: i for i, label in enumerate(labels)}
    table["_order"] = table["coordinate"].map(order)
    return table.sort_values(["_order"], kind="stable").drop(columns="_order").reset_index(drop=True)


@dataclass(frozen=True)
class Posterior(SectionDefaults):
    """Per model: marginals, pair plot, PSIS k-hat."""

    title: str = words.POSTERIOR_TITLE

    def build(self, context: Context) -> list[Block]:
        rows = ok_rows(context.rows)
        blocks: list[Block] = []
        for model in model_names(rows):
            model_rows = of_model(rows, model)
            built = marginals_part(context, model, model_rows) + khat_part(context, model, model_rows)
            if built:
                blocks += [Heading(model, 3), *built]
        return blocks


register(Posterior())
