"""Cost: SVI steps per second, compile and wall seconds per backend and model; estimator cost; then
the time each study took, as its section gives it (``Section.cost``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ppl_suite import schema
from ppl_suite.report import drawing, words
from ppl_suite.report.document import Block, Context, Heading, Image, SectionDefaults, Table, Text, register
from ppl_suite.report.order import sections
from ppl_suite.report.rows import GUIDE_FREE, backend_rank, column, finished, model_labels
from ppl_suite.schema import BACKEND, KEY, MODEL, WALL_SECONDS


@drawing.styled
def draw_cost(frame: pd.DataFrame, path: Path) -> Path:
    """SVI steps per second and compile seconds per model (groups) and backend (colours), log scales.

    ``frame``: columns model, backend, steps/s (median), compile s (median)."""
    from matplotlib.figure import Figure

    model_names = list(dict.fromkeys(frame["model"]))
    backends = list(dict.fromkeys(frame["backend"]))
    height = max(2.4, 1.5 + 0.25 * len(model_names) * max(len(backends), 1))
    figure = Figure(figsize=(drawing.WIDTH, height), layout="constrained")
    left, right = figure.subplots(1, 2, sharey=True)
    height = 0.8 / max(len(backends), 1)
    for j, backend in enumerate(backends):
        part = frame[frame["backend"] == backend]
        y = np.array([model_names.index(m) for m in part["model"]]) - 0.4 + height * (j + 0.5)
        color = drawing.backend_color(backend)
        left.barh(y, part["steps/s (median)"], height=height, color=color, label=backend)
        right.barh(y, part["compile s (median)"], height=height, color=color, label=backend)
    left.set_yticks(range(len(model_names)), model_names)
    left.invert_yaxis()
    for axis, label in (
        (left, "SVI steps per second (median, log)"),
        (right, "compile seconds (median, log)"),
    ):
        drawing.log_scale(axis, "x")
        axis.set_xlabel(label)
    figure.legend(
        handles=left.get_legend_handles_labels()[0],
        loc="outside lower center",
        ncol=len(backends),
        frameon=False,
    )
    figure.suptitle("Cost per model and backend", fontweight="bold")
    return drawing.save(figure, path)


def estimator_cost_table(estimates: pd.DataFrame) -> pd.DataFrame:
    """Per estimator: where it ran (per cell, or once per problem), how many times, median evaluations
    and seconds per run, and total seconds; a guide-free estimate is stored, and counted, once."""
    lines = []
    for (name, scope), group in finished(estimates).groupby([schema.ESTIMATOR, schema.SCOPE], sort=False):
        lines.append(
            {
                "estimator": name,
                "computed": GUIDE_FREE if scope == schema.SCOPE_PROBLEM else "per cell",
                "runs": len(group),
                "evaluations (median)": group[schema.N_EVALS].median(),
                "seconds (median)": group[schema.SECONDS].median(),
                "seconds (total)": group[schema.SECONDS].sum(min_count=1),
            }
        )
    return pd.DataFrame(lines)


def problem_cost_table(problems: pd.DataFrame) -> pd.DataFrame:
    """Per model: problem units (guide-free estimators, once per data set), their estimators and total
    wall seconds."""
    if problems.empty:
        return pd.DataFrame()
    frame = problems.assign(model=model_labels(problems), wall=column(problems, WALL_SECONDS))
    table = frame.groupby(MODEL, sort=True).agg(
        **{
            "problem units": (KEY, "size"),
            "estimators": (
                schema.ESTIMATORS,
                lambda texts: ", ".join(dict.fromkeys(n for t in texts for n in json.loads(t))),
            ),
            "wall s (total)": ("wall", "sum"),
        }
    )
    return table.reset_index()


def cost_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per model and backend: cells, median SVI steps per second, median compile and fit seconds,
    and total wall seconds (fit and evaluation) of its cells."""
    if rows.empty:
        return pd.DataFrame()
    frame = _with_costs(rows).assign(model=model_labels(rows))
    grouped = frame.groupby([MODEL, "_rank", BACKEND], sort=True)
    table = grouped.agg(
        cells=(KEY, "size"),
        **{
            "steps/s (median)": (schema.STEPS_PER_SECOND, "median"),
            "compile s (median)": (schema.COMPILE_SECONDS, "median"),
            "fit s (median)": (schema.FIT_SECONDS, "median"),
            "wall s (total)": (WALL_SECONDS, "sum"),
        },
    )
    return table.reset_index().drop(columns="_rank")


def _with_costs(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows with every cost column (NaN where the store has none: cells that never fitted) and the
    backends' rank."""
    costs = (schema.STEPS_PER_SECOND, schema.COMPILE_SECONDS, schema.FIT_SECONDS, WALL_SECONDS)
    return rows.assign(**{name: column(rows, name) for name in costs}, _rank=backend_rank(rows[BACKEND]))


def backend_cost_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per backend over all models: cells, median steps/s, median compile seconds, total wall seconds."""
    if rows.empty:
        return pd.DataFrame()
    frame = _with_costs(rows)
    table = frame.groupby(["_rank", BACKEND], sort=True).agg(
        cells=(KEY, "size"),
        **{
            "steps/s (median)": (schema.STEPS_PER_SECOND, "median"),
            "compile s (median)": (schema.COMPILE_SECONDS, "median"),
            "wall s (total)": (WALL_SECONDS, "sum"),
        },
    )
    return table.reset_index().drop(columns="_rank")


@dataclass(frozen=True)
class Cost(SectionDefaults):
    """Steps per second, compile and wall seconds per backend and model; estimator cost."""

    title: str = words.COST_TITLE

    def build(self, context: Context) -> list[Block]:
        """The cells' cost (none without cells), then each study's (``Section.cost``)."""
        blocks = self.cells(context) if not context.rows.empty else []
        for section in sections():
            if section is not self:
                blocks += section.cost(context)
        return blocks

    def cells(self, context: Context) -> list[Block]:
        rows = context.rows
        cost_formats = {
            "steps/s (median)": "{:,.0f}",
            "compile s (median)": "{:.2f}",
            "fit s (median)": "{:.2f}",
            "wall s (total)": "{:.1f}",
        }
        blocks: list[Block] = [
            Text(
                "Steps per second count SVI steps after compilation; compile seconds are the first "
                "(tracing/JIT) call; wall seconds cover a whole cell: fit, evaluation and the estimators "
                "of its fitted guide. Guide-free estimators ran once per data set, in problem units of "
                "their own, and are counted there, once."
            ),
            Table(backend_cost_table(rows), caption="Per backend, all models.", formats=cost_formats),
        ]
        per_model = cost_table(rows)
        plotted = per_model.dropna(subset=["steps/s (median)"])
        if not plotted.empty:
            path = context.draw("cost", draw_cost, plotted)
            blocks.append(
                Image(
                    path,
                    "Median SVI steps per second (left) and compile seconds (right) per model and "
                    "backend, log scales (a backend without compilation shows no compile bar).",
                    alt="cost per model and backend",
                )
            )
        blocks.append(Table(per_model, caption="Per model and backend.", formats=cost_formats))
        problems = problem_cost_table(context.problems)
        if not problems.empty:
            blocks.append(
                Table(
                    problems,
                    caption="Problem units per model: the guide-free estimators, once per data set "
                    "(data, target and every estimator).",
                    formats={"wall s (total)": "{:.1f}"},
                )
            )
        blocks.append(Heading("Estimators", 3))
        estimator_cost = estimator_cost_table(context.estimates)
        if estimator_cost.empty:
            blocks.append(words.absent("estimator costs (evaluations and seconds of the stored estimates)"))
        else:
            blocks.append(
                Table(
                    estimator_cost,
                    caption="Per estimator: where it ran (per cell, or once per problem), how many "
                    "times, likelihood evaluations and seconds per run, and in total; an estimate "
                    "shared by a problem's cells is counted once.",
                    formats={
                        "evaluations (median)": "{:,.0f}",
                        "seconds (median)": "{:.2f}",
                        "seconds (total)": "{:.1f}",
                    },
                )
            )
        return blocks


register(Cost())
