"""Figures of a report: each function draws given numbers into one PNG and returns its path.

Drawing only: every value plotted is handed in (a stored column, trace or artifact, or a pandas
operation on them); nothing here estimates anything. Matplotlib runs with the Agg backend and
figures are ``matplotlib.figure.Figure`` objects, so no global pyplot state is involved; ArviZ draws
the marginal densities into axes given to it. The functions take plain (picklable) data and depend on
nothing but it, so the renderer may call them in other processes. Imported only by the report's
rendering code.
"""

from __future__ import annotations

import functools
import io
import re
import warnings
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Text
from matplotlib.ticker import LogFormatterSciNotation, MaxNLocator

DPI = 100
WIDTH = 9.5  # inches: 950 px at DPI, the report's column width
MARGIN = 6  # px added around the constrained layout's own pad (3/72 inch): 0.1 inch in all
RAW_POINTS = 1000  # at most this many points of a per-step (unsmoothed) training curve are drawn
BACKEND_COLORS = {"pyro": "#d9541e", "numpyro": "#1f6fb4", "handrolled": "#2e9e44"}
OTHER_COLORS = ("#8e44ad", "#7f6a00", "#c0307a", "#555555")
SEED_STYLES = ("-", "--", ":", "-.")
EXACT_STYLE = {"color": "black", "linewidth": 1.2, "linestyle": "--"}
READING_COLORS = {"good": "#2e9e44", "ok": "#e0a100", "unreliable": "#c62828"}
SUPERSCRIPTS = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")

STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "figure.dpi": DPI,
    "figure.facecolor": "white",
}  # applied per figure (rc_context), so matplotlib's global settings stay untouched


def _styled(draw: Callable[..., Path]) -> Callable[..., Path]:
    """Run a drawing function under the report's matplotlib style."""

    @functools.wraps(draw)
    def styled(*args: Any, **kwargs: Any) -> Path:
        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    return styled


def backend_color(backend: str) -> str:
    """Fixed colour per backend (pyro orange, numpyro blue, handrolled green), others in turn."""
    if backend in BACKEND_COLORS:
        return BACKEND_COLORS[backend]
    return OTHER_COLORS[zlib.crc32(backend.encode()) % len(OTHER_COLORS)]  # stable across runs


def _save(figure: Figure, path: Path) -> Path:
    """Draw the figure once (the constrained layout runs within that draw) and write it as a 256-colour
    PNG (a third of the size of matplotlib's RGBA file), with a white margin of about 0.1 inch.

    Where the layout could not make room for everything (an axis label wider than its axes, say), the
    figure is drawn again onto its tight bounding box, so that nothing is clipped. The palette is an
    octree's (a tenth of the time of a median cut, and smaller files), with the background kept white."""
    from PIL import Image as PILImage  # matplotlib's own dependency
    from PIL import ImageOps

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    if not _clipped(figure, canvas.get_renderer()):
        image = PILImage.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB")
        image = ImageOps.expand(image, border=MARGIN, fill="white")
    else:
        figure.set_layout_engine("none")  # keep the positions the layout gave
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.1, facecolor="white")
        image = PILImage.open(buffer).convert("RGB")
    palette = image.quantize(colors=256, method=PILImage.Quantize.FASTOCTREE, dither=PILImage.Dither.NONE)
    colors = palette.getpalette() or []
    background = palette.getpixel((0, 0))  # a margin pixel; the octree averages it with near-white ones
    colors[3 * background : 3 * background + 3] = (255, 255, 255)
    palette.putpalette(colors)
    path.parent.mkdir(parents=True, exist_ok=True)
    palette.save(path, format="png")  # not optimize=True: 7% smaller, but 8 times the encoding time
    return path


def _clipped(figure: Figure, renderer: Any) -> bool:
    """Whether a title, axis label, figure text or figure legend reaches past the figure's edges.

    The constrained layout makes room for everything else (tick labels included), but by design not for
    the width of titles and x labels or the height of y labels, and it cannot fit a legend or text wider
    than the figure. Unlike the figure's tight bounding box, this needs no second pass over the ticks."""
    artists = [*figure.texts, *figure.legends]
    for axes in figure.axes:
        if axes.get_visible():
            artists += [axes.title, axes.xaxis.label, axes.yaxis.label]
    edges = figure.bbox
    for artist in artists:
        if not artist.get_visible() or (isinstance(artist, Text) and not artist.get_text()):
            continue
        box = artist.get_window_extent(renderer)
        if box.x0 < edges.x0 or box.y0 < edges.y0 or box.x1 > edges.x1 or box.y1 > edges.y1:
            return True
    return False


def _linthresh(values: Sequence[float] | np.ndarray, floor: float = 1e-6, up: bool = False) -> float:
    """Linear range of a symlog axis: the decade of the smallest non-zero magnitude shown (the decade
    above it with ``up``)."""
    magnitudes = np.abs(np.asarray(values, dtype=float))
    magnitudes = magnitudes[np.isfinite(magnitudes) & (magnitudes > 0)]
    if magnitudes.size == 0:
        return 1.0
    rounding = np.ceil if up else np.floor
    return float(max(10.0 ** rounding(np.log10(magnitudes.min())), floor))


def _symlog(
    axis: Any, which: str, values: Sequence[float] | np.ndarray, floor: float = 1e-6, up: bool = False
) -> None:
    _log_scale(axis, which, "symlog", linthresh=_linthresh(values, floor, up), linscale=1.0)


class _PowerLabels(LogFormatterSciNotation):
    """Matplotlib's log-axis tick labels (10³, −10⁻², 2×10¹) as plain text with Unicode superscripts
    rather than mathtext: the same look, without parsing every label's mathtext in every figure."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        label = super().__call__(x, pos).removeprefix(r"$\mathdefault{").removesuffix("}$")
        label = re.sub(r"\^\{([^}]*)\}", lambda power: power.group(1).translate(SUPERSCRIPTS), label)
        return label.replace(r"\times", "×").replace("-", "−")


def _log_scale(axis: Any, which: str, scale: str = "log", **options: Any) -> None:
    """A log or symlog scale on the x or y axis of ``axis``, labelled as matplotlib's defaults do (for
    log, minor ticks too where the axis spans few decades), but by _PowerLabels."""
    (axis.set_xscale if which == "x" else axis.set_yscale)(scale, **options)
    ticks = axis.xaxis if which == "x" else axis.yaxis
    base = options.get("base", 10)
    ticks.set_major_formatter(_PowerLabels(base))
    if scale == "log":
        ticks.set_minor_formatter(_PowerLabels(base, labelOnlyBase=False))


# ------------------------------------------------------------------------------------ decomposition
@_styled
def decomposition_bars(frame: pd.DataFrame, title: str, path: Path) -> Path:
    """log p(x) split into ELBO and KL per cell: left, full scale (ELBO bar from 0, KL stacked on it,
    reaching the exact log p(x) tick); right, the distance below log p(x) on a symmetric-log axis
    (KL(q||p) and log p(x) - ELBO with its ±SE bar; the two agree when the identity holds).

    ``frame``: columns cell, log_evidence, elbo, elbo_se, kl, gap (= log p(x) - ELBO)."""
    n = len(frame)
    figure = Figure(figsize=(WIDTH, max(2.8, 1.6 + 0.42 * n)), layout="constrained")
    left, right = figure.subplots(1, 2, sharey=True, width_ratios=[1.1, 1])
    y = np.arange(n)
    left.barh(y, frame["elbo"], color="#7aa6d6", label="ELBO", height=0.6)
    left.barh(y, frame["kl"], left=frame["elbo"], color="#f0a04b", label="KL(q || p(z|x))", height=0.6)
    left.scatter(frame["log_evidence"], y, marker="|", s=400, color="black", label="exact log p(x)", zorder=3)
    left.set_yticks(y, frame["cell"])
    left.invert_yaxis()
    left.set_xlabel("nats (log p(x) < 0: bars grow to the left)")
    left.set_title("log p(x) = ELBO + KL")

    right.axvline(0.0, **EXACT_STYLE)
    right.scatter(
        frame["kl"], y - 0.12, color="#f0a04b", edgecolor="black", s=40, label="KL(q || p)", zorder=3
    )
    right.errorbar(
        frame["gap"],
        y + 0.12,
        xerr=frame["elbo_se"],
        fmt="D",
        color="#1f4e8c",
        markersize=5,
        capsize=3,
        label="log p(x) − ELBO ± SE",
        zorder=3,
    )
    _symlog(right, "x", np.concatenate([frame["kl"], frame["gap"], frame["elbo_se"]]))
    right.set_xlabel("nats below exact log p(x) (symmetric log scale)")
    right.set_title("Distance to log p(x)")
    handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    figure.legend(handles=handles, loc="outside lower center", ncol=5, frameon=False)
    figure.suptitle(title, fontweight="bold")
    return _save(figure, path)


# ------------------------------------------------------------------------------------------- traces
@_styled
def elbo_traces(curves: Sequence[dict[str, Any]], title: str, evidence: str, path: Path) -> Path:
    """Training curves, one panel per guide: log p(x) − ELBO_t (−loss_t) over SVI steps per backend
    on a symmetric-log axis, raw (faint) and smoothed (solid); the dashed line at 0 is log p(x), named
    by ``evidence`` (exact, or a reference's estimate).

    ``curves``: dicts with panel, backend, seed_index, label, step, raw, smooth (arrays)."""
    panels = list(dict.fromkeys(c["panel"] for c in curves))
    columns = min(len(panels), 2)
    rows = int(np.ceil(len(panels) / columns))
    figure = Figure(figsize=(WIDTH, 3.3 * rows + 0.6), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False).ravel())
    for axis, panel in zip(axes, panels, strict=False):
        chosen = [c for c in curves if c["panel"] == panel]
        values = []
        for c in chosen:
            color = backend_color(c["backend"])
            style = SEED_STYLES[c["seed_index"] % len(SEED_STYLES)]
            every = max(len(c["raw"]) // RAW_POINTS, 1)  # the faint per-step line, thinned for file size
            axis.plot(
                c["step"][::every], c["raw"][::every], color=color, alpha=0.18, linewidth=0.7, linestyle=style
            )
            axis.plot(c["step"], c["smooth"], color=color, linewidth=1.6, linestyle=style, label=c["label"])
            values.append(np.abs(np.asarray(c["raw"])[-max(len(c["raw"]) // 5, 1) :]))
        axis.axhline(0.0, **EXACT_STYLE, label=evidence)
        # linear within the per-step noise of the late steps, logarithmic beyond it
        noise = [np.nanpercentile(np.concatenate(values), 75)] if values else [1.0]
        _symlog(axis, "y", noise, floor=1e-4, up=True)
        axis.set_title(f"guide: {panel}")
        axis.set_xlabel("SVI step")
        axis.set_ylabel("log p(x) − ELBO (nats, symlog)")
        axis.legend(loc="upper right", ncol=1)
    for axis in axes[len(panels) :]:
        axis.set_visible(False)
    figure.suptitle(title, fontweight="bold")
    return _save(figure, path)


@_styled
def training_curves(panels: Sequence[dict[str, Any]], title: str, path: Path) -> Path:
    """Models with learned parameters: log p_theta(x) and ELBO ± SE (left axis, nats) and
    KL(q || p_theta(z|x)) (right axis, log scale) over training, one panel per cell.

    ``panels``: dicts with title, step, log_evidence, elbo, elbo_se (or None), kl (arrays)."""
    columns = min(len(panels), 2)
    rows = int(np.ceil(len(panels) / columns))
    figure = Figure(figsize=(WIDTH, 3.2 * rows + 0.7), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False).ravel())
    for axis, panel in zip(axes, panels, strict=False):
        step = panel["step"]
        axis.plot(step, panel["log_evidence"], color="black", linewidth=1.6, label="log p_θ(x) (exact)")
        axis.plot(step, panel["elbo"], color="#1f6fb4", linewidth=1.4, label="ELBO")
        if panel.get("elbo_se") is not None:
            low, high = panel["elbo"] - panel["elbo_se"], panel["elbo"] + panel["elbo_se"]
            axis.fill_between(step, low, high, color="#1f6fb4", alpha=0.25, linewidth=0)
        axis.set_xlabel("SVI step")
        axis.set_ylabel("nats")
        axis.set_title(panel["title"])
        twin = axis.twinx()
        twin.plot(
            step, panel["kl"], color="#f0a04b", linewidth=1.4, linestyle="--", label="KL(q || p_θ(z|x))"
        )
        kl = np.asarray(panel["kl"], dtype=float)
        if np.all(kl[np.isfinite(kl)] > 0):
            _log_scale(twin, "y")
        twin.set_ylabel("KL (nats)", color="#b86a10")
        twin.grid(False)
        twin.spines["right"].set_visible(True)
        handles = axis.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        axis.legend(handles=handles, loc="center right", fontsize=8)
    for axis in axes[len(panels) :]:
        axis.set_visible(False)
    figure.suptitle(title, fontweight="bold")
    return _save(figure, path)


# --------------------------------------------------------------------------------------- estimators
@_styled
def estimator_errors(frame: pd.DataFrame, title: str, path: Path) -> Path:
    """Every log p(x) estimate minus the exact value (nats, symmetric log scale) with ±SE bars, one
    row per estimator, one marker per cell coloured by backend; a lower/upper bound pair (AIS/BDMC)
    shows as a sandwich around the dashed line at 0. An estimate without a valid SE (unreliable, or an
    approximation) is an open marker without a bar.

    ``frame``: columns estimator, kind, cell, backend, error, se (NaN where not valid), reliable."""
    names = list(dict.fromkeys(frame["estimator"]))
    cells = list(dict.fromkeys(frame["cell"]))
    figure = Figure(figsize=(WIDTH, max(2.6, 1.5 + 0.55 * len(names))), layout="constrained")
    axis = figure.subplots()
    offsets = np.linspace(-0.3, 0.3, len(cells)) if len(cells) > 1 else np.zeros(1)
    for j, cell in enumerate(cells):
        part = frame[frame["cell"] == cell]
        y = np.array([names.index(n) for n in part["estimator"]]) + offsets[j]
        color = backend_color(part["backend"].iloc[0])
        reliable = part["reliable"].to_numpy(dtype=bool)
        axis.errorbar(
            part["error"][reliable], y[reliable], xerr=part["se"][reliable].fillna(0), fmt="o", color=color,
            markersize=4, capsize=2,
        )  # fmt: skip
        axis.plot(
            part["error"][~reliable], y[~reliable], "o", color=color, markerfacecolor="white", markersize=5
        )
    axis.axvline(0.0, **EXACT_STYLE)
    labels = [
        f"{n} ({k})" if k else n
        for n, k in zip(names, frame.groupby("estimator", sort=False)["kind"].first(), strict=True)
    ]
    axis.set_yticks(range(len(names)), labels)
    axis.invert_yaxis()
    _symlog(axis, "x", np.concatenate([frame["error"], frame["se"].fillna(0)]), floor=1e-6)
    axis.set_xlabel("estimate − exact log p(x)  (nats, symmetric log scale)")
    backends = list(dict.fromkeys(frame["backend"]))
    handles = [Line2D([], [], marker="o", linestyle="", color=backend_color(b), label=b) for b in backends]
    if not frame["reliable"].all():
        hollow = {"marker": "o", "linestyle": "", "markerfacecolor": "white"}
        handles.append(Line2D([], [], color="#555555", label="no valid SE", **hollow))
    handles.append(Line2D([], [], **EXACT_STYLE, label="exact log p(x)"))
    figure.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    figure.suptitle(title, fontweight="bold")
    return _save(figure, path)


@_styled
def iwae_curves(curves: Sequence[dict[str, Any]], title: str, path: Path) -> Path:
    """The IWAE bound over the number of importance samples K, as exact log p(x) − bound ± SE
    (nats, log-log where positive), one line per cell; 0 (the dashed line) is exact log p(x).

    ``curves``: dicts with label, backend, seed_index, k, gap, se (arrays)."""
    figure = Figure(figsize=(WIDTH, 4.2), layout="constrained")
    axis = figure.subplots()
    values = []
    for c in curves:
        color = backend_color(c["backend"])
        style = SEED_STYLES[c["seed_index"] % len(SEED_STYLES)]
        axis.errorbar(
            c["k"], c["gap"], yerr=c["se"], color=color, linestyle=style, marker="o", markersize=3,
            capsize=2, label=c["label"],
        )  # fmt: skip
        values.append(np.asarray(c["gap"], dtype=float))
    axis.axhline(0.0, **EXACT_STYLE, label="exact log p(x)")
    _log_scale(axis, "x", base=2)
    _symlog(axis, "y", np.concatenate(values) if values else [1.0])
    axis.set_xlabel("K (importance samples per bound)")
    axis.set_ylabel("log p(x) − IWAE_K (nats, symlog)")
    figure.suptitle(title, fontweight="bold")
    figure.legend(loc="outside lower center", ncol=min(len(curves) + 1, 3), frameon=False)
    return _save(figure, path)


# ---------------------------------------------------------------------------------------- posterior
@_styled
def marginals(
    labels: Sequence[str],
    exact: np.ndarray | None,
    fitted: dict[str, np.ndarray],
    title: str,
    posterior: str,
    path: Path,
) -> Path:
    """Posterior marginals per latent coordinate: the posterior's draws (grey, filled; named by
    ``posterior``: exact, or a NUTS reference) and each backend's fitted q (coloured lines), densities
    drawn by ArviZ (``az.plot_dist``). For a posterior that all backends share (θ fixed by the model).

    ``exact``: draws x coordinates or None; ``fitted``: backend -> draws x coordinates."""
    import arviz as az  # deferred: heavy, and only this figure needs it

    columns = min(len(labels), 3)
    rows = int(np.ceil(len(labels) / columns))
    figure = Figure(figsize=(WIDTH, 2.6 * rows + 0.8), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False).ravel())
    for i, (axis, label) in enumerate(zip(axes, labels, strict=False)):
        _plot_marginal(axis, i, label, exact, fitted, az)
    for axis in axes[len(labels) :]:
        axis.set_visible(False)
    _marginals_legend(figure, fitted, exact is not None, posterior)
    figure.suptitle(title, fontweight="bold")
    return _save(figure, path)


@_styled
def marginals_by_backend(
    labels: Sequence[str],
    references: dict[str, np.ndarray],
    fitted: dict[str, np.ndarray],
    title: str,
    path: Path,
) -> Path:
    """Posterior marginals, one row of panels per backend: its fitted q (coloured line) against the
    exact posterior at its own θ (grey, filled), for models whose θ each backend learns.

    ``references``: backend -> exact posterior draws x coordinates (at that backend's θ; a backend
    without one shows q alone); ``fitted``: backend -> draws of q x coordinates."""
    import arviz as az  # deferred: heavy, and only this figure needs it

    backends = list(fitted)
    figure = Figure(figsize=(WIDTH, 1.9 * len(backends) + 0.9), layout="constrained")
    axes = figure.subplots(len(backends), len(labels), squeeze=False)
    for row, backend in zip(axes, backends, strict=True):
        for i, (axis, label) in enumerate(zip(row, labels, strict=True)):
            _plot_marginal(axis, i, label, references.get(backend), {backend: fitted[backend]}, az)
            axis.tick_params(labelsize=8)
            axis.xaxis.set_major_locator(MaxNLocator(3))
            if backend != backends[-1]:
                axis.set_xlabel("")
        row[0].set_ylabel(backend, color=backend_color(backend), fontweight="bold")
    _marginals_legend(figure, fitted, bool(references), "exact posterior at the backend's own θ")
    figure.suptitle(title, fontweight="bold")
    return _save(figure, path)


def _marginals_legend(figure: Figure, fitted: dict[str, np.ndarray], exact: bool, exact_label: str) -> None:
    """One legend for all panels: the exact posterior's patch (where shown) and a line per backend's q."""
    handles: list[Any] = [
        Line2D([], [], color=backend_color(b), linewidth=1.5, label=f"q ({b})") for b in fitted
    ]
    if exact:
        handles.insert(0, Patch(facecolor="#555555", alpha=0.3, edgecolor="#555555", label=exact_label))
    figure.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)


def _plot_marginal(axis: Any, i: int, label: str, exact: Any, fitted: dict[str, np.ndarray], az: Any) -> None:
    """Column ``i`` of the exact draws and of each backend's q draws: densities by ArviZ, or, for
    integer-valued (discrete) draws, ArviZ histograms over the integers. No labels are handed to
    ArviZ (it would draw a legend per panel); the figure has one legend for all panels."""
    columns = ([exact[:, i]] if exact is not None else []) + [draws[:, i] for draws in fitted.values()]
    discrete = all(np.all(np.isfinite(c)) and np.array_equal(c, np.round(c)) for c in columns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ's own deprecation warnings from matplotlib
        if exact is not None:
            values = exact[:, i].astype(int) if discrete else exact[:, i]
            az.plot_dist(
                values, ax=axis, color="#555555",
                fill_kwargs={"alpha": 0.3}, plot_kwargs={"linewidth": 1.0},
                hist_kwargs={"alpha": 0.35, "rwidth": 0.8},
            )  # fmt: skip
        for backend, draws in fitted.items():
            values = draws[:, i].astype(int) if discrete else draws[:, i]
            az.plot_dist(
                values, ax=axis, color=backend_color(backend),
                plot_kwargs={"linewidth": 1.5}, hist_kwargs={"histtype": "step", "linewidth": 1.5},
            )  # fmt: skip
    axis.set_title(label)
    axis.tick_params(labelsize=9)
    axis.set_yticks([])
    axis.set_xlabel("value (discrete)" if discrete else "value")


# -------------------------------------------------------------------------------------- diagnostics
@_styled
def khat_dots(frame: pd.DataFrame, thresholds: tuple[float, float], title: str, path: Path) -> Path:
    """PSIS k-hat per cell, coloured by the stored reading (good / ok / unreliable), with the reading
    thresholds as vertical lines.

    ``frame``: columns cell, k-hat, reading."""
    n = len(frame)
    figure = Figure(figsize=(WIDTH, max(2.4, 1.5 + 0.35 * n)), layout="constrained")
    axis = figure.subplots()
    y = np.arange(n)
    colors = [READING_COLORS.get(str(r), "#555555") for r in frame["reading"]]
    axis.scatter(frame["k-hat"], y, c=colors, s=45, edgecolor="black", zorder=3)
    good, ok = thresholds
    axis.axvline(good, color="#e0a100", linestyle=":", label=f"{good:g}: good below")
    axis.axvline(ok, color="#c62828", linestyle=":", label=f"{ok:g}: unreliable from")
    axis.set_yticks(y, frame["cell"])
    axis.invert_yaxis()
    axis.set_xlabel("PSIS k-hat (q as importance proposal for p(z|x))")
    handles = [Line2D([], [], marker="o", linestyle="", color=c, label=r) for r, c in READING_COLORS.items()]
    handles += axis.get_legend_handles_labels()[0]
    figure.legend(handles=handles, loc="outside lower center", ncol=5, frameon=False)
    figure.suptitle(title, fontweight="bold")
    return _save(figure, path)


# --------------------------------------------------------------------------------- agreement, cost
@_styled
def agreement_dots(frame: pd.DataFrame, flag_se: float, path: Path) -> Path:
    """Backend differences in SE units (ΔELBO and ΔKL) per pair and comparison, with the ±flag band.

    ``frame``: columns comparison, pair, ΔELBO (SE), ΔKL (SE)."""
    n = len(frame)
    figure = Figure(figsize=(WIDTH, max(2.4, 1.5 + 0.32 * n)), layout="constrained")
    axis = figure.subplots()
    y = np.arange(n)
    elbo = frame["ΔELBO (SE)"].replace([np.inf, -np.inf], np.nan)
    kl = frame["ΔKL (SE)"].replace([np.inf, -np.inf], np.nan)
    axis.axvspan(-flag_se, flag_se, color="#2e9e44", alpha=0.12, label=f"|difference| ≤ {flag_se:g} SE")
    axis.scatter(elbo, y - 0.12, color="#1f6fb4", s=30, label="ΔELBO", zorder=3)
    axis.scatter(kl, y + 0.12, color="#f0a04b", marker="s", s=30, label="ΔKL", zorder=3)
    axis.axvline(0.0, color="black", linewidth=0.8)
    axis.set_yticks(y, frame["comparison"])
    axis.set_ylim(n - 0.5, -0.5)  # first comparison on top, no empty rows above or below
    _symlog(axis, "x", [flag_se], floor=1.0)
    reach = np.nanmax(np.abs(np.concatenate([elbo, kl, [flag_se]])))
    axis.set_xlim(-2 * reach, 2 * reach)  # symmetric about 0, every point inside with room to spare
    axis.set_xlabel("difference between backends (standard errors, symmetric log scale)")
    figure.legend(loc="outside lower center", ncol=3, frameon=False)
    figure.suptitle("Backend differences in standard errors", fontweight="bold")
    return _save(figure, path)


@_styled
def cost_bars(frame: pd.DataFrame, path: Path) -> Path:
    """SVI steps per second and compile seconds per model (groups) and backend (colours), log scales.

    ``frame``: columns model, backend, steps/s (median), compile s (median)."""
    model_names = list(dict.fromkeys(frame["model"]))
    backends = list(dict.fromkeys(frame["backend"]))
    height = max(2.4, 1.5 + 0.25 * len(model_names) * max(len(backends), 1))
    figure = Figure(figsize=(WIDTH, height), layout="constrained")
    left, right = figure.subplots(1, 2, sharey=True)
    height = 0.8 / max(len(backends), 1)
    for j, backend in enumerate(backends):
        part = frame[frame["backend"] == backend]
        y = np.array([model_names.index(m) for m in part["model"]]) - 0.4 + height * (j + 0.5)
        color = backend_color(backend)
        left.barh(y, part["steps/s (median)"], height=height, color=color, label=backend)
        right.barh(y, part["compile s (median)"], height=height, color=color, label=backend)
    left.set_yticks(range(len(model_names)), model_names)
    left.invert_yaxis()
    for axis, label in (
        (left, "SVI steps per second (median, log)"),
        (right, "compile seconds (median, log)"),
    ):
        _log_scale(axis, "x")
        axis.set_xlabel(label)
    figure.legend(
        handles=left.get_legend_handles_labels()[0],
        loc="outside lower center",
        ncol=len(backends),
        frameon=False,
    )
    figure.suptitle("Cost per model and backend", fontweight="bold")
    return _save(figure, path)
