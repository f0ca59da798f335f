"""The quick profile's ``--fresh`` run of two checkouts, interleaved, wall and CPU seconds.

    python -m benchmarks.interleaved_quick_profile BEFORE_TREE AFTER_TREE [--rounds 3]

Wall times of this machine drift by tens of percent within minutes, so two benchmark runs one after
the other can rank two versions either way. Here each round runs both checkouts' ``ppl-suite run
--fresh`` (the quick profile, report included, compilation caches warm: a warm-up run of each
first), alternating which goes first, and prints wall seconds and the CPU seconds of the command and
its workers (``RUSAGE_CHILDREN``), then the medians. Each checkout's own code runs (its folder is the
working directory of ``python -m ppl_suite.cli``); results and reports go to a temporary folder.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def fresh_run(tree: Path, scratch: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of the quick profile's ``--fresh`` run of the checkout at ``tree``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    folders = ("--out", str(scratch / "results"), "--report", str(scratch / "report"))
    subprocess.run(
        [sys.executable, "-m", "ppl_suite.cli", "run", "--fresh", *folders],
        cwd=tree,
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args(argv)
    trees = {"before": options.before.resolve(), "after": options.after.resolve()}
    with tempfile.TemporaryDirectory() as folder:
        scratch = {name: Path(folder) / name for name in trees}
        for name, tree in trees.items():
            fresh_run(tree, scratch[name])  # warm-up: each checkout's compiled programs kept
        seconds: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
        for round_ in range(options.rounds):
            order = list(trees) if round_ % 2 == 0 else list(reversed(trees))
            for name in order:
                seconds[name].append(fresh_run(trees[name], scratch[name]))
                wall, cpu = seconds[name][-1]
                print(f"round {round_ + 1} {name:6s} wall {wall:6.1f} s  CPU {cpu:6.1f} s", flush=True)
    for name, runs in seconds.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"median {name:6s} wall {wall:6.1f} s  CPU {cpu:6.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
