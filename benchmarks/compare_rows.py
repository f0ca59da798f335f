"""Are two results folders' numbers bitwise identical, timing columns aside?

    python benchmarks/compare_rows.py RESULTS_A RESULTS_B

Compares the cell table (rows.parquet), the long estimates table (estimates.parquet) and the problem
units' table where there is one, row by row on their keys: every float column as its 64 bits (NaN
equal to NaN only when the bits are equal), every other column by value. Columns of seconds and of
steps per second are left out (they time the machine, not the numbers); the cells' digests, which hash
the code's source, and the file names made of them (fitted_params) are reported but do not count:
instead each cell's arrays, its training trace (traces/DIGEST.npy) and its artifacts (fitted
parameters, draws, curves: artifacts/DIGEST.npz), are compared bitwise, cell by cell. Prints one line
per table and exits 1 on any difference.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

TIMING = ("seconds", "steps_per_second")
NOT_COUNTED = ("digest", "fitted_params")
TABLES = ("rows.parquet", "estimates.parquet", "problems.parquet")


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("key", "estimator", "quantity") if c in frame.columns]
    return frame.sort_values(keys).reset_index(drop=True) if keys else frame


def _same(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Row by row: the same bits (floats) or the same value (anything else)."""
    if a.dtype.kind == "f" and b.dtype.kind == "f":
        return a.to_numpy(np.float64).view(np.uint64) == b.to_numpy(np.float64).view(np.uint64)
    return np.array([repr(x) == repr(y) for x, y in zip(a, b, strict=True)])


def _common(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The rows of two estimates tables with a (key, estimator) in both, and a line naming the
    estimators of the rows in one table only."""
    ids = [pd.MultiIndex.from_frame(t[["key", "estimator"]]) for t in (a, b)]
    lines = [
        f"{int((~mine.isin(other)).sum())} rows only in the {which} folder, estimators "
        f"{sorted(set(mine[~mine.isin(other)].get_level_values('estimator')))}; the other rows compared"
        for mine, other, which in ((ids[0], ids[1], "first"), (ids[1], ids[0], "second"))
        if not mine.isin(other).all()
    ]
    return a[ids[0].isin(ids[1])], b[ids[1].isin(ids[0])], lines


def compare(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """The differences between two tables, one line each (none: identical, timing aside)."""
    if set(a.columns) != set(b.columns):
        return [f"columns differ: {sorted(set(a.columns) ^ set(b.columns))}"]
    differences = []
    if len(a) != len(b) and {"key", "estimator"} <= set(a.columns):  # estimators added or removed
        a, b, differences = _common(a, b)
    if len(a) != len(b):
        return [f"{len(a)} rows against {len(b)}"]
    a, b = _sorted(a), _sorted(b)
    for column in a.columns:
        if any(part in column for part in TIMING + NOT_COUNTED):
            continue
        same = _same(a[column], b[column])
        if not same.all():
            where = a.loc[~same, "key"].tolist()[:3] if "key" in a.columns else []
            differences.append(f"{column}: {int((~same).sum())} rows differ, e.g. {where}")
    return differences


def _arrays(folder: Path, digest: str) -> dict[str, np.ndarray]:
    """A cell's trace and artifacts by name."""
    found = {}
    if (trace := folder / "traces" / f"{digest}.npy").exists():
        found["trace"] = np.load(trace)
    if (artifacts := folder / "artifacts" / f"{digest}.npz").exists():
        with np.load(artifacts) as arrays:
            found |= {f"artifacts:{name}": arrays[name] for name in arrays.files}
    return found


def _same_array(a: np.ndarray, b: np.ndarray) -> bool:
    """Same shape, dtype and bytes."""
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def compare_arrays(first: Path, second: Path, a: pd.DataFrame, b: pd.DataFrame) -> tuple[int, list[str]]:
    """(arrays compared, differences) of every cell's trace and artifacts, cell by cell on the key."""
    digests = dict(zip(b["key"], b["digest"], strict=True))
    compared, differences = 0, []
    for key, digest in zip(a["key"], a["digest"], strict=True):
        ours, theirs = _arrays(first, digest), _arrays(second, digests[key])
        if ours.keys() != theirs.keys():
            differences.append(f"{key}: arrays {sorted(ours.keys() ^ theirs.keys())} in one folder only")
        for name in sorted(ours.keys() & theirs.keys()):
            compared += 1
            if not _same_array(ours[name], theirs[name]):
                differences.append(f"{key}: {name} differs")
    return compared, differences


def main(first: Path, second: Path) -> int:
    failed = False
    for name in TABLES:
        present = [(folder / name).exists() for folder in (first, second)]
        if not any(present):
            continue
        if not all(present):
            print(f"{name}: only in {first if present[0] else second}")
            failed = True
            continue
        a, b = pd.read_parquet(first / name), pd.read_parquet(second / name)
        differences = compare(a, b)
        skipped = sorted(c for c in a.columns if any(part in c for part in TIMING))
        digests = ""
        if "digest" in a.columns:
            equal = (_sorted(a)["digest"] == _sorted(b)["digest"]).sum()
            digests = (
                f"; digests equal in {equal} of {len(a)} rows (not counted: they hash the source, and "
                "fitted_params names a file by it)"
            )
        verdict = "IDENTICAL" if not differences else "DIFFERENT"
        print(f"{name}: {verdict}: {len(a)} rows x {len(a.columns) - len(skipped)} columns compared bitwise")
        print(f"  timing columns left out: {', '.join(skipped) or 'none'}{digests}")
        for line in differences:
            print(f"  {line}")
        failed |= bool(differences)
        if name == "rows.parquet":
            compared, array_differences = compare_arrays(first, second, a, b)
            verdict = "IDENTICAL" if not array_differences else "DIFFERENT"
            print(f"cells' traces and artifacts: {verdict}: {compared} arrays compared bitwise")
            for line in array_differences[:20]:
                print(f"  {line}")
            failed |= bool(array_differences)
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
