"""What every figure of the report shares: style, colours, the PNG writer, log-axis labels.

Each topic module draws its own figures with these: functions of plain (picklable) data, so that the
renderer may call them in other processes, drawing only (every value plotted is handed in; nothing is
estimated while drawing). Matplotlib runs with the Agg backend, and figures are
``matplotlib.figure.Figure`` objects, so no global pyplot state is involved. Figures are drawn at
DPI = 2 x the page's pixels (WIDTH inches are WIDTH x 100 CSS pixels): sharp on high-density screens.
"""

from __future__ import annotations

import functools
import io
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import LogFormatterSciNotation

from ppl_suite import backends

SCALE = 2  # image pixels per CSS pixel of the page
DPI = 100 * SCALE
WIDTH = 9.0  # inches: 900 CSS pixels, the report's column width
MARGIN = 6 * SCALE  # px added around the constrained layout's own pad (3/72 inch): 0.1 inch in all
RAW_POINTS = 1000  # at most this many points of a per-step (unsmoothed) training curve are drawn
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


def styled(draw: Callable[..., Path]) -> Callable[..., Path]:
    """Run a drawing function under the report's matplotlib style."""

    @functools.wraps(draw)
    def styled(*args: Any, **kwargs: Any) -> Path:
        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    return styled


def backend_color(backend: str) -> str:
    """The colour the backend declares (``BackendInfo.color``); one not registered here gets one of
    OTHER_COLORS, the same in every run."""
    if backend in backends.BACKENDS:
        return backends.info(backend).color
    return OTHER_COLORS[zlib.crc32(backend.encode()) % len(OTHER_COLORS)]  # stable across runs


def save(figure: Figure, path: Path) -> Path:
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


class PowerLabels(LogFormatterSciNotation):
    """Matplotlib's log-axis tick labels (10³, −10⁻², 2×10¹) as plain text with Unicode superscripts
    rather than mathtext: the same look, without parsing every label's mathtext in every figure."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        label = super().__call__(x, pos).removeprefix(r"$\mathdefault{").removesuffix("}$")
        label = re.sub(r"\^\{([^}]*)\}", lambda power: power.group(1).translate(SUPERSCRIPTS), label)
        return label.replace(r"\times", "×").replace("-", "−")


def log_scale(axis: Any, which: str, scale: str = "log", **options: Any) -> None:
    """A log or symlog scale on the x or y axis of ``axis``, labelled as matplotlib's defaults do (for
    log, minor ticks too where the axis spans few decades), but by PowerLabels."""
    (axis.set_xscale if which == "x" else axis.set_yscale)(scale, **options)
    ticks = axis.xaxis if which == "x" else axis.yaxis
    base = options.get("base", 10)
    ticks.set_major_formatter(PowerLabels(base))
    if scale == "log":
        ticks.set_minor_formatter(PowerLabels(base, labelOnlyBase=False))


def backend_style(backend: str) -> str:
    """The line style the backend declares (``BackendInfo.line_style``); one not registered: dash-dot."""
    return backends.info(backend).line_style if backend in backends.BACKENDS else "-."


def panel_grid(figure: Figure, panels: int, columns: int) -> list[Any]:
    """``panels`` axes in rows of ``columns`` (the unused ones of the last row hidden)."""
    columns = max(min(panels, columns), 1)
    rows = int(np.ceil(panels / columns))
    axes = list(np.atleast_1d(figure.subplots(rows, columns, squeeze=False).ravel()))
    for axis in axes[panels:]:
        axis.set_visible(False)
    return axes[:panels]


def power_of(reach: float) -> int:
    """The power of ten to show values up to ``reach`` in (0 unless they are all below 0.1): an axis
    reads "10⁻³ nats" with ticks 1, 2, 3 rather than an offset label that collides with the axis label."""
    return int(np.floor(np.log10(reach))) if np.isfinite(reach) and 0 < reach < 0.1 else 0


def unit(power: int, name: str = "nats") -> str:
    """``nats`` or ``10⁻³ nats``."""
    return name if power == 0 else f"10{str(power).translate(SUPERSCRIPTS)} {name}"
