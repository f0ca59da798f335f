"""Wall time of ``ppl-suite check`` on the example (``examples/hierarchical_poisson``, NumPyro and Pyro
versions, mean_field and full_rank, 4 cells) in four states, each a fresh process (issue 26's goals on
2 cores: cold 35 s, NUTS and AIS included; 20 s with the references cached and every fit redone; 4 s
with everything cached), with the machine's 1-minute load average after each run (it may be shared):

    cold       an empty reference cache and an empty results folder: NUTS, AIS, every fit
    refit      the reference cached, every cell refit (``--fresh``)
    recheck    the reference and every fit cached, checked in full (``--recheck``: the user's files
               imported, every cell found stored; the results folder's manifest counts the reuse)
    cached     nothing changed: answered by the check's memo (``checking.memo``: no file of the user's
               imported, nothing written; "memo" when the manifest was left as it was)

    .venv/bin/python benchmarks/bench_check.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ppl_suite.references.cache import VARIABLE

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "hierarchical_poisson"
TARGETS = {"cold": 35.0, "refit": 20.0, "recheck": None, "cached": 4.0}


def check_seconds(out: Path, cache: Path, *extra: str) -> tuple[float, str]:
    """Wall time of one ``ppl-suite check`` of the example into ``out`` and the cells it reused
    ("memo" when the manifest was not rewritten: the memo answered)."""
    command = [
        sys.executable, "-m", "ppl_suite.cli", "check",
        "--numpyro", f"{EXAMPLE / 'numpyro_model.py'}:model", "--pyro", f"{EXAMPLE / 'pyro_model.py'}:model",
        "--data", f"{EXAMPLE / 'data.py'}:simulate", "--name", "hierarchical_poisson",
        "--out", str(out / "results"), "--report", str(out / "report"), *extra,
    ]  # fmt: skip
    manifest = out / "results" / "manifest.json"
    before = manifest.read_bytes() if manifest.is_file() else None
    start = time.perf_counter()
    subprocess.run(
        command, env={**os.environ, VARIABLE: str(cache)}, check=True, capture_output=True, cwd=ROOT
    )
    seconds = time.perf_counter() - start
    text = manifest.read_bytes()
    return seconds, "memo" if text == before else str(json.loads(text)["reused"])


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        out, cache = Path(scratch) / "check", Path(scratch) / "references"
        for state, extra in (
            ("cold", ()),
            ("refit", ("--fresh",)),
            ("recheck", ("--recheck",)),
            ("cached", ()),
        ):
            seconds, reused = check_seconds(out, cache, *extra)
            target = TARGETS[state]
            verdict = (
                "no goal" if target is None else "ok" if seconds <= target else f"over its {target:.0f} s"
            )
            load = os.getloadavg()[0]
            print(f"{state:7s} {seconds:6.1f} s  cells reused: {reused}  load {load:4.1f}  ({verdict})")


if __name__ == "__main__":
    main()
