"""How far apart are two results folders' numbers, in standard errors? For a change that moves the random
stream (``compare_rows.py`` answers only "bitwise identical or not").

    python -m benchmarks.compare_within_se RESULTS_A RESULTS_B

Joins the cell tables (rows.parquet) on the cell key and, per backend and quantity (ELBO, library ELBO
with their SEs; KL and the final loss, whose SE is 0 or absent, by their difference), prints how many
cells are bitwise identical, the largest absolute difference and, where there is an SE, the largest
and the root-mean-square z = (b - a) / sqrt(se_a^2 + se_b^2); then every cell with |z| > 3.
Where the evaluation draws differ between the runs, z is about N(0, 1) when the numbers agree (rms near
1, no |z| beyond 4); where only the fit's random stream changed (the suite's evaluation draws are
keyed by the cell's seed), z is well below 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

QUANTITIES = {"elbo": "elbo_se", "library_elbo": "library_elbo_se", "kl": None, "final_loss": None}


def differences(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """One row per (cell, quantity) present in both: before, after, difference, z (NaN without SE)."""
    a, b = a.set_index("key"), b.set_index("key")
    keys = a.index.intersection(b.index)
    rows = []
    for quantity, se in QUANTITIES.items():
        for key in keys:
            before, after = a.at[key, quantity], b.at[key, quantity]
            z = np.nan
            if se is not None:
                scale = np.hypot(a.at[key, se], b.at[key, se])
                z = (after - before) / scale if scale > 0 else np.nan
            rows.append((key, a.at[key, "backend"], quantity, before, after, after - before, z))
    return pd.DataFrame(rows, columns=["key", "backend", "quantity", "before", "after", "difference", "z"])


def main(argv: list[str]) -> int:
    a, b = (pd.read_parquet(Path(folder) / "rows.parquet") for folder in argv[:2])
    table = differences(a, b)
    for (backend, quantity), group in table.groupby(["backend", "quantity"]):
        z = group["z"].dropna()
        spread = f"max |z| {z.abs().max():.2f}, rms z {np.sqrt((z**2).mean()):.2f}" if len(z) else "no SE"
        print(
            f"{backend:10s} {quantity:13s} {len(group):3d} cells, {int((group['difference'] == 0).sum()):3d} "
            f"identical, max |difference| {group['difference'].abs().max():.3g}, {spread}"
        )
    far = table[table["z"].abs() > 3]
    if len(far):
        print(far.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
