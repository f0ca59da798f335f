"""XLA:CPU's two code emitters for the suite's compiled JAX programs: compile time, run time, numbers.

    python -m benchmarks.xla_fusion_emitters [--rounds 2] [--profile quick]

``backends.programs.compiled`` compiles every SVI loop, evaluation and target density with
``COMPILER_OPTIONS`` (XLA's elemental emitters); the guides' draws and densities, AIS, Laplace and the
VAE's programs compile with XLA's defaults. This runs the profile's cells of the JAX backends
(NumPyro and the hand-rolled one), seed by seed, in fresh processes with an empty compilation cache
and the workers' string-hash seed, once with those options ("elemental") and once with XLA's
defaults ("fusion": its MLIR fusion emitters), alternately for ``rounds`` rounds. It prints each
process's summed seconds from the rows: compilation (the fits' tracing and compiling), the timed SVI
steps, and the cells' wall time on the first seed (which compiles) and on the others (whose programs
are compiled already). Then how far the numbers moved: the cells whose losses, ELBO, KL or library
ELBO (or their SEs) differ in any bit, and the largest differences of the ELBO (in nats and in its
standard errors) and of the KL (in nats).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile

from ppl_suite import schema
from ppl_suite.executors.local import HASH_SEED as HASH_SEED_OF_WORKERS

CELLS = """
import hashlib, json, sys
from ppl_suite.executors import worker
worker.configure()
from ppl_suite import matrix, schema
from ppl_suite.backends import programs
from ppl_suite.execute import execute
if sys.argv[2] == "fusion":
    programs.COMPILER_OPTIONS = {}
cells = [c for c in matrix.expand(matrix.load(sys.argv[1])).cells if c.backend in ("numpyro", "handrolled")]
first_seed = min(c.seed for c in cells)
rows = []
for cell in sorted(cells, key=lambda c: c.seed):
    record = execute(cell)
    row = record.row
    numbers = [row.get(k) for k in (
        schema.ELBO, schema.ELBO_SE, schema.KL, schema.KL_SE, schema.LIBRARY_ELBO)
    ]
    rows.append({
        "cell": f"{cell.model}/{cell.backend}/{cell.guide}/{cell.seed}",
        "first_seed": cell.seed == first_seed,
        **{k: float(row.get(k, float("nan"))) for k in (schema.COMPILE_SECONDS, schema.FIT_SECONDS,
           schema.WALL_SECONDS, schema.ELBO, schema.ELBO_SE, schema.KL, schema.KL_SE)},
        "bits": hashlib.sha256(record.losses.tobytes() + repr(numbers).encode()).hexdigest(),
        "status": row[schema.STATUS],
    })
print(json.dumps(rows))
"""
EMITTERS = ("elemental", "fusion")
# the workers' string-hash seed (``executors.local.HASH_SEED``): NumPyro's enumerated ELBO sums its
# sites in hash order, so another seed would change bits that the emitters did not
HASH_SEED = {"PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED") or HASH_SEED_OF_WORKERS}


def cell_rows(profile: str, emitters: str) -> list[dict]:
    """The rows of one fresh process (an empty compilation cache) running the profile's JAX cells."""
    with tempfile.TemporaryDirectory() as cache:
        done = subprocess.run(
            [sys.executable, "-c", CELLS, profile, emitters],
            capture_output=True, text=True, env={**os.environ, "PPL_SUITE_XLA_CACHE": cache, **HASH_SEED},
        )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"the cells failed ({emitters}):\n{done.stderr}")
    rows = json.loads(done.stdout.splitlines()[-1])
    failed = [row["cell"] for row in rows if row["status"] != schema.OK]
    if failed:  # a failed cell is quick: its seconds would pass for a speed-up
        raise SystemExit(f"cells failed ({emitters}): {', '.join(failed)}")
    return rows


def summary(rows: list[dict]) -> dict[str, float]:
    """Summed seconds of one process's cells."""
    return {
        "compile": sum(r[schema.COMPILE_SECONDS] for r in rows),
        "SVI steps": sum(r[schema.FIT_SECONDS] for r in rows),
        "first seed's cells": sum(r[schema.WALL_SECONDS] for r in rows if r["first_seed"]),
        "other seeds' cells": sum(r[schema.WALL_SECONDS] for r in rows if not r["first_seed"]),
    }


def moved(ours: list[dict], theirs: list[dict]) -> tuple[int, float, float, float]:
    """(cells whose bits differ, the largest |ELBO difference| / ELBO SE over the cells whose SE is
    positive, the largest |ELBO difference| and |KL difference| in nats), each where it is finite."""
    pairs = list(zip(ours, theirs, strict=True))
    assert all(a["cell"] == b["cell"] for a, b in pairs)
    differ = sum(a["bits"] != b["bits"] for a, b in pairs)

    def largest(differences) -> float:
        return max((d for d in differences if math.isfinite(d)), default=math.nan)

    elbo_se = largest(
        abs(a[schema.ELBO] - b[schema.ELBO]) / a[schema.ELBO_SE] for a, b in pairs if a[schema.ELBO_SE] > 0
    )
    elbo, kl = (largest(abs(a[name] - b[name]) for a, b in pairs) for name in (schema.ELBO, schema.KL))
    return differ, elbo_se, elbo, kl


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", default="quick")
    args = parser.parse_args(argv)
    runs: dict[str, list[list[dict]]] = {emitters: [] for emitters in EMITTERS}
    for round_ in range(args.rounds):
        for emitters in EMITTERS:
            rows = cell_rows(args.profile, emitters)
            runs[emitters].append(rows)
            figures = "  ".join(f"{name} {seconds:6.2f} s" for name, seconds in summary(rows).items())
            print(f"round {round_ + 1} {emitters:9s} {len(rows)} cells  {figures}", flush=True)
    for name in summary([]):
        elemental, fusion = (statistics.median(summary(rows)[name] for rows in runs[e]) for e in EMITTERS)
        ratio = f" ({fusion / elemental:.2f}x)" if elemental > 0 else ""
        print(f"median {name}: elemental {elemental:.2f} s, fusion {fusion:.2f} s{ratio}")
    differ, elbo_se, elbo, kl = moved(runs["elemental"][0], runs["fusion"][0])
    print(f"numbers: {differ} of {len(runs['fusion'][0])} cells differ in some bit; largest differences: "
          f"ELBO {elbo:.2g} nats ({elbo_se:.2g} of its SE), KL {kl:.2g} nats")  # fmt: skip
    for emitters, repeats in runs.items():
        same = all(moved(repeats[0], other)[0] == 0 for other in repeats[1:])
        print(f"{emitters}: every round gave the same bits: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
