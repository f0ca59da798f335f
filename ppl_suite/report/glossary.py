"""Reading this report: the words and the backends, defined once."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ppl_suite import backends
from ppl_suite.report import words
from ppl_suite.report.document import Block, Context, SectionDefaults, Table, register

CELL = ("cell", "one fit: a model, a data set (data seed), a backend, a guide family and an SVI seed")
TERMS = (  # after the cell and the backend
    (
        "guide family",
        "the form of q: mean_field (independent normals), full_rank (one multivariate normal over "
        "every coordinate of every site), amortized (an encoder from data to q's parameters), enumerate "
        "(discrete latents summed out exactly), auto_* (the libraries' autoguides)",
    ),
    ("ELBO", "E_q[log p(x, z) − log q(z)], estimated from draws of q, ± its standard error (SE)"),
    (
        "log p(x)",
        "the evidence: exact from the model's oracle, or (no closed form) estimated by AIS "
        "against a NUTS reference",
    ),
    (
        "KL route",
        "how KL(q || p(z|x)) was computed: analytic (closed form), monte_carlo (from draws of "
        "q), enumerated (0 by construction), reference (AIS log p(x) − ELBO)",
    ),
    (
        "residual z",
        "(log p(x) − ELBO − KL) / SE: a standard normal draw when all three are right; beyond "
        "±4 one is wrong",
    ),
    (
        "optimization gap",
        "the fitted KL minus the smallest KL the guide family can reach: family vs optimizer",
    ),
    (
        "θ, learned θ",
        "the model's own parameters; where SVI learns them too (a VAE's decoder, say), log p_θ(x) "
        "changes during training",
    ),
    (
        "data, once per problem",
        "guide-free estimators (AIS, BDMC, Laplace) run once per data set and are shared by its cells",
    ),
    (
        "k-hat",
        "PSIS's Pareto shape of the importance weights p(x, z)/q(z): below 0.5 their variance is "
        "finite; importance sampling's SE is trusted only when the k-hat of independent draws is "
        "below 0.5 by two of its sds (0.41 at 10^5 draws); noisy itself when q is nearly exact",
    ),
    (
        "IWAE bound",
        "the importance-weighted lower bound on log p(x) with K samples; its SE is the bound's own, "
        "never a distance to log p(x)",
    ),
    ("SE units", "a difference divided by its standard error; within ±4 is noise"),
    ("folded tables", "long tables open with a click on their caption (HTML)"),
)


def backend_term() -> tuple[str, str]:
    """The word backend, with every registered backend's own description (``BackendInfo``)."""
    described = ", ".join(
        f"{backend.name} ({backend.description})" for backend in backends.BACKENDS.plugins()
    )
    return ("backend", f"who fits q: {described}")


@dataclass(frozen=True)
class Glossary(SectionDefaults):
    """The report's words, one line each."""

    title: str = words.GLOSSARY_TITLE

    def build(self, context: Context) -> list[Block]:
        return [
            Table(
                pd.DataFrame([CELL, backend_term(), *TERMS], columns=["term", "meaning"]),
                details=False,
                caption="The words of this report, one line each.",
            )
        ]


register(Glossary())
