"""Tables of a results DataFrame; every number shown is a column of the store or a pandas operation."""

from __future__ import annotations

import pandas as pd


def _pm(value: float, se: float) -> str:
    return f"{value:.4f} ± {se:.4f}"


def identity_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per cell: log p(x) = ELBO + KL, the residual in SE units, convergence and cost."""
    ok = rows[rows["status"] == "ok"]
    table = pd.DataFrame(
        {
            "model": ok["model"],
            "backend": ok["backend"],
            "guide": ok["guide"],
            "seed": ok["seed"],
            "ELBO ± SE": [_pm(v, s) for v, s in zip(ok["elbo"], ok["elbo_se"], strict=True)],
            "log p(x)": ok["log_evidence"].map("{:.4f}".format),
            "KL(q||p)": ok["kl"].map("{:.2e}".format),
            "KL route": ok["kl_method"],
            "residual (SE)": ok["residual_se"].map("{:+.2f}".format),
            "opt. gap": ok["optimization_gap"].map("{:.1e}".format),
            "converged": ok["converged"],
            "wall s": ok["wall_seconds"].map("{:.1f}".format),
            "steps/s": ok["steps_per_second"].map("{:,.0f}".format),
            "compile s": ok["compile_seconds"].map("{:.2f}".format),
        }
    )
    return table.reset_index(drop=True)


def failures_table(rows: pd.DataFrame) -> pd.DataFrame:
    bad = rows[rows["status"] != "ok"]
    first_line = bad["error"].fillna("").map(lambda text: text.splitlines()[0] if text else "")
    return pd.DataFrame({"cell": bad["key"], "status": bad["status"], "error": first_line}).reset_index(
        drop=True
    )
