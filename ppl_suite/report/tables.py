"""Tables of a results folder as DataFrames; every number is a stored value or a pandas operation on them.

Nothing here draws, and nothing here estimates: the only arithmetic is differences, ratios and
group-wise medians/sums of stored columns. Tables keep numbers as numbers; the renderer formats them.
Column names are the results schema's (``ppl_suite.schema``): the cell table (``rows``), the long
estimates table (``estimates``: one row per cell or problem unit and estimator) and the problem units
(``problems``). A cell's guide-free estimates are its problem unit's (``problem_key``), shown once.
Every cell row has its identity and status; a cell that did not finish may have nothing else (a
timed-out cell: error and wall_seconds), so every other column is read through ``column``, and a
table whose columns are absent comes back empty.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ppl_suite import backends, schema
from ppl_suite.checks import FLAG_SE, implementation_allowance, in_se
from ppl_suite.schema import (
    BACKEND,
    CONVERGED,
    DATA_SEED,
    ELBO,
    ELBO_RELIABILITY,
    ELBO_SE,
    ERROR,
    GUIDE,
    KEY,
    KL,
    KL_IDENTITY,
    KL_MC_SE,
    KL_METHOD,
    LIBRARY_ELBO,
    LIBRARY_ELBO_SE,
    LOG_EVIDENCE,
    MODEL,
    OPTIMIZATION_GAP,
    PROBLEM_KEY,
    RESIDUAL_SE,
    SEED,
    STATUS,
    WALL_SECONDS,
)

# a row's status; others are listed after these
STATUS_ORDER = (schema.OK, schema.FAILED, schema.DIVERGED, schema.TIMEOUT)
NOT_RUN = "not run"  # a planned cell (manifest) without a row: the run stopped before it finished
RELIABLE = "reliable"  # the reliability label whose SE is valid (ppl_suite.estimate.RELIABILITY)
UNRELIABLE = "unreliable"  # the label of an estimate whose SE a diagnostic says cannot be trusted
APPROXIMATION = "approximation"  # the kind and the reliability label of a deterministic approximation
GUIDE_FREE = "once per problem"  # in place of a backend: a guide-free estimate, shared by the problem's cells
LOG_EVIDENCE_QUANTITY = "log_evidence"  # the estimators' quantity names (ppl_suite.estimators.QUANTITIES)
PARETO_K_QUANTITY = "pareto_k"
INCLUSIVE_KL_QUANTITY = "kl_from_posterior"
MEAN_ERROR_QUANTITY = "posterior_mean_error"
WASSERSTEIN_QUANTITY = "wasserstein_to_reference"
REFERENCE_METHOD = schema.KL_BY_REFERENCE


# --------------------------------------------------------------------------------------------- helpers
def model_labels(rows: pd.DataFrame) -> pd.Series:
    """The model part of each cell key: ``model`` or ``model[k=v,...]`` when parameters were overridden."""
    return rows[KEY].str.split("/").str[0]


def models(rows: pd.DataFrame) -> list[str]:
    """Model labels in the order of the rows (sorted by key)."""
    return list(dict.fromkeys(model_labels(rows))) if not rows.empty else []


def of_model(rows: pd.DataFrame, model: str) -> pd.DataFrame:
    return rows[model_labels(rows) == model]


def ok_rows(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows[STATUS] == schema.OK] if not rows.empty else rows


def column(rows: pd.DataFrame, name: str) -> pd.Series:
    """A column, or NaN everywhere when the store has no such column (an older or smaller run)."""
    return rows[name] if name in rows else pd.Series(np.nan, index=rows.index, dtype=float)


def text_column(rows: pd.DataFrame, name: str) -> pd.Series:
    """A column of text, with '' where the store has no such column or the row no value."""
    return column(rows, name).map(lambda value: value if isinstance(value, str) else "").astype(object)


def reliability(rows: pd.DataFrame, name: str, kind: str = "") -> pd.Series:
    """The stored reliability label of each row (column ``name``, e.g. ``elbo_reliability``); where it
    has none, "approximation" for an estimator of that kind and "reliable" otherwise."""
    stored = column(rows, name)
    default = APPROXIMATION if kind == APPROXIMATION else RELIABLE
    return stored.where(stored.notna() & (stored != ""), default).astype(object)


def trusted_se(se: pd.Series, label: pd.Series) -> pd.Series:
    """The SE where the reliability label says it is valid, NaN elsewhere: an unreliable estimate or an
    approximation has no SE to show, and no error in SE units."""
    return se.where(label == RELIABLE)


def status_counts(status: pd.Series) -> dict[str, int]:
    """How many cells have each status, in STATUS_ORDER then NOT_RUN (others after, alphabetically)."""
    counts = status.value_counts()
    known = (*STATUS_ORDER, NOT_RUN)
    order = [*known, *sorted(set(counts.index) - set(known))]
    return {status: int(counts[status]) for status in order if status in counts}


def _backend_rank(backend: pd.Series) -> pd.Series:
    """A backend's place in the registry's order (the shipped ones first); unregistered ones last."""
    order = {name: i for i, name in enumerate(backends.names())}
    return backend.map(lambda b: order.get(b, len(order)))


def in_display_order(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by model, guide, backend (pyro, numpyro, handrolled, others), data seed, seed."""
    if rows.empty:
        return rows
    keyed = rows.assign(_model=model_labels(rows), _rank=_backend_rank(rows[BACKEND]))
    keyed = keyed.sort_values(["_model", GUIDE, "_rank", BACKEND, DATA_SEED, SEED], kind="stable")
    return keyed.drop(columns=["_model", "_rank"])


def cell_labels(rows: pd.DataFrame, with_model: bool = False) -> pd.Series:
    """Short cell names: ``backend / guide / seed s`` (data seed too when it differs from the seed)."""

    def label(row: pd.Series) -> str:
        data, seed = row[DATA_SEED], row[SEED]
        seeds = f"seed {seed}" if data == seed else f"data {data}, seed {seed}"
        text = f"{row[BACKEND]} / {row[GUIDE]} / {seeds}"
        return f"{row[KEY].split('/')[0]}: {text}" if with_model else text

    return pd.Series([label(row) for _, row in rows.iterrows()], index=rows.index, dtype=object)


def problem_labels(problems: pd.DataFrame) -> pd.Series:
    """Short names of problem units, in the place of a cell's: ``data d (once for its cells)``."""
    return problems[DATA_SEED].map(lambda seed: f"data {seed} ({GUIDE_FREE})").astype(object)


# --------------------------------------------------------------------------------- the identity tables
def identity_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per ok cell as text (for the console): log p(x) = ELBO + KL, residual, cost. An ELBO
    whose SE is not reliable (``elbo_reliability``) is shown with its label instead of an SE, and
    without a residual in SE units."""
    ok = ok_rows(rows)
    if ok.empty:
        return pd.DataFrame()
    label = reliability(ok, ELBO_RELIABILITY)
    se = trusted_se(column(ok, ELBO_SE), label)

    def pm(value: float, se: float, label: str) -> str:
        return f"{value:.4f} ± {se:.4f}" if label == RELIABLE else f"{value:.4f} ({label})"

    def formatted(values: pd.Series, fmt: str) -> pd.Series:
        return values.map(lambda v: "" if pd.isna(v) else fmt.format(v))

    table = pd.DataFrame(
        {
            "model": model_labels(ok),
            "backend": ok[BACKEND],
            "guide": ok[GUIDE],
            "seed": ok[SEED],
            "ELBO ± SE": [pm(*v) for v in zip(column(ok, ELBO), se, label, strict=True)],
            "log p(x)": formatted(column(ok, LOG_EVIDENCE), "{:.4f}"),
            "KL(q||p)": formatted(column(ok, KL), "{:.2e}"),
            "KL route": text_column(ok, KL_METHOD),
            "residual (SE)": formatted(column(ok, RESIDUAL_SE).where(label == RELIABLE), "{:+.2f}"),
            "opt. gap": formatted(column(ok, OPTIMIZATION_GAP), "{:.1e}"),
            "converged": column(ok, CONVERGED),
            "wall s": formatted(column(ok, WALL_SECONDS), "{:.1f}"),
            "steps/s": formatted(column(ok, schema.STEPS_PER_SECOND), "{:,.0f}"),
            "compile s": formatted(column(ok, schema.COMPILE_SECONDS), "{:.2f}"),
        }
    )
    return table.reset_index(drop=True)


def evidence_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per cell: exact log p(x), ELBO and its SE, KL(q || p(z|x)), residual in SE units.

    The residual (log p(x) - ELBO - KL) / SE is the store's ``residual_se``; cells that did not
    finish keep their line with their status and empty numbers. Where the ELBO's SE is not reliable
    (``elbo_reliability``), the SE and the residual in SE units are left out and a column "ELBO
    reliability" gives the label.
    """
    if rows.empty:
        return pd.DataFrame()
    rows = in_display_order(rows)
    label = reliability(rows, ELBO_RELIABILITY).where(rows[STATUS] == schema.OK, "")
    trusted = (label == RELIABLE) | (label == "")
    table = pd.DataFrame(
        {
            "model": model_labels(rows),
            "backend": rows[BACKEND],
            "guide": rows[GUIDE],
            "data": rows[DATA_SEED],
            "seed": rows[SEED],
            "status": rows[STATUS],
            "log p(x)": column(rows, LOG_EVIDENCE),
            "ELBO": column(rows, ELBO),
            "ELBO SE": column(rows, ELBO_SE).where(trusted),
            "KL(q||p)": column(rows, KL),
            "KL route": text_column(rows, KL_METHOD),
            "residual (SE)": column(rows, RESIDUAL_SE).where(trusted),
            "opt. gap": column(rows, OPTIMIZATION_GAP),
            "converged": column(rows, CONVERGED),
        }
    )
    if not trusted.all():
        table.insert(table.columns.get_loc("ELBO SE") + 1, "ELBO reliability", label.to_numpy())
    return table.reset_index(drop=True)


def decomposition(rows: pd.DataFrame) -> pd.DataFrame:
    """Per ok cell: log p(x), ELBO ± SE, KL and log p(x) - ELBO (the store's ``kl_identity``)."""
    ok = in_display_order(ok_rows(rows))
    return pd.DataFrame(
        {
            "cell": cell_labels(ok),
            "backend": ok[BACKEND],
            "guide": ok[GUIDE],
            "log_evidence": column(ok, LOG_EVIDENCE),
            "elbo": column(ok, ELBO),
            "elbo_se": column(ok, ELBO_SE),
            "kl": column(ok, KL),
            "gap": column(ok, KL_IDENTITY),
        }
    ).reset_index(drop=True)


# ------------------------------------------------------------------------------------------ estimators
def finished(estimates: pd.DataFrame, quantity: str | None = None) -> pd.DataFrame:
    """The estimates that finished (not skipped, not failed), of ``quantity`` when given."""
    keep = estimates[schema.STATUS] == schema.ESTIMATE_OK
    if quantity is not None:
        keep &= estimates[schema.QUANTITY] == quantity
    return estimates[keep]


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


def _per_cell(ok: pd.DataFrame, estimates: pd.DataFrame, quantity: str) -> pd.DataFrame:
    """The first finished estimate of ``quantity`` of each cell of ``ok``, aligned to its index (NaN
    where it has none): value, se and extras (a dict)."""
    aligned = finished(estimates, quantity).drop_duplicates(KEY).set_index(KEY).reindex(ok[KEY])
    return pd.DataFrame(
        {
            "value": aligned[schema.VALUE].to_numpy(dtype=float),
            "se": aligned[schema.SE].to_numpy(dtype=float),
            "extras": [schema.extras(text) for text in aligned[schema.EXTRAS]],
        },
        index=ok.index,
    )


def diagnostics_table(rows: pd.DataFrame, estimates: pd.DataFrame) -> pd.DataFrame:
    """Per ok cell: PSIS k-hat with its reading, and the inclusive KL(p || q) ± SE, where stored."""
    ok = in_display_order(ok_rows(rows))
    khat = _per_cell(ok, estimates, PARETO_K_QUANTITY)
    inclusive = _per_cell(ok, estimates, INCLUSIVE_KL_QUANTITY)
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


def with_exact(rows: pd.DataFrame) -> pd.DataFrame:
    """The cells whose log p(x) is exact: all but those measured against a NUTS reference."""
    return rows[text_column(rows, KL_METHOD) != REFERENCE_METHOD] if not rows.empty else rows


def reference_lines(rows: pd.DataFrame) -> list[str]:
    """The distinct descriptions of the NUTS references (or why none was built) of ``rows``."""
    return [text for text in dict.fromkeys(text_column(rows, schema.REFERENCE)) if text]


def reference_table(rows: pd.DataFrame, estimates: pd.DataFrame) -> pd.DataFrame:
    """Per ok cell compared with a NUTS reference: KL = AIS log p(x) - ELBO ± SE, the worst
    standardized errors of q's posterior means and sds (with their coordinates), the 2-Wasserstein
    distance to the reference draws ± SE beside the reference's own floor, and the PSIS k-hat."""
    ok = in_display_order(ok_rows(rows))
    ok = ok[text_column(ok, KL_METHOD) == REFERENCE_METHOD]
    if ok.empty:
        return pd.DataFrame()
    moments = _per_cell(ok, estimates, MEAN_ERROR_QUANTITY)
    distance = _per_cell(ok, estimates, WASSERSTEIN_QUANTITY)
    khat = _per_cell(ok, estimates, PARETO_K_QUANTITY)

    def extra(frame: pd.DataFrame, name: str) -> pd.Series:
        return frame["extras"].map(lambda extras: extras.get(name, np.nan))

    table = pd.DataFrame(
        {
            "backend": ok[BACKEND],
            "guide": ok[GUIDE],
            "seed": ok[SEED],
            "KL(q||p)": column(ok, KL),
            "KL SE": column(ok, schema.KL_SE),
            "KL reliability": text_column(ok, schema.KL_RELIABILITY),
            "worst mean error (sd)": moments["value"],
            "mean error SE": moments["se"],
            "at": extra(moments, "coordinate"),
            "worst sd error": extra(moments, "worst_sd_error"),
            "sd error SE": extra(moments, "worst_sd_error_se"),
            "sd at": extra(moments, "worst_sd_coordinate"),
            "W2": distance["value"],
            "W2 SE": distance["se"],
            "W2 floor": extra(distance, "floor"),
            "k-hat": khat["value"],
        }
    )
    if (table["KL reliability"] == RELIABLE).all():
        table = table.drop(columns="KL reliability")
    return table.drop(columns=[c for c in table if table[c].isna().all()]).reset_index(drop=True)


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


def _names_in(texts: pd.Series) -> str:
    """The estimator names of JSON lists, each once, in order."""
    return ", ".join(dict.fromkeys(name for text in texts for name in json.loads(text)))


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


# ---------------------------------------------------------------------------------- backend agreement
AGREEMENT_KEYS = [MODEL, GUIDE, DATA_SEED, SEED]


def agreement_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Every pair of backends on the same (model, guide, data seed, seed): ELBO and KL differences in
    nats and in units of SE = sqrt(SE_a^2 + SE_b^2) of the two ELBO estimates (and of the Monte Carlo
    KL estimates, where the KL is estimated), flagged when either |difference| > 4 SE. A pair with an
    ELBO whose SE is not reliable (``elbo_reliability``) has no differences in SE units, and says so."""
    ok = ok_rows(rows)
    if ok.empty:
        return pd.DataFrame()
    ok = ok.assign(
        model=model_labels(ok),
        elbo_se=trusted_se(column(ok, ELBO_SE), reliability(ok, ELBO_RELIABILITY)),
        kl_noise=np.where(column(ok, KL_METHOD) == "monte_carlo", column(ok, KL_MC_SE), 0.0),
    )
    lines = []
    for key, group in ok.groupby(AGREEMENT_KEYS, sort=True):
        group = group.assign(_rank=_backend_rank(group[BACKEND])).sort_values(["_rank", BACKEND])
        for a, b in itertools.combinations(group.itertuples(), 2):
            elbo_se = float(
                np.hypot(np.hypot(a.elbo_se, b.elbo_se), implementation_allowance(a.elbo, b.elbo))
            )
            kl_se = float(np.hypot(elbo_se, np.hypot(a.kl_noise, b.kl_noise)))
            d_elbo, d_kl = a.elbo - b.elbo, a.kl - b.kl
            lines.append(
                dict(
                    zip(AGREEMENT_KEYS, key, strict=True),
                    pair=f"{a.backend} − {b.backend}",
                    **{
                        "ΔELBO": d_elbo,
                        "ΔELBO (SE)": in_se(d_elbo, elbo_se),
                        "ΔKL": d_kl,
                        "ΔKL (SE)": in_se(d_kl, kl_se),
                    },
                )
            )
    table = pd.DataFrame(lines)
    if table.empty:
        return table
    worst = table[["ΔELBO (SE)", "ΔKL (SE)"]].abs().max(axis=1)
    table["flag"] = _flags(worst)
    return table.rename(columns={DATA_SEED: "data"})


def _flags(worst: pd.Series) -> np.ndarray:
    """A difference's flag from its size in SE units: beyond FLAG_SE, or none (NaN: an SE
    that is not reliable)."""
    beyond = np.where(worst > FLAG_SE, f"> {FLAG_SE:g} SE", "")
    return np.where(worst.isna(), "no valid SE", beyond)


def library_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per ok cell with a library ELBO (Pyro's or NumPyro's own Trace_ELBO after the fit): the library
    value minus the suite's ELBO estimate, in nats and in units of their combined SE (none where the
    suite's SE is not reliable)."""
    ok = in_display_order(ok_rows(rows))
    ok = ok[column(ok, LIBRARY_ELBO).notna() & column(ok, ELBO).notna()]
    if ok.empty:
        return pd.DataFrame()
    ok = ok.assign(elbo_se=trusted_se(ok[ELBO_SE], reliability(ok, ELBO_RELIABILITY)))
    se = np.hypot(
        np.hypot(ok[LIBRARY_ELBO_SE], ok[ELBO_SE]), implementation_allowance(ok[LIBRARY_ELBO], ok[ELBO])
    )
    diff = ok[LIBRARY_ELBO] - ok[ELBO]
    table = pd.DataFrame(
        {
            "model": model_labels(ok),
            "backend": ok[BACKEND],
            "guide": ok[GUIDE],
            "data": ok[DATA_SEED],
            "seed": ok[SEED],
            "library ELBO": ok[LIBRARY_ELBO],
            "library SE": ok[LIBRARY_ELBO_SE],
            "suite ELBO": ok[ELBO],
            "suite SE": ok[ELBO_SE],
            "difference": diff,
            "difference (SE)": [in_se(d, s) for d, s in zip(diff, se, strict=True)],
        }
    )
    table["flag"] = _flags(table["difference (SE)"].abs())
    return table.reset_index(drop=True)


# ------------------------------------------------------------------------------------------------ cost
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
    return rows.assign(**{name: column(rows, name) for name in costs}, _rank=_backend_rank(rows[BACKEND]))


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


# ------------------------------------------------------------------------------------------- posterior
def draw_labels(row: pd.Series) -> list[str]:
    """The latent coordinates of a cell's stored draws (the row's JSON ``draw_labels``)."""
    text = row.get(schema.DRAW_LABELS)
    return json.loads(text) if isinstance(text, str) and text else []


def posterior_summary(draws: dict[str, np.ndarray], labels: list[str]) -> pd.DataFrame:
    """ArviZ's summary (mean, sd, 94% HDI) of each named set of draws (draws x coordinates), one line
    per (coordinate, source). Draws are converted to InferenceData with one chain."""
    import arviz as az  # deferred: ArviZ is heavy, and only reports need it

    parts = []
    for source, values in draws.items():
        data = {label: np.asarray(values)[None, :, i] for i, label in enumerate(labels)}
        summary = az.summary(az.from_dict(posterior=data), kind="stats", round_to="none")
        summary.insert(0, "draws of", source)
        parts.append(summary.rename_axis("coordinate").reset_index())
    if not parts:
        return pd.DataFrame()
    table = pd.concat(parts, ignore_index=True)
    order = {label: i for i, label in enumerate(labels)}
    table["_order"] = table["coordinate"].map(order)
    return table.sort_values(["_order"], kind="stable").drop(columns="_order").reset_index(drop=True)


# ---------------------------------------------------------------------------------- failures and facts
def failures_table(rows: pd.DataFrame, planned: Sequence[str] = ()) -> pd.DataFrame:
    """Units (cells, or cells and problem units) that did not finish: key, status (failed, diverged,
    timeout...) and the first line of the error; then the ``planned`` keys that have no row at all,
    with status NOT_RUN."""
    bad = rows[rows[STATUS] != schema.OK] if not rows.empty else rows
    stored = set(rows[KEY]) if not rows.empty else set()
    first_line = text_column(bad, ERROR).map(lambda text: next(iter(text.splitlines()), ""))
    table = pd.DataFrame({"cell": column(bad, KEY), "status": column(bad, STATUS), "error": first_line})
    missing = [key for key in dict.fromkeys(planned) if key not in stored]
    not_run = pd.DataFrame(
        {"cell": missing, "status": NOT_RUN, "error": "no result stored: the run ended before this cell did"}
    )
    return pd.concat([table, not_run], ignore_index=True) if missing else table.reset_index(drop=True)


def planned_cells(manifest: dict[str, Any]) -> list[str]:
    """The keys of the cells the run planned (the manifest's ``cells``), [] where it does not say."""
    return _planned(manifest, schema.MANIFEST_CELLS)


def planned_problems(manifest: dict[str, Any]) -> list[str]:
    """The keys of the problem units the run planned (the manifest's ``problems``)."""
    return _planned(manifest, schema.MANIFEST_PROBLEMS)


def _planned(manifest: dict[str, Any], name: str) -> list[str]:
    keys = manifest.get(name)
    return [str(key) for key in keys] if isinstance(keys, list) else []


def units(rows: pd.DataFrame, problems: pd.DataFrame) -> pd.DataFrame:
    """Problem units and cells in one table (their common columns: key, status, error...)."""
    if problems.empty:
        return rows
    return problems if rows.empty else pd.concat([problems, rows], ignore_index=True)


def run_table(manifest: dict[str, Any], rows: pd.DataFrame) -> pd.DataFrame:
    """When, where and how the run ran: the manifest's scalar facts and the count of cells by status."""
    facts = {
        "started": manifest.get(schema.MANIFEST_STARTED),
        "finished": manifest.get(schema.MANIFEST_FINISHED),
        "git commit": manifest.get(schema.MANIFEST_GIT_COMMIT),
        "host": manifest.get(schema.MANIFEST_HOST),
        "executor": manifest.get(schema.MANIFEST_EXECUTOR),
        "jobs": manifest.get(schema.MANIFEST_JOBS),
        "command": " ".join(map(str, manifest.get(schema.MANIFEST_COMMAND) or [])) or None,
        "schema version": manifest.get(schema.VERSION),
        "cells planned": len(planned_cells(manifest)) or None,
        "problem units planned": len(planned_problems(manifest)) or None,
    }
    for status, count in status_counts(column(rows, STATUS)).items():
        facts[f"cells {status}"] = count
    return pd.DataFrame([{"fact": k, "value": str(v)} for k, v in facts.items() if v is not None and v != ""])


def versions_table(manifest: dict[str, Any]) -> pd.DataFrame:
    """Package versions recorded in the manifest."""
    versions = manifest.get(schema.MANIFEST_VERSIONS) or {}
    return pd.DataFrame([{"package": k, "version": str(v)} for k, v in versions.items()])


def config_table(manifest: dict[str, Any]) -> pd.DataFrame:
    """The run's configuration, flattened to dotted keys (``svi.steps``)."""
    lines: list[dict[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            text = ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
            lines.append({"setting": prefix, "value": text})

    walk("", manifest.get(schema.MANIFEST_CONFIG) or {})
    return pd.DataFrame(lines)
