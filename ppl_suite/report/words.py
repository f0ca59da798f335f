"""Words the sections share: their titles (so that one section can point to another), counts and lists
in plain English, and the note of a part whose data are absent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ppl_suite.report.document import Text
from ppl_suite.report.rows import status_counts

OPENING_TITLE = "Maximize the ELBO, or minimize KL(q || p(z|x)): the same?"
GLOSSARY_TITLE = "Reading this report"
IDENTITY_TITLE = "The identity, cell by cell"
TRAINING_TITLE = "Training: how the ELBO rises"
ESTIMATORS_TITLE = "Estimators of log p(x)"
POSTERIOR_TITLE = "q against the posterior"
REFERENCES_TITLE = "Against the NUTS reference (no closed form)"
AGREEMENT_TITLE = "Backend agreement"
COST_TITLE = "Cost"
FAILURES_TITLE = "Cells that did not finish"
FACTS_TITLE = "Run facts"


def count(n: int, noun: str) -> str:
    """``1 cell``, ``3 cells``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def listing(names: Sequence[str], most: int = 6) -> str:
    """``a``, ``a and b``, ``a, b and c``; beyond ``most`` names, the first ones and how many more."""
    names = list(names)
    if len(names) > most:
        return ", ".join(names[:most]) + f" and {len(names) - most} more"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1] if names else ""


def statuses(status: pd.Series) -> str:
    """How many cells have each status, e.g. "3 ok, 1 failed, 2 timeout"."""
    return ", ".join(f"{n} {name}" for name, n in status_counts(status).items())


def nats(value: float, se: float) -> str:
    """``value ± se nats`` (decimals set by the SE, ``render.format_pm``), or ``value nats (exact)``
    where the SE is 0."""
    from ppl_suite.report.render import format_pm  # deferred: render imports the drawing layer

    return f"{value:.4g} nats (exact)" if se == 0 else f"{format_pm(value, se)} nats"


def yes_no(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return "yes" if bool(value) else "no"


def absent(what: str) -> Text:
    return Text(f"Not in this results folder: {what}.", note=True)
