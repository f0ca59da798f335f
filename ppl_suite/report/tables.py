"""Tables of a results folder as DataFrames; every number is a column of the store or a pandas operation.

Nothing here draws, and nothing here estimates: the only arithmetic is differences, ratios and
group-wise medians/sums of stored columns. Tables keep numbers as numbers; the renderer formats them.
Estimator columns follow the store's convention ``est_<name>``, ``est_<name>_se``, ``est_<name>_n_evals``,
``est_<name>_seconds``, ``est_<name>_kind``, ``est_<name>_quantity``, ``est_<name>_reliability`` and
``est_<name>_diagnostic``. Every row has its identity (key, model, backend, guide, data_seed, seed) and
status; a cell that did not finish may have nothing else (a timed-out cell: error and wall_seconds), so
every other column is read through ``column``, and a table whose columns are absent comes back empty.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ppl_suite.checks import FLAG_SE, in_se, rounding

BACKEND_ORDER = ("pyro", "numpyro", "handrolled")
STATUS_ORDER = ("ok", "failed", "diverged", "timeout")  # a row's status; others are listed after these
NOT_RUN = "not run"  # a planned cell (manifest) without a row: the run stopped before it finished
RELIABLE = "reliable"  # the reliability label whose SE is valid (ppl_suite.estimate.RELIABILITY)
UNRELIABLE = "unreliable"  # the label of an estimate whose SE a diagnostic says cannot be trusted
APPROXIMATION = "approximation"  # the kind and the reliability label of a deterministic approximation


# --------------------------------------------------------------------------------------------- helpers
def model_labels(rows: pd.DataFrame) -> pd.Series:
    """The model part of each cell key: ``model`` or ``model[k=v,...]`` when parameters were overridden."""
    return rows["key"].str.split("/").str[0]


def models(rows: pd.DataFrame) -> list[str]:
    """Model labels in the order of the rows (sorted by key)."""
    return list(dict.fromkeys(model_labels(rows))) if not rows.empty else []


def of_model(rows: pd.DataFrame, model: str) -> pd.DataFrame:
    return rows[model_labels(rows) == model]


def ok_rows(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["status"] == "ok"] if not rows.empty else rows


def column(rows: pd.DataFrame, name: str) -> pd.Series:
    """A column, or NaN everywhere when the store has no such column (an older or smaller run)."""
    return rows[name] if name in rows else pd.Series(np.nan, index=rows.index, dtype=float)


def text_column(rows: pd.DataFrame, name: str) -> pd.Series:
    """A column of text, with '' where the store has no such column or the row no value."""
    return column(rows, name).map(lambda value: value if isinstance(value, str) else "").astype(object)


def reliability(rows: pd.DataFrame, name: str, kind: str = "") -> pd.Series:
    """The stored reliability label of each row (column ``name``, e.g. ``est_ais_reliability``); where a
    folder has none (older runs), "approximation" for an estimator of that kind and "reliable" otherwise."""
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
    order = {name: i for i, name in enumerate(BACKEND_ORDER)}
    return backend.map(lambda b: order.get(b, len(order)))


def in_display_order(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by model, guide, backend (pyro, numpyro, handrolled, others), data seed, seed."""
    if rows.empty:
        return rows
    keyed = rows.assign(_model=model_labels(rows), _rank=_backend_rank(rows["backend"]))
    keyed = keyed.sort_values(["_model", "guide", "_rank", "backend", "data_seed", "seed"], kind="stable")
    return keyed.drop(columns=["_model", "_rank"])


def cell_labels(rows: pd.DataFrame, with_model: bool = False) -> pd.Series:
    """Short cell names: ``backend / guide / seed s`` (data seed too when it differs from the seed)."""

    def label(row: Any) -> str:
        seed = f"seed {row.seed}" if row.data_seed == row.seed else f"data {row.data_seed}, seed {row.seed}"
        text = f"{row.backend} / {row.guide} / {seed}"
        return f"{row.key.split('/')[0]}: {text}" if with_model else text

    return pd.Series([label(r) for r in rows.itertuples()], index=rows.index, dtype=object)


# --------------------------------------------------------------------------------- the identity tables
def identity_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per ok cell as text (for the console): log p(x) = ELBO + KL, residual, cost. An ELBO
    whose SE is not reliable (``elbo_reliability``) is shown with its label instead of an SE, and
    without a residual in SE units."""
    ok = ok_rows(rows)
    if ok.empty:
        return pd.DataFrame()
    label = reliability(ok, "elbo_reliability")
    se = trusted_se(column(ok, "elbo_se"), label)

    def pm(value: float, se: float, label: str) -> str:
        return f"{value:.4f} ± {se:.4f}" if label == RELIABLE else f"{value:.4f} ({label})"

    def formatted(values: pd.Series, fmt: str) -> pd.Series:
        return values.map(lambda v: "" if pd.isna(v) else fmt.format(v))

    table = pd.DataFrame(
        {
            "model": model_labels(ok),
            "backend": ok["backend"],
            "guide": ok["guide"],
            "seed": ok["seed"],
            "ELBO ± SE": [pm(*v) for v in zip(column(ok, "elbo"), se, label, strict=True)],
            "log p(x)": formatted(column(ok, "log_evidence"), "{:.4f}"),
            "KL(q||p)": formatted(column(ok, "kl"), "{:.2e}"),
            "KL route": text_column(ok, "kl_method"),
            "residual (SE)": formatted(column(ok, "residual_se").where(label == RELIABLE), "{:+.2f}"),
            "opt. gap": formatted(column(ok, "optimization_gap"), "{:.1e}"),
            "converged": column(ok, "converged"),
            "wall s": formatted(column(ok, "wall_seconds"), "{:.1f}"),
            "steps/s": formatted(column(ok, "steps_per_second"), "{:,.0f}"),
            "compile s": formatted(column(ok, "compile_seconds"), "{:.2f}"),
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
    label = reliability(rows, "elbo_reliability").where(rows["status"] == "ok", "")
    trusted = (label == RELIABLE) | (label == "")
    table = pd.DataFrame(
        {
            "model": model_labels(rows),
            "backend": rows["backend"],
            "guide": rows["guide"],
            "data": rows["data_seed"],
            "seed": rows["seed"],
            "status": rows["status"],
            "log p(x)": column(rows, "log_evidence"),
            "ELBO": column(rows, "elbo"),
            "ELBO SE": column(rows, "elbo_se").where(trusted),
            "KL(q||p)": column(rows, "kl"),
            "KL route": text_column(rows, "kl_method"),
            "residual (SE)": column(rows, "residual_se").where(trusted),
            "opt. gap": column(rows, "optimization_gap"),
            "converged": column(rows, "converged"),
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
            "backend": ok["backend"],
            "guide": ok["guide"],
            "log_evidence": column(ok, "log_evidence"),
            "elbo": column(ok, "elbo"),
            "elbo_se": column(ok, "elbo_se"),
            "kl": column(ok, "kl"),
            "gap": column(ok, "kl_identity"),
        }
    ).reset_index(drop=True)


# ------------------------------------------------------------------------------------------ estimators
def estimator_names(rows: pd.DataFrame) -> list[str]:
    """Names of the estimators of log p(x) in the store: ``est_<name>`` with ``est_<name>_quantity``
    log_evidence (the others estimate an ELBO, a KL or a diagnostic such as PSIS k-hat)."""
    names = []
    for name in rows.columns:
        if not (name.startswith("est_") and name.endswith("_quantity")):
            continue
        stem = name.removeprefix("est_").removesuffix("_quantity")
        if f"est_{stem}" in rows and (rows[name] == "log_evidence").any():
            names.append(stem)
    return names


def estimator_kind(rows: pd.DataFrame, name: str) -> str:
    """The estimator's kind as stored (``est_<name>_kind``, e.g. lower_bound), or '' where absent."""
    stored = column(rows, f"est_{name}_kind").dropna()
    return str(stored.iloc[0]) if len(stored) else ""


def estimator_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Every log p(x) estimate of every ok cell: value, SE, error vs exact in nats and in SE units,
    reliability, likelihood evaluations and seconds.

    Only a reliable estimate shows an SE and an error in SE units: an unreliable one shows
    "unreliable: <diagnostic>" (e.g. "unreliable: k-hat 0.81 > 0.70"), an approximation (Laplace)
    "approximation" and its error in nats alone. Error in SE units is NaN for exact values (SE 0) too."""
    ok = in_display_order(ok_rows(rows))
    parts = []
    for name in estimator_names(ok):
        kind = estimator_kind(ok, name)
        label = reliability(ok, f"est_{name}_reliability", kind)
        diagnostic = text_column(ok, f"est_{name}_diagnostic")
        shown = label.where((label != UNRELIABLE) | (diagnostic == ""), label + ": " + diagnostic)
        value = ok[f"est_{name}"]
        se = trusted_se(column(ok, f"est_{name}_se"), label)
        error = value - column(ok, "log_evidence")
        parts.append(
            pd.DataFrame(
                {
                    "estimator": name,
                    "kind": kind.replace("_", " "),
                    "cell": cell_labels(ok),
                    "log p(x)": column(ok, "log_evidence"),
                    "estimate": value,
                    "SE": se,
                    "error (nats)": error,
                    "error (SE)": error / se.where(se > 0),
                    "reliability": shown,
                    "evaluations": column(ok, f"est_{name}_n_evals"),
                    "seconds": column(ok, f"est_{name}_seconds"),
                }
            )
        )
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts).dropna(subset=["estimate"]).reset_index(drop=True)


def diagnostics_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per ok cell: PSIS k-hat with its reading, and the inclusive KL(p || q) ± SE, where stored."""
    ok = in_display_order(ok_rows(rows))
    table = pd.DataFrame(
        {
            "backend": ok["backend"],
            "guide": ok["guide"],
            "data": ok["data_seed"],
            "seed": ok["seed"],
            "k-hat": column(ok, "est_psis"),
            "reading": column(ok, "est_psis.interpretation"),
            "KL(p||q)": column(ok, "est_inclusive_kl"),
            "KL(p||q) SE": column(ok, "est_inclusive_kl_se"),
        }
    )
    table = table.dropna(subset=["k-hat", "KL(p||q)"], how="all")
    return table.drop(columns=[c for c in table if table[c].isna().all()]).reset_index(drop=True)


def estimator_cost_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per estimator: cells, median evaluations and seconds per cell, and total seconds."""
    ok = ok_rows(rows)
    lines = []
    for name in estimator_names(ok):
        evals, seconds = column(ok, f"est_{name}_n_evals"), column(ok, f"est_{name}_seconds")
        lines.append(
            {
                "estimator": name,
                "cells": int(ok[f"est_{name}"].notna().sum()),
                "evaluations (median)": evals.median(),
                "seconds (median)": seconds.median(),
                "seconds (total)": seconds.sum(min_count=1),
            }
        )
    return pd.DataFrame(lines)


# ---------------------------------------------------------------------------------- backend agreement
AGREEMENT_KEYS = ["model", "guide", "data_seed", "seed"]


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
        elbo_se=trusted_se(column(ok, "elbo_se"), reliability(ok, "elbo_reliability")),
        kl_noise=np.where(column(ok, "kl_method") == "monte_carlo", column(ok, "kl_mc_se"), 0.0),
    )
    lines = []
    for key, group in ok.groupby(AGREEMENT_KEYS, sort=True):
        group = group.assign(_rank=_backend_rank(group["backend"])).sort_values(["_rank", "backend"])
        for a, b in itertools.combinations(group.itertuples(), 2):
            elbo_se = float(np.hypot(np.hypot(a.elbo_se, b.elbo_se), rounding(a.elbo, b.elbo)))
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
    return table.rename(columns={"data_seed": "data"})


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
    ok = ok[column(ok, "library_elbo").notna() & column(ok, "elbo").notna()]
    if ok.empty:
        return pd.DataFrame()
    ok = ok.assign(elbo_se=trusted_se(ok["elbo_se"], reliability(ok, "elbo_reliability")))
    se = np.hypot(np.hypot(ok["library_elbo_se"], ok["elbo_se"]), rounding(ok["library_elbo"], ok["elbo"]))
    diff = ok["library_elbo"] - ok["elbo"]
    table = pd.DataFrame(
        {
            "model": model_labels(ok),
            "backend": ok["backend"],
            "guide": ok["guide"],
            "data": ok["data_seed"],
            "seed": ok["seed"],
            "library ELBO": ok["library_elbo"],
            "library SE": ok["library_elbo_se"],
            "suite ELBO": ok["elbo"],
            "suite SE": ok["elbo_se"],
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
    grouped = frame.groupby(["model", "_rank", "backend"], sort=True)
    table = grouped.agg(
        cells=("key", "size"),
        **{
            "steps/s (median)": ("steps_per_second", "median"),
            "compile s (median)": ("compile_seconds", "median"),
            "fit s (median)": ("fit_seconds", "median"),
            "wall s (total)": ("wall_seconds", "sum"),
        },
    )
    return table.reset_index().drop(columns="_rank")


def _with_costs(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows with every cost column (NaN where the store has none: cells that never fitted) and the
    backends' rank."""
    costs = ("steps_per_second", "compile_seconds", "fit_seconds", "wall_seconds")
    return rows.assign(**{name: column(rows, name) for name in costs}, _rank=_backend_rank(rows["backend"]))


def backend_cost_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per backend over all models: cells, median steps/s, median compile seconds, total wall seconds."""
    if rows.empty:
        return pd.DataFrame()
    frame = _with_costs(rows)
    table = frame.groupby(["_rank", "backend"], sort=True).agg(
        cells=("key", "size"),
        **{
            "steps/s (median)": ("steps_per_second", "median"),
            "compile s (median)": ("compile_seconds", "median"),
            "wall s (total)": ("wall_seconds", "sum"),
        },
    )
    return table.reset_index().drop(columns="_rank")


# ------------------------------------------------------------------------------------------- posterior
def draw_labels(row: pd.Series) -> list[str]:
    """The latent coordinates of a cell's stored draws (the row's JSON ``draw_labels``)."""
    text = row.get("draw_labels")
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
    """Cells that did not finish: key, status (failed, diverged, timeout...) and the first line of the
    error; then the ``planned`` cell keys that have no row at all, with status NOT_RUN."""
    bad = rows[rows["status"] != "ok"] if not rows.empty else rows
    stored = set(rows["key"]) if not rows.empty else set()
    first_line = text_column(bad, "error").map(lambda text: next(iter(text.splitlines()), ""))
    table = pd.DataFrame({"cell": column(bad, "key"), "status": column(bad, "status"), "error": first_line})
    missing = [key for key in dict.fromkeys(planned) if key not in stored]
    not_run = pd.DataFrame(
        {"cell": missing, "status": NOT_RUN, "error": "no result stored: the run ended before this cell did"}
    )
    return pd.concat([table, not_run], ignore_index=True) if missing else table.reset_index(drop=True)


def planned_cells(manifest: dict[str, Any]) -> list[str]:
    """The keys of the cells the run planned (the manifest's ``cells``), [] where it does not say."""
    cells = manifest.get("cells")
    return [str(key) for key in cells] if isinstance(cells, list) else []


def run_table(manifest: dict[str, Any], rows: pd.DataFrame) -> pd.DataFrame:
    """When, where and how the run ran: the manifest's scalar facts and the count of cells by status."""
    facts = {
        "started": manifest.get("started"),
        "finished": manifest.get("finished"),
        "git commit": manifest.get("git_commit"),
        "host": manifest.get("host"),
        "executor": manifest.get("executor"),
        "jobs": manifest.get("jobs"),
        "command": " ".join(map(str, manifest.get("command") or [])) or None,
        "schema version": manifest.get("schema_version"),
        "cells planned": len(planned_cells(manifest)) or None,
    }
    for status, count in status_counts(column(rows, "status")).items():
        facts[f"cells {status}"] = count
    return pd.DataFrame([{"fact": k, "value": str(v)} for k, v in facts.items() if v is not None and v != ""])


def versions_table(manifest: dict[str, Any]) -> pd.DataFrame:
    """Package versions recorded in the manifest."""
    versions = manifest.get("versions") or {}
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

    walk("", manifest.get("config") or {})
    return pd.DataFrame(lines)
