"""Estimators of log p(x) against the exact value, per model: errors in panels by estimator family
(lower bounds, unbiased, upper bounds, approximations...), unreliable ones marked; the IWAE bound over
K on a log-10 axis; the table of every estimate, folded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ppl_suite import schema
from ppl_suite.report import drawing, words
from ppl_suite.report.document import Block, Context, Heading, Image, SectionDefaults, Table, Text, register
from ppl_suite.report.rows import (
    APPROXIMATION,
    GUIDE_FREE,
    RELIABLE,
    cell_labels,
    column,
    finished,
    in_display_order,
    model_names,
    of_model,
    ok_rows,
    text_column,
    trusted_se,
    with_exact,
)
from ppl_suite.schema import BACKEND, DATA_SEED, KEY, LOG_EVIDENCE, PROBLEM_KEY, SEED

IWAE_K_MAX = 10_000  # the IWAE axis reaches this K, whatever the run computed


def _error_legend(backends: list[str], all_reliable: bool) -> list[Any]:
    """The errors figure's legend: a marker per backend, the open marker (where some estimate has no
    valid SE), the exact value's line."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="o", linestyle="", color=drawing.backend_color(b), label=b) for b in backends
    ]
    if not all_reliable:
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
    return handles


@drawing.styled
def draw_errors(frame: pd.DataFrame, title: str, path: Path) -> Path:
    """Estimate − exact log p(x) ± SE, one panel per estimator (titled with its kind: lower bound,
    upper bound, unbiased...) on its own linear axis, one row per backend (or "once per problem" for a
    guide-free estimate), one marker per cell. An estimate without a valid SE (unreliable, or an
    approximation) is an open marker without a bar.

    ``frame``: columns estimator, kind, backend, error, se (NaN where not valid), reliable."""
    from matplotlib.figure import Figure
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
    handles = _error_legend(list(dict.fromkeys(frame["backend"])), bool(frame["reliable"].all()))
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
    f'ran once per data set ("{GUIDE_FREE}") unless θ is learned, when they depend on each '
    "fit's θ and ran per cell. Only a reliable estimate has an SE: an approximation (Laplace) shows "
    "its error in nats alone; an estimate whose diagnostic says its SE cannot be trusted shows "
    '"unreliable" and the diagnostic (e.g. a PSIS k-hat that leaves the weights\' variance possibly '
    "infinite). IWAE is a lower bound: its SE is the bound's own, its error in nats is how far the "
    "bound stays below log p(x), and it has no error in SE units."
)


def _errors_figure(context: Context, model: str, rows: pd.DataFrame, table: pd.DataFrame) -> list[Block]:
    """The figure of every estimate's error against the exact log p(x) (``draw_errors``), if any."""
    backends = estimate_backends(rows, context.problems)
    frame = pd.DataFrame(
        {
            "estimator": table["estimator"],
            "kind": table["kind"],
            "backend": table["cell"].map(backends),
            "error": table["error (nats)"],
            "se": table["SE"],
            "reliable": table["reliability"] == RELIABLE,
        }
    ).dropna(subset=["error"])
    if frame.empty:
        return []
    path = context.draw(f"{model}-estimators", draw_errors, frame, f"{model}: estimates of log p(x) − exact")
    unreliable = int((~frame["reliable"]).sum())
    return [
        Image(
            path,
            "Each estimate minus the exact log p(x) ± SE; one panel per estimator (its kind in "
            "brackets), each on its own linear scale; one marker per cell (colour: backend) or "
            f"per data set for the guide-free ones. Open markers ({unreliable} here) have no "
            "valid SE. A lower bound sits left of 0 and an upper bound right of it, within a "
            "few SE: AIS (lower) and BDMC (upper) together sandwich log p(x).",
            alt=f"{model}: estimator errors against the exact log p(x), by kind",
        )
    ]


def model_part(context: Context, model: str, rows: pd.DataFrame) -> list[Block]:
    """The errors figure, the IWAE curves and the table of one model with an exact log p(x)."""
    table = estimator_table(rows, context.estimates, context.problems)
    blocks: list[Block] = []
    if not table.empty:
        blocks += _errors_figure(context, model, rows, table)
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
        {**curve, "guide": curve["label"].split(" / ")[1]} for curve in iwae_curves(rows, context.estimates)
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


UNRELIABLE = "unreliable"  # the label of an estimate whose SE a diagnostic says cannot be trusted


LOG_EVIDENCE_QUANTITY = "log_evidence"  # the estimators' quantity names (ppl_suite.estimators.QUANTITIES)


def problem_labels(problems: pd.DataFrame) -> pd.Series:
    """Short names of problem units, in the place of a cell's: ``data d (once for its cells)``."""
    return problems[DATA_SEED].map(lambda seed: f"data {seed} ({GUIDE_FREE})").astype(object)


def estimates_of(rows: pd.DataFrame, estimates: pd.DataFrame) -> pd.DataFrame:
    """The finished estimates that belong to the cells ``rows``: each cell's own and, once each, those
    of the problem units the cells refer to (``problem_key``)."""
    keys = set(rows[KEY]) | set(column(rows, PROBLEM_KEY).dropna()) if not rows.empty else set()
    done = finished(estimates)
    return done[done[KEY].isin(keys)]


def _estimate_labels(estimates: pd.DataFrame) -> pd.Series:
    """Each estimate's reliability label; where none is stored, "approximation" for an estimator of that
    kind and "reliable" otherwise."""
    stored = estimates[schema.RELIABILITY]
    default = estimates[schema.KIND].map(lambda kind: APPROXIMATION if kind == APPROXIMATION else RELIABLE)
    return stored.where(stored.notna() & (stored != ""), default).astype(object)


def _subjects(rows: pd.DataFrame, problems: pd.DataFrame) -> pd.DataFrame:
    """What an estimate is of, by key: the label, backend and exact log p(x) of each ok cell (display
    order), then of each problem unit (backend GUIDE_FREE)."""
    ok = in_display_order(ok_rows(rows))
    cells = pd.DataFrame(
        {"label": cell_labels(ok), "backend": ok[BACKEND], "log p(x)": column(ok, LOG_EVIDENCE)}
    ).set_axis(ok[KEY] if not ok.empty else [])
    if problems.empty:
        return cells
    shared = pd.DataFrame(
        {"label": problem_labels(problems), "backend": GUIDE_FREE, "log p(x)": column(problems, LOG_EVIDENCE)}
    ).set_axis(problems[KEY])
    return pd.concat([shared, cells])


BOUNDS_WITHOUT_SE_GAP = {"iwae"}  # bounds whose SE is the bound's own, never a distance to log p(x)


def estimator_table(rows: pd.DataFrame, estimates: pd.DataFrame, problems: pd.DataFrame) -> pd.DataFrame:
    """Every log p(x) estimate of the ok cells ``rows`` and, once each, of their problem units: value,
    SE, error vs exact in nats and in SE units, reliability, likelihood evaluations and seconds.

    Only a reliable estimate shows an SE and an error in SE units: an unreliable one shows
    "unreliable: <diagnostic>" (e.g. "unreliable: k-hat 0.81 > 0.70"), an approximation (Laplace)
    "approximation" and its error in nats alone. Error in SE units is NaN for exact values (SE 0) too,
    and for a bound whose SE is its own (``BOUNDS_WITHOUT_SE_GAP``: IWAE), whose kind reads "lower
    bound" and whose error in nats is its gap to log p(x), never z-scored.
    A guide-free estimate (AIS, BDMC, Laplace...) is one line for its problem, "data d (once per
    problem)", with its own cost; a model with learned theta has them per cell."""
    subjects = _subjects(rows, problems)
    chosen = finished(estimates_of(ok_rows(rows), estimates), LOG_EVIDENCE_QUANTITY)
    chosen = chosen[chosen[KEY].isin(subjects.index)]
    if chosen.empty:
        return pd.DataFrame()
    order = {key: i for i, key in enumerate(subjects.index)}
    names = {name: i for i, name in enumerate(dict.fromkeys(chosen[schema.ESTIMATOR]))}
    chosen = chosen.assign(_name=chosen[schema.ESTIMATOR].map(names), _subject=chosen[KEY].map(order))
    chosen = chosen.sort_values(["_name", "_subject"], kind="stable")
    subject = subjects.loc[chosen[KEY]].set_axis(chosen.index)
    label = _estimate_labels(chosen)
    diagnostic = text_column(chosen, schema.DIAGNOSTIC)
    se = trusted_se(chosen[schema.SE], label)
    error = chosen[schema.VALUE] - subject["log p(x)"]
    table = pd.DataFrame(
        {
            "estimator": chosen[schema.ESTIMATOR],
            "kind": chosen[schema.KIND].str.replace("_", " "),
            "cell": subject["label"],
            "log p(x)": subject["log p(x)"],
            "estimate": chosen[schema.VALUE],
            "SE": se,
            "error (nats)": error,
            "error (SE)": (error / se.where(se > 0)).where(
                ~chosen[schema.ESTIMATOR].isin(BOUNDS_WITHOUT_SE_GAP)
            ),
            "reliability": label.where((label != UNRELIABLE) | (diagnostic == ""), label + ": " + diagnostic),
            "evaluations": chosen[schema.N_EVALS],
            "seconds": chosen[schema.SECONDS],
        }
    )
    return table.reset_index(drop=True)


def estimate_backends(rows: pd.DataFrame, problems: pd.DataFrame) -> dict[str, str]:
    """The backend of each subject label of ``estimator_table`` (GUIDE_FREE for a problem unit's)."""
    subjects = _subjects(rows, problems)
    return dict(zip(subjects["label"], subjects["backend"], strict=True))


def iwae_curves(rows: pd.DataFrame, estimates: pd.DataFrame) -> list[dict[str, Any]]:
    """The IWAE curve of every ok cell that stored one (an estimate whose extras hold iwae_k, iwae and
    iwae_se), as exact log p(x) minus the bound: dicts with label, backend, data_seed, seed, k, gap, se."""
    ok = in_display_order(ok_rows(rows))
    done = finished(estimates)
    curves = []
    for (_, row), label in zip(ok.iterrows(), cell_labels(ok), strict=True):
        log_evidence = row.get(LOG_EVIDENCE, np.nan)
        for text in done[done[KEY] == row[KEY]][schema.EXTRAS]:
            curve = schema.extras(text)
            if not {"iwae_k", "iwae", "iwae_se"} <= curve.keys() or not np.isfinite(log_evidence):
                continue
            curves.append(
                {
                    "label": label,
                    "backend": row[BACKEND],
                    "data_seed": row[DATA_SEED],
                    "seed": row[SEED],
                    "k": np.asarray(curve["iwae_k"], dtype=float),
                    "gap": log_evidence - np.asarray(curve["iwae"], dtype=float),
                    "se": np.asarray(curve["iwae_se"], dtype=float),
                }
            )
    return curves


@dataclass(frozen=True)
class Estimators(SectionDefaults):
    """Per model with an exact log p(x): estimator errors and the IWAE curves."""

    title: str = words.ESTIMATORS_TITLE

    def build(self, context: Context) -> list[Block]:
        rows = with_exact(ok_rows(context.rows))
        blocks: list[Block] = []
        for model in model_names(rows):
            built = model_part(context, model, of_model(rows, model))
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
