"""Does a new process find the NumPyro backend's programs in the persistent compilation cache whatever its
string-hash seed? Two fresh processes, ``PYTHONHASHSEED`` 1 then 2, fit the same NumPyro cell (SVI loop
and library ELBO) against one empty cache folder; prints the entries each left and the seconds each
spent compiling. With the loss summed in trace order (``backends.numpyro_elbo``) the second process
writes no new entry; with NumPyro's ``Trace_ELBO`` it wrote its SVI loop and ELBO program again.

    python -m benchmarks.hash_seed_cache [MODEL]     # default eight_schools_noncentered
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIT = """
import sys, time
from ppl_suite.executors.worker import configure
configure()
from ppl_suite.backends import SVIConfig, get
from ppl_suite.problem import Problem
fit = get("numpyro").fit(Problem.build(sys.argv[1], 0), "mean_field", SVIConfig(steps=300), 0)
print(f"{fit.compile_seconds:.2f} {fit.library_elbo.value!r}")
"""


def cache_entries(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name.startswith("jit_")} if folder.exists() else set()


def two_processes(model: str) -> list[tuple[float, int, str]]:
    """(the fit's compile seconds, new cache entries, a line saying what was seen) of each process,
    PYTHONHASHSEED 1 then 2."""
    out = []
    with tempfile.TemporaryDirectory(prefix="ppl-suite-hash-seed-") as scratch:
        cache = Path(scratch) / "xla"
        before: set[str] = set()
        for hash_seed in ("1", "2"):
            env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PPL_SUITE_XLA_CACHE": str(cache)}
            command = [sys.executable, "-c", FIT, model]
            done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
            compile_seconds, value = done.stdout.split()[-2:]
            after = cache_entries(cache)
            new = sorted(name.split("-")[0] for name in after - before)
            line = (
                f"PYTHONHASHSEED={hash_seed}: {len(after)} cache entries, {len(new)} new "
                f"({', '.join(new[:6])}{'...' if len(new) > 6 else ''}); fit's compile {compile_seconds} s; "
                f"library ELBO {value}"
            )
            out.append((float(compile_seconds), len(new), line))
            before = after
    return out


def main() -> None:
    for *_, line in two_processes(sys.argv[1] if len(sys.argv) > 1 else "eight_schools_noncentered"):
        print(line)


if __name__ == "__main__":
    main()
