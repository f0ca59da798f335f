"""How long the light commands take: `ppl-suite list`, `--version`, and `run --dry-run` of the quick
profile, each in a fresh interpreter (median of five). Not a test: wall times depend on the machine.

    .venv/bin/python benchmarks/bench_cli.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

COMMANDS = {
    "--version": ["--version"],
    "list": ["list"],
    "run --dry-run (quick profile)": ["run", "--dry-run"],
}


def wall_seconds(argv: list[str], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ppl_suite.cli", *argv], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    for name, argv in COMMANDS.items():
        print(f"{name:32s} {wall_seconds(argv):6.2f} s")
