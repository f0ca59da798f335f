"""How much of the README's test command is XLA compiling, per test file.

    python -m benchmarks.suite_compile_share [--workers 2] [--top 25] [-- PYTEST_ARGS]

Runs the test suite as ``scripts/test.sh`` does (``pytest -n WORKERS --dist loadfile``, the
session's own empty compilation cache, as on a clean clone) with ``benchmarks.compile_seconds_plugin``,
then prints, per test file, its tests' seconds and the seconds XLA spent compiling for them in the
test processes (each program's backend compile or compilation-cache read; programs compiled by the
processes a test starts are not counted), heaviest first, and the totals: the run's wall time, its
test processes' CPU seconds, their tests' seconds and compile seconds. Both are wall seconds: a
test's seconds hold its waits on the processes it starts, and a compile's its waits for a core.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.compile_seconds_plugin import COMPILE_SECONDS_FOLDER, OUTSIDE_TESTS

ROOT = Path(__file__).resolve().parent.parent


def run_suite(workers: int, pytest_args: list[str], folder: Path) -> float:
    """Run the test suite with the plugin writing into ``folder``; its wall seconds. Raises with the
    tail of its output if it fails."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "benchmarks.compile_seconds_plugin"]
    command += ["-n", str(workers), "--dist", "loadfile"] if workers > 0 else []
    env = {**os.environ, COMPILE_SECONDS_FOLDER: str(folder)}
    env.pop("PPL_SUITE_XLA_CACHE", None)  # the session's own, empty: the cost on a clean clone
    env.pop("PYTEST_XDIST_WORKER", None)
    start = time.perf_counter()
    done = subprocess.run([*command, *pytest_args], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the test suite failed:\n{(done.stdout + done.stderr)[-4000:]}")
    return wall


def read_figures(folder: Path) -> tuple[Counter, Counter, Counter, float]:
    """(tests' seconds, compile seconds, programs compiled) per file, and the CPU seconds, summed over
    the test processes' files: the workers', or the single process's when no worker wrote one."""
    written = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    workers = [figures for figures in written if figures["worker"] is not None]
    tests, compiles, programs, cpu = Counter(), Counter(), Counter(), 0.0
    for figures in workers or written:
        tests.update(figures["test_seconds"])
        compiles.update(figures["compile_seconds"])
        programs.update(figures["programs"])
        cpu += figures["cpu_seconds"]
    return tests, compiles, programs, cpu


def table(tests: Counter, compiles: Counter, programs: Counter, top: int) -> list[str]:
    """Markdown rows: the ``top`` files by tests' seconds, then all files together."""
    lines = ["| test file | tests' seconds | XLA compiling | share | programs |", "|---|---|---|---|---|"]
    for file, seconds in tests.most_common(top):
        share = compiles[file] / seconds if seconds else 0.0
        lines.append(f"| {file} | {seconds:.1f} | {compiles[file]:.1f} | {share:.0%} | {programs[file]} |")
    total, compiled = sum(tests.values()), sum(compiles.values())
    lines.append(
        f"| all {len(tests)} files (compiling: and outside a test) | {total:.1f} | {compiled:.1f} | "
        f"{compiled / total:.0%} | "
        f"{sum(programs.values())} |"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers (0: one process)")
    parser.add_argument("--top", type=int, default=25, help="files listed, heaviest first")
    parser.add_argument("pytest_args", nargs="*", help="after --: passed to pytest")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ppl-suite-compile-seconds-") as folder:
        wall = run_suite(options.workers, options.pytest_args, Path(folder))
        tests, compiles, programs, cpu = read_figures(Path(folder))
    tested, compiled = sum(tests.values()), sum(compiles.values())
    outside = compiles.get(OUTSIDE_TESTS, 0.0)
    print(
        f"test suite: {wall:.1f} s wall; test processes {cpu:.1f} CPU s, their tests {tested:.1f} s, "
        f"XLA compiling {compiled:.1f} s ({outside:.1f} s outside a test)"
    )
    print("\n".join(table(tests, compiles, programs, options.top)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
