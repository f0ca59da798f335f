"""The quick profile's ``--fresh`` run of two checkouts, interleaved, wall and CPU seconds.

    python -m benchmarks.interleaved_quick_profile BEFORE_TREE AFTER_TREE [--rounds 3]

Each round runs both checkouts' ``ppl-suite run --fresh`` (the quick profile, report included,
compilation caches warm: a warm-up run of each first; ``benchmarks.interleaved``), and prints wall
seconds and the CPU seconds of the command and its workers (``RUSAGE_CHILDREN``), then the medians.
Each checkout's own code runs (its folder is the working directory of ``python -m ppl_suite.cli``);
results and reports go to a temporary folder.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.interleaved import checkouts, interleave


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
    trees, rounds = checkouts(__doc__.splitlines()[0], argv, rounds=3)
    with tempfile.TemporaryDirectory() as folder:
        interleave(trees, lambda name, tree: fresh_run(tree, Path(folder) / name), rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
