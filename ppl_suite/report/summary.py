"""A short Markdown summary of a results folder: the identity table and any failed cells."""

from __future__ import annotations

from pathlib import Path

from ppl_suite.report.tables import failures_table, identity_table
from ppl_suite.store import ResultsStore

INTRO = """\
Every row fits a guide q by SVI and checks the identity

    log p(x) = ELBO(q) + KL(q(z) || p(z | x))

with the exact log p(x) and KL of the model's oracle. The residual log p(x) - ELBO - KL is in units
of the estimate's standard error and should look like a standard normal draw. The optimization gap is
KL(fitted q) minus the smallest KL the guide family can reach: it separates "the family cannot do
better" from "the optimizer stopped early".
"""


def write_summary(results: str | Path, out: str | Path) -> Path:
    store = ResultsStore(results)
    rows = store.rows()
    manifest = store.manifest()
    lines = [f"# ppl-suite summary: {Path(results).name}", "", INTRO]
    lines += ["## log p(x) = ELBO + KL", "", identity_table(rows).to_markdown(index=False), ""]
    failures = failures_table(rows)
    if not failures.empty:
        lines += ["## Cells that did not finish", "", failures.to_markdown(index=False), ""]
    versions = ", ".join(f"{k} {v}" for k, v in manifest.get("versions", {}).items())
    lines += ["## Run", "", f"- started {manifest.get('started')}, finished {manifest.get('finished')}"]
    lines += [f"- versions: {versions}", f"- results folder: `{results}`", ""]
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path
