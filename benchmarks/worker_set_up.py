"""A worker's set-up in a fresh process, and the libraries' share of it.

    python -m benchmarks.worker_set_up [--repeats 5]

Each worker of a run or a check first runs ``executors.worker.set_up``: the numerics' settings and
the imports of torch, JAX, NumPyro, Pyro, pandas and the suite (a test process pays the same imports).
Prints the median wall and CPU seconds of ``set_up`` over ``repeats`` fresh processes (one at a
time), then, from one more process under ``python -X importtime``, the cumulative import seconds of
the heaviest modules, each where it is first imported. They nest, so they do not add up: jax's
includes ml_dtypes', and ``ppl_suite.execute``'s whatever it imports first.
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
failure = set_up()
assert failure is None, failure
print(json.dumps([time.perf_counter() - wall, time.process_time() - cpu]))
"""
MODULES = ("torch", "jax", "ml_dtypes", "numpyro", "pyro", "pandas", "scipy", "ppl_suite.execute")


def set_up_process(*options: str) -> subprocess.CompletedProcess:
    """A new process that runs ``set_up`` and prints its (wall, CPU) seconds; raises with its
    standard error if it fails."""
    done = subprocess.run([sys.executable, *options, "-c", SET_UP], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"set_up failed:\n{done.stderr}")
    return done


def set_up_seconds() -> tuple[float, float]:
    """(wall, CPU) seconds of ``set_up`` in a new process."""
    return tuple(json.loads(set_up_process().stdout.splitlines()[-1]))


def import_seconds() -> dict[str, float]:
    """Cumulative import seconds of MODULES in one ``set_up`` (``-X importtime``: microseconds)."""
    done = set_up_process("-X", "importtime")
    found: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        if name in MODULES and cumulative.isdigit():
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
