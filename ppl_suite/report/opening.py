"""The first screen: the question answered in plain words, then every section's headline (its numbers
from this run), in report order. Nothing here is fixed prose about a particular run: what this run
holds (models, learned parameters, references) is read from the store."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ppl_suite import schema
from ppl_suite.report import training, words
from ppl_suite.report.document import Block, Code, Context, SectionDefaults, Text, register
from ppl_suite.report.identity import IDENTITY
from ppl_suite.report.order import sections
from ppl_suite.report.rows import model_names, ok_rows

ANSWER = "For a fixed model, yes. For every q, the evidence splits exactly into two terms:"
BECAUSE = (
    "log p(x) does not depend on q and the KL is never negative, so the ELBO is a lower bound on "
    "log p(x), every nat the ELBO gains is a nat of KL lost, and the bound is tight only where q is the "
    "exact posterior."
)
LEARNED = (
    "When the model's parameters θ are trained along with q, as in a VAE, not quite: "
    "ELBO(q, θ) = log p_θ(x) − KL(q || p_θ(z|x)), and the ELBO also rises by raising log p_θ(x)."
)


def cells_phrase(rows: pd.DataFrame) -> str:
    """The run's cells by status, models, backends and guide families ("" without cells)."""
    if rows.empty:
        return ""
    models = model_names(rows)
    return (
        f"{words.count(len(rows), 'cell')} ({words.statuses(rows[schema.STATUS])}) of "
        f"{words.count(len(models), 'model')} ({words.listing(models, most=10)}); backends "
        f"{words.listing(list(dict.fromkeys(rows[schema.BACKEND])))}; guide families "
        f"{words.listing(list(dict.fromkeys(rows[schema.GUIDE])), most=10)}"
    )


def run_line(context: Context) -> str:
    """What this run holds: its cells (``cells_phrase``), then each study's own summary."""
    parts = [cells_phrase(context.rows)] + [section.summary(context) for section in sections()]
    parts = [part for part in parts if part]
    if not parts:
        return "This results folder holds no cell and no study."
    return "This run: " + "; and ".join(parts) + "."


def learned_line(context: Context) -> str:
    """Which models of this run learn θ (those with a stored training curve), or that none does."""
    learned = training.learned_models(context)
    if not learned:
        return "No model of this run learns its parameters."
    return f"In this run {words.listing(learned)} {'learns' if len(learned) == 1 else 'learn'} θ:"


@dataclass(frozen=True)
class Opening(SectionDefaults):
    """The answer, then the headline of every section that has one (of a folder without cells, of the
    sections that read no cell: ``without_cells``)."""

    title: str = words.OPENING_TITLE

    def build(self, context: Context) -> list[Block]:
        blocks: list[Block] = [
            Text(ANSWER),
            Code(IDENTITY),
            Text(BECAUSE),
            Text(LEARNED),
            Text(run_line(context)),
        ]
        headlines = [
            (section, section.headline(context))
            for section in sections()
            if section is not self and (not context.rows.empty or section.without_cells)
        ]
        for section, lines in headlines:
            if (
                section.title == words.TRAINING_TITLE
                and not context.rows.empty
                and not ok_rows(context.rows).empty
            ):
                blocks.append(Text(learned_line(context)))
            blocks += lines
        return blocks


register(Opening())
