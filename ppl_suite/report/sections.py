"""The built-in report sections, in report order: the identity and this run's evidence, one part per
model, backend agreement, cost, cells that did not finish, run facts.

Each section reads the results folder through the Context and returns blocks: tables from
``tables`` (numbers from the store), figures from ``figures`` (drawing only, handed to
``Context.draw``). A part whose data are absent from the store says so instead of disappearing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ppl_suite import checks, schema
from ppl_suite.report import figures, tables
from ppl_suite.report.document import Block, Code, Context, Heading, Image, Table, Text, register

F4 = "{:.4f}"
F6 = "{:.6f}"
SIG3 = "{:.3g}"
SE2 = "{:+.2f}"
SECONDS = "{:.2f}"
COUNT = "{:,.0f}"
PSIS_THRESHOLDS = (0.5, 0.7)  # the readings' thresholds (good below the first, unreliable from the second)
SMOOTHING_WINDOWS = 20  # a training curve is smoothed by a running mean over steps / this many steps


def _yes_no(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return "yes" if bool(value) else "no"


def _counts(status: pd.Series) -> str:
    """How many cells have each status, e.g. "3 ok, 1 failed, 2 timeout"."""
    return ", ".join(f"{n} {name}" for name, n in tables.status_counts(status).items())


def _absent(what: str) -> Text:
    return Text(f"Not in this results folder: {what}.", note=True)


# ------------------------------------------------------------------------------------------- opening
OPENING = """\
Variational inference fits a distribution q(z) to the posterior p(z | x) of a model by maximizing
the evidence lower bound, ELBO(q) = E_q[log p(x, z) − log q(z)]. For every q the evidence splits
exactly into two terms:"""

IDENTITY = "log p(x) = ELBO(q) + KL(q(z) || p(z | x))"

AFTER_IDENTITY = """\
The left side, log p(x), does not depend on q, and the KL divergence is never negative. So the ELBO
is a lower bound on log p(x), and maximizing the ELBO over q is the same as minimizing the KL from q
to the exact posterior: the bound is tight only when q is the posterior. When the model's own
parameters θ are learned as well (here: ppca), log p_θ(x) moves too, and the ELBO rises through both
terms: log p_θ(x) goes up while KL(q || p_θ(z | x)) goes down."""

EVIDENCE = """\
Where a model has an exact log p(x) and posterior, each cell (model, backend, guide family, seed)
checks the identity: the residual (log p(x) − ELBO − KL) / SE should look like a standard normal
draw, and a residual beyond ±4 means one of the three numbers is wrong. The optimization gap is the
KL of the fitted q minus the smallest KL its guide family can reach ("converged" when below 0.01
nats): it separates "the family cannot do better" from "the optimizer stopped early"."""

REFERENCE_EVIDENCE = """\
Models without a closed form (KL route "reference") are measured against a NUTS reference posterior
that passed posteriordb's gates, with log p(x) estimated by annealed importance sampling: their KL
is log p(x)_AIS − ELBO with the error of both, an estimate and never exact, and their per-model part
"Against the NUTS reference" compares q's means, sds and draws with the reference's."""


@dataclass(frozen=True)
class Opening:
    """What log p(x) = ELBO + KL means, then one line of evidence per cell."""

    title: str = "What SVI optimizes, and this run's evidence"

    def build(self, context: Context) -> list[Block]:
        rows = context.rows
        blocks: list[Block] = [Text(OPENING), Code(IDENTITY), Text(AFTER_IDENTITY), Text(EVIDENCE)]
        if rows.empty:
            return [*blocks, _absent("any finished cell")]
        if (tables.text_column(rows, schema.KL_METHOD) == tables.REFERENCE_METHOD).any():
            blocks.append(Text(REFERENCE_EVIDENCE))
        blocks.append(Text(f"{len(rows)} cells: {_counts(rows[schema.STATUS])}."))
        missing = tables.failures_table(rows, tables.planned_cells(context.manifest))
        if not missing.empty:
            blocks.append(
                Text(
                    f"Cells without numbers ({_counts(missing['status'])}) are listed with their status "
                    f'and the first line of their error under "{Failures.title}".'
                )
            )
        blocks.append(
            Table(
                tables.evidence_table(rows),
                caption="One row per cell. KL route: analytic (closed form), monte_carlo (estimated "
                "from draws of q), enumerated (discrete latents summed out) or reference (AIS "
                "log p(x) − ELBO, no oracle). Residual in units of sqrt(SE_ELBO² + SE_KL² + "
                "rounding floor²).",
                formats={
                    "log p(x)": F6,
                    "ELBO": F4,
                    "KL(q||p)": SIG3,
                    "residual (SE)": SE2,
                    "opt. gap": "{:.2g}",
                    "converged": _yes_no,
                },
                pm={"ELBO": "ELBO SE"},
            )
        )
        return blocks


# -------------------------------------------------------------------------------------------- models
ModelPart = Callable[[Context, str, pd.DataFrame], list[Block]]


def decomposition_part(context: Context, model: str, rows: pd.DataFrame) -> list[Block]:
    """Per cell, log p(x) as ELBO + KL, and the distance of each fit below log p(x)."""
    exact = tables.with_exact(rows)
    if exact.empty and not rows.empty:
        return []  # measured against a NUTS reference: the reference part shows its numbers
    frame = tables.decomposition(exact).dropna(subset=["log_evidence", "elbo", "kl"])
    if frame.empty:
        return [_absent("exact log p(x), ELBO and KL for a finished cell")]
    path = context.draw(f"{model}-split", figures.decomposition_bars, frame, f"{model}: log p(x) = ELBO + KL")
    return [
        Image(
            path,
            "Left: for each backend / guide / seed, the ELBO bar (blue) plus the KL (orange) stacked "
            "on it reaches the exact log p(x) (black tick); all three are negative-going, so bars grow "
            "leftwards. Right: how far below log p(x) each fit is, on a symmetric-log axis: the exact "
            "KL(q || p) (orange) and log p(x) − ELBO with its ±SE bar (blue); they coincide when the "
            "identity holds.",
            alt=f"{model}: ELBO and KL per cell",
        )
    ]


def traces_part(context: Context, model: str, rows: pd.DataFrame) -> list[Block]:
    """The stored training loss of every cell as log p(x) − ELBO_t over SVI steps, per guide."""
    curves = []
    seeds = _seeds(rows)
    for _, row in tables.in_display_order(rows).iterrows():
        loss = context.trace(row[schema.DIGEST])
        log_evidence = row.get(schema.LOG_EVIDENCE, np.nan)
        if loss is None or loss.size == 0 or not np.isfinite(log_evidence):
            continue
        gap = pd.Series(log_evidence + loss)  # log p(x) − ELBO_t, since the loss is −ELBO_t
        window = max(len(gap) // SMOOTHING_WINDOWS, 1)
        backend, seed = row[schema.BACKEND], row[schema.SEED]
        curves.append(
            {
                "panel": row[schema.GUIDE],
                "backend": backend,
                "seed_index": seeds.index((row[schema.DATA_SEED], seed)),
                "label": backend if len(seeds) == 1 else f"{backend}, seed {seed}",
                "step": np.arange(1, len(gap) + 1),
                "raw": gap.to_numpy(),
                "smooth": gap.rolling(window, min_periods=1).mean().to_numpy(),
            }
        )
    if not curves:
        return [_absent("training traces with a log p(x), exact or from a reference")]
    by_reference = (tables.text_column(rows, schema.KL_METHOD) == tables.REFERENCE_METHOD).any()
    evidence = "log p(x) by the reference's AIS" if by_reference else "exact log p(x)"
    path = context.draw(f"{model}-traces", figures.elbo_traces, curves, f"{model}: ELBO during SVI", evidence)
    return [
        Image(
            path,
            "Training loss (−ELBO estimate per SVI step) shown as log p(x) − ELBO_t: faint lines are "
            "the per-step estimates, solid lines their running mean over 1/20 of the run; the dashed "
            f"line at 0 is the {evidence} (for learned θ, log p_θ(x) at the final θ). Symmetric-log "
            "axis: linear within the late steps' noise around 0, logarithmic beyond, so both the start "
            "and convergence are visible.",
            alt=f"{model}: ELBO traces",
        )
    ]


def training_part(context: Context, model: str, rows: pd.DataFrame) -> list[Block]:
    """For learned θ (artifacts training.*): log p_θ(x), ELBO and KL along training, per cell."""
    panels = []
    curve = ("step", "log_evidence", "elbo", "elbo_se", "kl")  # the training curve's columns
    for index, row in tables.in_display_order(tables.ok_rows(rows)).iterrows():
        arrays = context.artifacts(row[schema.DIGEST])
        if not all(schema.training_artifact(name) in arrays for name in curve if name != "elbo_se"):
            continue
        panels.append(
            {"title": tables.cell_labels(rows.loc[[index]]).iloc[0]}
            | {name: arrays.get(schema.training_artifact(name)) for name in curve}
        )
    if not panels:
        return []  # fixed-θ models have no training curve: nothing to say
    path = context.draw(
        f"{model}-training",
        figures.training_curves,
        panels,
        f"{model}: learning θ raises the ELBO through both terms",
    )
    return [
        Heading("Learning the model's parameters", 4),
        Image(
            path,
            "At checkpoints during SVI: the exact log p_θ(x) at the current θ (black), the ELBO ± SE "
            "(blue, band) and the exact KL(q || p_θ(z|x)) (orange dashed, right axis). The ELBO climbs "
            "because log p_θ(x) rises and because the KL falls.",
            alt=f"{model}: training curves",
        ),
    ]


def estimators_part(context: Context, model: str, rows: pd.DataFrame) -> list[Block]:
    """Stored log p(x) estimates vs the exact value (the cells' own, and their problem units' once),
    and the IWAE bound over K. Cells measured against a NUTS reference have no exact value: their
    numbers are in the reference part."""
    exact = tables.with_exact(rows)
    if exact.empty and not rows.empty:
        return []
    rows = exact
    table = tables.estimator_table(rows, context.estimates, context.problems)
    blocks: list[Block] = []
    if table.empty:
        blocks.append(_absent("estimators of log p(x)"))
    else:
        backends = tables.estimate_backends(rows, context.problems)
        frame = pd.DataFrame(
            {
                "estimator": table["estimator"],
                "kind": table["kind"],
                "cell": table["cell"],
                "backend": table["cell"].map(backends),
                "error": table["error (nats)"],
                "se": table["SE"],
                "reliable": table["reliability"] == tables.RELIABLE,
            }
        ).dropna(subset=["error"])
        if not frame.empty:
            path = context.draw(
                f"{model}-estimators",
                figures.estimator_errors,
                frame,
                f"{model}: estimates of log p(x) vs exact",
            )
            blocks.append(
                Image(
                    path,
                    "Each estimate minus the exact log p(x), ±SE, one marker per cell (colour: backend) "
                    f"and one per data set for the guide-free estimators ({tables.GUIDE_FREE}); an open "
                    "marker has no valid SE (an approximation, or an estimate a diagnostic marks "
                    "unreliable). A lower bound sits left of the dashed line and an upper bound right of "
                    "it, within a few SE: AIS (lower) and BDMC (upper) together sandwich log p(x).",
                    alt=f"{model}: estimator errors",
                )
            )
        blocks.append(
            Table(
                table,
                caption="Estimator values with their SE, the error vs the exact log p(x) in nats and "
                "in SE units, likelihood evaluations and seconds. Guide-free estimators (AIS, BDMC, "
                "Laplace, harmonic mean) do not depend on the fit: they ran once per data set "
                f'("{tables.GUIDE_FREE}"), and that line holds for every cell of the data set, at its '
                "own cost; with learned model "
                "parameters (ppca, gaussian_mixture) they depend on each fit's θ and ran per cell. "
                "Only a reliable estimate has an SE: "
                "an approximation (Laplace's) shows its error in nats alone, and an estimate whose "
                "diagnostic says its SE cannot be trusted (e.g. PSIS k-hat above its threshold) shows "
                '"unreliable" with that diagnostic instead of an SE. SE 0 marks an exact value, '
                "whose error has no SE units.",
                formats={
                    "log p(x)": F4,
                    "estimate": F4,
                    "error (nats)": "{:+.3g}",
                    "error (SE)": SE2,
                    "evaluations": COUNT,
                    "seconds": SECONDS,
                },
                pm={"estimate": "SE"},
            )
        )
    blocks += _iwae_blocks(context, model, rows)
    return blocks


def _seeds(rows: pd.DataFrame) -> list[tuple[int, int]]:
    """The (data seed, seed) pairs of ``rows``, sorted: a cell's line style is its pair's index."""
    return sorted(set(zip(rows[schema.DATA_SEED], rows[schema.SEED], strict=True)))


def _iwae_blocks(context: Context, model: str, rows: pd.DataFrame) -> list[Block]:
    """The stored IWAE curve (the importance estimate's extras iwae_k, iwae, iwae_se) of every cell,
    below the exact log p(x)."""
    seeds = _seeds(tables.ok_rows(rows))
    curves = [
        {**curve, "seed_index": seeds.index((curve["data_seed"], curve["seed"]))}
        for curve in tables.iwae_curves(rows, context.estimates)
    ]
    if not curves:
        return [_absent("the IWAE bound over K (an estimate with extras iwae_k, iwae, iwae_se)")]
    path = context.draw(f"{model}-iwae", figures.iwae_curves, curves, f"{model}: IWAE bound over K")
    return [
        Image(
            path,
            "How far the IWAE bound with K importance samples stays below the exact log p(x) (0, "
            "dashed), ±SE; K = 1 is the ELBO. The bound tightens as K grows, fastest where q is close "
            "to the posterior.",
            alt=f"{model}: IWAE over K",
        )
    ]


def marginals_part(context: Context, model: str, rows: pd.DataFrame) -> list[Block]:
    """Per guide, for the first seed: stored draws of each backend's q vs the exact posterior's.

    Each cell stores the exact posterior's draws at its own fitted θ (``posterior_draws``). Where
    every backend's are the same draws (θ fixed by the model), one exact reference is shown under all
    the q's; where they differ (θ learned, as in ppca), each backend's q is shown against its own."""
    ok = tables.in_display_order(tables.ok_rows(rows))
    blocks: list[Block] = []
    for guide, group in ok.groupby(schema.GUIDE, sort=False):
        first = group.iloc[0]
        data_seed, seed = first[schema.DATA_SEED], first[schema.SEED]
        same_seed = group[(group[schema.DATA_SEED] == data_seed) & (group[schema.SEED] == seed)]
        labels: list[str] = []
        fitted: dict[str, np.ndarray] = {}
        references: dict[str, np.ndarray] = {}
        for _, row in same_seed.iterrows():
            arrays = context.artifacts(row[schema.DIGEST])
            if schema.Q_DRAWS not in arrays:
                continue
            labels = labels or tables.draw_labels(row)
            fitted[row[schema.BACKEND]] = arrays[schema.Q_DRAWS]
            if schema.POSTERIOR_DRAWS in arrays:
                references[row[schema.BACKEND]] = arrays[schema.POSTERIOR_DRAWS]
        if not fitted or not labels:
            blocks.append(
                Text(f"Guide {guide}: no draws of q stored (an enumerated guide has no q).", note=True)
            )
            continue
        seed = f"data seed {data_seed}, seed {seed}"
        title = f"{model}, guide {guide} ({seed})"
        shared = _shared_reference(references, fitted)
        by_nuts = (tables.text_column(same_seed, schema.KL_METHOD) == tables.REFERENCE_METHOD).any()
        posterior = "NUTS reference posterior" if by_nuts else "exact posterior"
        if shared is not None or not references:
            path = context.draw(
                f"{model}-{guide}-marginals", figures.marginals, labels, shared, fitted, title, posterior
            )
            if shared is not None:
                reference = f"the {posterior} (grey, filled) and each backend's fitted q (lines)"
            else:
                reference = "each backend's fitted q (lines); no posterior draws to compare with"
            sources = ({posterior: shared} if shared is not None else {}) | {
                f"q ({backend})": draws for backend, draws in fitted.items()
            }
        else:
            path = context.draw(
                f"{model}-{guide}-marginals", figures.marginals_by_backend, labels, references, fitted, title
            )
            reference = (
                "one row per backend: its fitted q (line) and the exact posterior at that backend's own "
                "learned θ (grey, filled), p_θ(z | x) with θ as that backend fitted it"
            )
            sources = {}
            for backend, draws in fitted.items():
                if backend in references:
                    sources[f"exact posterior (θ of {backend})"] = references[backend]
                sources[f"q ({backend})"] = draws
        blocks.append(
            Image(
                path,
                f"Guide {guide}, {seed}: marginal densities (ArviZ plot_dist) of the first "
                f"{len(labels)} latent coordinate(s): {reference}.",
                alt=f"{model} {guide}: posterior marginals",
            )
        )
        blocks.append(
            Table(
                tables.posterior_summary(sources, labels),
                caption=f"ArviZ summary of the same draws (guide {guide}, {seed}): mean, sd and 94% HDI.",
                formats={c: "{:.4g}" for c in ("mean", "sd", "hdi_3%", "hdi_97%")},
            )
        )
    if not blocks:
        return [_absent("draws of q for a finished cell")]
    return blocks


def _shared_reference(references: dict[str, np.ndarray], fitted: dict[str, np.ndarray]) -> np.ndarray | None:
    """The exact posterior's draws when every backend with draws of q stored the same ones (the same
    θ), else None."""
    if set(references) != set(fitted):
        return None
    first, *others = references.values()
    return first if all(np.array_equal(first, other) for other in others) else None


def diagnostics_part(context: Context, model: str, rows: pd.DataFrame) -> list[Block]:
    """Stored PSIS k-hat with its reading, and the inclusive KL(p || q), per cell."""
    table = tables.diagnostics_table(rows, context.estimates)
    if table.empty:
        return [_absent("PSIS k-hat or inclusive KL (estimates of pareto_k or kl_from_posterior)")]
    blocks: list[Block] = []
    if "k-hat" in table:
        frame = table[["cell", "k-hat", "reading"]].dropna(subset=["k-hat"])
        path = context.draw(
            f"{model}-khat", figures.khat_dots, frame, PSIS_THRESHOLDS, f"{model}: PSIS k-hat per cell"
        )
        blocks.append(
            Image(
                path,
                "Pareto k-hat of the importance weights p(x, z) / q(z), z ~ q: below 0.5 q covers the "
                "posterior well (good), up to 0.7 importance sampling still works (ok), above that q "
                "misses posterior mass (unreliable). Colour: the stored reading.",
                alt=f"{model}: PSIS k-hat",
            )
        )
    blocks.append(
        Table(
            table.drop(columns="cell"),
            caption="PSIS k-hat and its reading; KL(p || q), the inclusive divergence, where estimated.",
            formats={"k-hat": "{:.2f}", "KL(p||q)": SIG3},
            pm={"KL(p||q)": "KL(p||q) SE"} if "KL(p||q) SE" in table else {},
        )
    )
    return blocks


def reference_part(context: Context, model: str, rows: pd.DataFrame) -> list[Block]:
    """Models without an oracle: the NUTS reference each cell is measured against, and how far each
    fit is from it, with the uncertainty of both sides."""
    lines = tables.reference_lines(rows)
    table = tables.reference_table(rows, context.estimates)
    if not lines and table.empty:
        return []
    blocks: list[Block] = [Text(f"Reference: {line}") for line in lines]
    if not table.empty:
        blocks.append(
            Table(
                table,
                caption=(
                    "No closed form: KL(q || p) = log p(x) by the reference's AIS − ELBO, its SE "
                    "combining both (a reference-based estimate, never exact). Mean and sd errors are "
                    "q's posterior means and sds minus the NUTS reference's, in reference posterior "
                    "sds, at the worst coordinate (the worst of d: even a q with the reference's "
                    "means reads about √(2 ln d) SE from 0 there). W2 is "
                    "the 2-Wasserstein distance between q's and the reference's draws in the "
                    "unconstrained space; the floor is the reference's distance to itself at the "
                    "same number of draws, so q is indistinguishable from the reference when W2 is "
                    "within a few SE of it. k-hat: PSIS's reading of q as an importance proposal."
                ),
                formats={
                    "KL(q||p)": SIG3,
                    "worst mean error (sd)": "{:+.3f}",
                    "worst sd error": "{:+.3f}",
                    "W2": "{:.3f}",
                    "W2 floor": "{:.3f}",
                    "k-hat": "{:.2f}",
                },
                pm={
                    k: v
                    for k, v in {
                        "KL(q||p)": "KL SE",
                        "worst mean error (sd)": "mean error SE",
                        "worst sd error": "sd error SE",
                        "W2": "W2 SE",
                    }.items()
                    if k in table and v in table
                },
            )
        )
    return blocks


MODEL_PARTS: list[tuple[str, ModelPart]] = [
    ("log p(x) split into ELBO and KL", decomposition_part),
    ("ELBO during training", traces_part),
    ("", training_part),  # titled by itself, and only for models with learned parameters
    ("Estimators of log p(x)", estimators_part),
    ("Against the NUTS reference (no closed form)", reference_part),
    ("Posterior marginals: q vs the exact or reference posterior", marginals_part),
    ("Guide diagnostics: PSIS k-hat", diagnostics_part),
]


@dataclass(frozen=True)
class Models:
    """One part per model: the parts of MODEL_PARTS in order."""

    title: str = "Per model"

    def build(self, context: Context) -> list[Block]:
        rows = context.rows
        if rows.empty:
            return [_absent("any cell")]
        blocks: list[Block] = []
        step = schema.training_artifact("step")
        with_training = [d for d in tables.ok_rows(rows)[schema.DIGEST] if step in context.artifacts(d)]
        if not with_training:
            blocks.append(
                _absent(
                    "training curves (artifacts training.*: log p_θ(x), ELBO and KL along training, "
                    "stored for models with learned parameters such as ppca)"
                )
            )
        for model in tables.models(rows):
            model_rows = tables.of_model(rows, model)
            blocks.append(Heading(model, 3))
            blocks.append(Text(_describe(model_rows)))
            if tables.ok_rows(model_rows).empty:
                blocks.append(Text(f'No cell of {model} finished: see "{Failures.title}".', note=True))
                continue
            for title, part in MODEL_PARTS:
                built = part(context, model, model_rows)
                if built and title:
                    blocks.append(Heading(title, 4))
                blocks += built
        return blocks


def _describe(rows: pd.DataFrame) -> str:
    counts = _counts(rows[schema.STATUS])
    backends = ", ".join(dict.fromkeys(rows[schema.BACKEND]))
    guides = ", ".join(dict.fromkeys(rows[schema.GUIDE]))
    stored = [text for text in tables.column(rows, schema.PARAMS) if isinstance(text, str) and text]
    params = json.loads(stored[0]) if stored else {}
    text = f"{len(rows)} cells ({counts}): backends {backends}; guide families {guides}."
    if params:
        text += " Parameters: " + ", ".join(f"{k} = {v}" for k, v in params.items()) + "."
    return text


# ----------------------------------------------------------------------------------------- agreement
AGREEMENT = f"""\
The same model, guide family and seed fitted by different backends. Differences are in units of
SE = sqrt(SE_a² + SE_b²) of the two ELBO estimates (for the KL, the Monte Carlo KL's SE is added where
the KL is estimated rather than analytic); with a fixed model, ΔKL = −ΔELBO up to that noise. The SE
has a floor of {checks.LOG_JOINT_TOLERANCE:g} nats plus float64 rounding, what two conforming
implementations of the model's log joint may differ by: an exact value, such as an enumerated ELBO,
agrees when two libraries compute it that closely. A
difference beyond {checks.FLAG_SE:g} SE is flagged: the backends then reached different
fits (or one of them computes something else)."""


@dataclass(frozen=True)
class Agreement:
    """Backend pairs on the same cell: ELBO and KL differences in SE units; library vs suite ELBO."""

    title: str = "Backend agreement"

    def build(self, context: Context) -> list[Block]:
        table = tables.agreement_table(context.rows)
        blocks: list[Block] = [Text(AGREEMENT)]
        if table.empty:
            blocks.append(_absent("two backends on the same model, guide and seed"))
        else:
            flagged = int((table["flag"] != "").sum())
            blocks.append(Text(f"{len(table)} comparisons, {flagged} flagged."))
            frame = table.assign(
                comparison=table[schema.MODEL] + " / " + table[schema.GUIDE] + " / seed "
                + table[schema.SEED].astype(str)
                + ": " + table["pair"]
            )  # fmt: skip
            path = context.draw("agreement", figures.agreement_dots, frame, checks.FLAG_SE)
            blocks.append(
                Image(
                    path,
                    f"ΔELBO (blue) and ΔKL (orange) per backend pair in SE units; the green band is "
                    f"±{checks.FLAG_SE:g} SE. Symmetric-log axis.",
                    alt="backend differences in SE units",
                )
            )
            blocks.append(
                Table(
                    table,
                    caption="Differences a − b per backend pair (same model, guide, data seed and seed).",
                    formats={"ΔELBO": "{:+.3g}", "ΔELBO (SE)": SE2, "ΔKL": "{:+.3g}", "ΔKL (SE)": SE2},
                )
            )
        library = tables.library_table(context.rows)
        blocks.append(Heading("The libraries' own ELBO vs the suite's", 3))
        if library.empty:
            blocks.append(_absent("a library ELBO (Pyro's or NumPyro's Trace_ELBO after the fit)"))
        else:
            blocks.append(
                Table(
                    library,
                    caption="Pyro's / NumPyro's own Trace_ELBO of the fitted guide minus the suite's "
                    "hand-rolled ELBO estimate of the same guide, in nats and in combined SE units.",
                    formats={
                        "library ELBO": F4,
                        "suite ELBO": F4,
                        "difference": "{:+.3g}",
                        "difference (SE)": SE2,
                    },
                    pm={"library ELBO": "library SE", "suite ELBO": "suite SE"},
                )
            )
        return blocks


# ---------------------------------------------------------------------------------------------- cost
@dataclass(frozen=True)
class Cost:
    """Steps per second, compile and wall seconds per backend and model; estimator cost."""

    title: str = "Cost"

    def build(self, context: Context) -> list[Block]:
        rows = context.rows
        if rows.empty:
            return [_absent("any cell")]
        cost_formats = {
            "steps/s (median)": COUNT,
            "compile s (median)": SECONDS,
            "fit s (median)": SECONDS,
            "wall s (total)": "{:.1f}",
        }
        blocks: list[Block] = [
            Text(
                "Steps per second count SVI steps after compilation; compile seconds are the first "
                "(tracing/JIT) call; wall seconds cover a whole cell: fit, evaluation and the estimators "
                "of its fitted guide. Guide-free estimators ran once per data set, in problem units of "
                "their own, and are counted there, once."
            ),
            Table(tables.backend_cost_table(rows), caption="Per backend, all models.", formats=cost_formats),
        ]
        per_model = tables.cost_table(rows)
        plotted = per_model.dropna(subset=["steps/s (median)"])
        if not plotted.empty:
            path = context.draw("cost", figures.cost_bars, plotted)
            blocks.append(
                Image(
                    path,
                    "Median SVI steps per second (left) and compile seconds (right) per model and "
                    "backend, log scales (a backend without compilation shows no compile bar).",
                    alt="cost per model and backend",
                )
            )
        blocks.append(Table(per_model, caption="Per model and backend.", formats=cost_formats))
        problems = tables.problem_cost_table(context.problems)
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
        estimator_cost = tables.estimator_cost_table(context.estimates)
        if estimator_cost.empty:
            blocks.append(_absent("estimator costs (evaluations and seconds of the stored estimates)"))
        else:
            blocks.append(
                Table(
                    estimator_cost,
                    caption="Per estimator: where it ran (per cell, or once per problem), how many "
                    "times, likelihood evaluations and seconds per run, and in total; an estimate "
                    "shared by a problem's cells is counted once.",
                    formats={
                        "evaluations (median)": COUNT,
                        "seconds (median)": SECONDS,
                        "seconds (total)": "{:.1f}",
                    },
                )
            )
        return blocks


# ------------------------------------------------------------------------------------------ failures
ERROR_LINES = 25  # the last lines of a traceback are shown


@dataclass(frozen=True)
class Failures:
    """Cells (and problem units) that failed, diverged or timed out, with their errors, and planned
    ones with no result."""

    title: str = "Cells that did not finish"

    def build(self, context: Context) -> list[Block]:
        units = tables.units(context.rows, context.problems)
        problems = tables.planned_problems(context.manifest)
        planned = problems + tables.planned_cells(context.manifest)
        noun = "cells and problem units" if problems or not context.problems.empty else "cells"
        failures = tables.failures_table(units, planned)
        if failures.empty:
            return [Text(f"None: all {len(units)} {noun} finished with status ok.")]
        total = len(units) + int((failures["status"] == tables.NOT_RUN).sum())
        counts = _counts(failures["status"])
        blocks: list[Block] = [
            Text(
                f"{len(failures)} of {total} {noun} did not finish ({counts}); their numbers are "
                "absent above."
            ),
            Table(failures, caption="Status and first line of each error; the full errors follow."),
        ]
        for _, row in units[units[schema.STATUS] != schema.OK].iterrows():
            error = row.get(schema.ERROR)
            lines = (error if isinstance(error, str) and error else "(no error text)").rstrip().splitlines()
            shown = lines if len(lines) <= ERROR_LINES else ["...", *lines[-ERROR_LINES:]]
            blocks += [Heading(f"{row[schema.KEY]} ({row[schema.STATUS]})", 4), Code("\n".join(shown))]
        return blocks


# ----------------------------------------------------------------------------------------- run facts
@dataclass(frozen=True)
class RunFacts:
    """The manifest: times, command, configuration, versions."""

    title: str = "Run facts"

    def build(self, context: Context) -> list[Block]:
        manifest = context.manifest
        if not manifest:
            return [_absent("manifest.json")]
        blocks: list[Block] = [
            Table(tables.run_table(manifest, context.rows), caption="From the results folder's manifest.")
        ]
        config = tables.config_table(manifest)
        blocks += [Heading("Configuration", 3)]
        blocks += [Table(config)] if not config.empty else [_absent("the configuration")]
        versions = tables.versions_table(manifest)
        blocks += [Heading("Versions", 3)]
        blocks += [Table(versions)] if not versions.empty else [_absent("package versions")]
        return blocks


for _section in (Opening(), Models(), Agreement(), Cost(), Failures(), RunFacts()):
    register(_section)
