"""A diagnosis as text: a few summary lines (``str(diagnosis)``), and a one-page report in Markdown and
HTML drawn with the report's own renderer (``report.render``), q's and the reference's draws beside it
as NetCDF. Every number shown is a field of the Diagnosis (``d`` below; this module does not import
its class, which imports this one); nothing is computed here."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ppl_suite import paths

MD, HTML = "diagnosis.md", "diagnosis.html"
Q_FILE, REFERENCE_FILE = "q.nc", "reference.nc"


def _pm(value: float, se: float) -> str:
    from ppl_suite.report.render import format_pm

    return format_pm(value, None if math.isnan(se) else se)


def summary_lines(d: Any) -> list[str]:
    """The diagnosis in a few lines of plain text."""
    lines = [
        f"{d.library} model {d.model}, guide {d.guide} ({d.draws} draws of q, {d.seconds:.1f} s)",
        f"  ELBO          {_pm(d.elbo, d.elbo_se)}",
        f"  log p(x)      {_pm(d.log_evidence, d.log_evidence_se)}   ({d.log_evidence_method})",
        f"  KL(q || p)    {_pm(d.kl, d.kl_se)}   ({d.kl_reliability}; log p(x) - ELBO)",
        f"  PSIS k-hat    {d.k_hat:.3f}: {d.k_hat_verdict} (limit {d.k_hat_limit:.2f}), "
        f"{d.k_hat_interpretation}",
    ]
    if d.mean_error_at:
        lines += [
            f"  worst mean    {_pm(d.mean_error, d.mean_error_se)} reference sds at {d.mean_error_at}",
            f"  worst sd      {_pm(d.sd_error, d.sd_error_se)} (sd_q / sd_ref - 1) at {d.sd_error_at}",
        ]
    if d.reference_description:
        lines.append(f"  reference     {d.reference_description}")
    lines += [f"  note          {text}" for text in d.diagnostics]
    return lines


def _parts(d: Any, files: dict[str, Path]) -> list[tuple[str, list]]:
    from ppl_suite.report.document import Code, Links, Table, Text

    rows = [
        ("ELBO", d.elbo, d.elbo_se, "E_q[log p(x, z) - log q(z)]"),
        ("log p(x)", d.log_evidence, d.log_evidence_se, d.log_evidence_method),
        ("KL(q || p(z | x))", d.kl, d.kl_se, f"log p(x) - ELBO ({d.kl_reliability})"),
        (
            "PSIS k-hat",
            d.k_hat,
            math.nan,
            f"{d.k_hat_verdict}: limit {d.k_hat_limit:.2f}; {d.k_hat_interpretation}",
        ),
    ]
    if d.mean_error_at:
        rows += [
            (
                "worst mean error",
                d.mean_error,
                d.mean_error_se,
                f"(E_q - E_ref) / sd_ref at {d.mean_error_at}",
            ),
            ("worst sd error", d.sd_error, d.sd_error_se, f"sd_q / sd_ref - 1 at {d.sd_error_at}"),
        ]
    table = pd.DataFrame(rows, columns=["quantity", "value", "se", "how"])
    summary = [
        Text(f"The {d.library} guide `{d.guide}` of model `{d.model}`, from {d.draws} draws of q."),
        Table(table, "value ± standard error; no SE where the estimate is not reliable", pm={"value": "se"}),
        Code("log p(x) = ELBO(q) + KL(q || p(z | x))"),
    ]
    summary += [Text(text, note=True) for text in d.diagnostics]
    parts = [("Diagnosis", summary)]
    if d.coordinates:
        frame = pd.DataFrame([{"coordinate": name, **values} for name, values in d.coordinates.items()])
        parts.append((
            "Moments against the reference",
            [Table(frame, "each latent coordinate, in reference sds", pm={"mean_error": "mean_error_se",
                                                                          "sd_error": "sd_error_se"})],
        ))  # fmt: skip
    blocks = [Text(d.reference_description or "No NUTS reference.")]
    if files:
        blocks.append(
            Links(tuple((name, ((path.name, path),)) for name, path in files.items()), "draws as NetCDF")
        )
    parts.append(("Reference and files", blocks))
    return parts


def write_report(d: Any, folder: Path, formats: Sequence[str] = ("md", "html")) -> dict[str, Path]:
    """``diagnosis.md`` and/or ``diagnosis.html`` and the draws' NetCDF files in ``folder``, which is
    made when missing; a file of another kind is never written over (paths refused outside it)."""
    from ppl_suite.report.render import to_html, to_markdown

    unknown = [f for f in formats if f not in ("md", "html")]
    if unknown:
        from ppl_suite.errors import InputProblem

        raise InputProblem(f"report formats {unknown}: valid: md, html")
    folder.mkdir(parents=True, exist_ok=True)
    draws = {}
    for label, name, data in (("q", Q_FILE, d.q), ("reference", REFERENCE_FILE, d.reference)):
        if data is not None:
            draws[label] = paths.inside(folder, name)
            data.to_netcdf(str(draws[label]))
    title, subtitle = f"Diagnosis of {d.guide} on {d.model}", f"ppl_suite.diagnose, {d.seconds:.1f} s"
    parts = _parts(d, draws)
    written = dict(draws)
    for kind, name, render in (("md", MD, to_markdown), ("html", HTML, to_html)):
        if kind in formats:
            written[kind] = paths.inside(folder, name)
            written[kind].write_text(render(title, subtitle, parts, folder))
    return written
