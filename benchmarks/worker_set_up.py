"""A worker's set-up in a fresh process, and the libraries' share of it.

    python -m benchmarks.worker_set_up [--repeats 5]

Every process that fits or evaluates a cell (each worker of a run or a check, each test process)
first runs ``executors.worker.set_up``: the numerics' settings and the imports of torch, JAX, NumPyro,
Pyro, pandas and the suite. Prints the median wall and CPU seconds of ``set_up`` over ``repeats``
fresh processes (one at a time), then, from one more process under ``python -X importtime``, the
cumulative import seconds of the heaviest libraries (each counted where it is first imported).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

SET_UP = """
import json, time
wall, cpu = time.perf_counter(), time.process_time()
from ppl_suite.executors.worker import set_up
assert set_up() is None
print(json.dumps([time.perf_counter() - wall, time.process_time() - cpu]))
"""
LIBRARIES = ("torch", "jax", "ml_dtypes", "numpyro", "pyro", "pandas", "scipy", "ppl_suite.execute")


def set_up_seconds() -> tuple[float, float]:
    """(wall, CPU) seconds of ``set_up`` in a new process."""
    done = subprocess.run([sys.executable, "-c", SET_UP], check=True, capture_output=True, text=True)
    wall, cpu = json.loads(done.stdout.splitlines()[-1])
    return wall, cpu


def import_seconds() -> dict[str, float]:
    """Cumulative import seconds of LIBRARIES in one ``set_up`` (``-X importtime``: microseconds)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", SET_UP], check=True, capture_output=True, text=True
    )
    found: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        if name in LIBRARIES and cumulative.isdigit():
            found.setdefault(name, int(cumulative) / 1e6)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args(argv).repeats
    timings = [set_up_seconds() for _ in range(repeats)]
    walls, cpus = zip(*timings, strict=True)
    print(f"set_up, {repeats} fresh processes: median {statistics.median(walls):.2f} s wall, "
          f"{statistics.median(cpus):.2f} s CPU (walls {', '.join(f'{w:.2f}' for w in walls)})")  # fmt: skip
    for name, seconds in sorted(import_seconds().items(), key=lambda item: -item[1]):
        print(f"  import {name}: {seconds:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
