"""Where people wait, measured in one run, each figure beside its baseline measured in the same run.

    python -m benchmarks [--quick] [--out benchmarks/results.md]

- ``ppl-suite list`` against ``ppl-suite --help`` (median of fresh processes);
- the quick profile (``--quick``: one model, two backends, one seed, 300 steps): the first run with an
  empty compilation cache, a rerun with ``--fresh`` and the cache warm, and a rerun with every cell
  stored (its report left as it was), each against the ``--fresh`` run;
- ``ppl-suite check`` of the example (``bench_check``): cold, references cached and fits redone, all
  cached (left out of ``--quick``: the cold state alone builds a NUTS reference);
- Pyro SVI steps per second of the suite's Pyro backend against a raw Pyro ``JitTrace_ELBO`` loop of
  the same model, guide, particles and optimizer (the guide is the suite's mean-field family rendered
  in Pyro), both timed after their first (compiling) step (``benchmarks.pyro_steps``);
- a NumPyro cell's compile seconds in a second process with another ``PYTHONHASHSEED`` sharing the
  first's compilation cache (``benchmarks.hash_seed_cache``): it should find every program there.

Prints one line per figure and writes a Markdown table with the machine's description (CPU count and
model, memory, Python and library versions; no host name). Not a test: wall times depend on the
machine, so compare figures of one run, or of runs on one machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUICK_MATRIX = (
    "--models", "normal_normal", "--backends", "pyro", "numpyro", "--guides", "mean_field",
    "--seeds", "0", "--steps", "300",
)  # fmt: skip
LIBRARIES = ("numpy", "torch", "pyro-ppl", "jax", "ml_dtypes", "numpyro", "matplotlib", "pandas")


@dataclass(frozen=True)
class Figure:
    """One measurement: ``seconds`` (or a rate, ``unit``), its baseline's in the same run, the goal."""

    what: str
    value: float
    unit: str = "s"
    baseline: str = ""
    baseline_value: float | None = None
    goal: str = ""

    @property
    def ratio(self) -> str:
        """value / baseline (for a rate: how many times the baseline's rate)."""
        if self.baseline_value is None or self.baseline_value == 0:
            return ""
        return f"{self.value / self.baseline_value:.2f}x"

    def line(self) -> str:
        base = f"{self.baseline_value:.2f} {self.unit} ({self.baseline})" if self.baseline else ""
        return f"{self.what:58s} {self.value:9.2f} {self.unit:8s} {base:40s} {self.ratio:>7s}  {self.goal}"


def machine() -> list[str]:
    """The machine in words: CPUs (count and model), memory, Python, the libraries' versions."""
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with open("/proc/meminfo", encoding="utf-8") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    versions = []
    for library in LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions.append(f"{library} {metadata.version(library)}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"CPUs: {os.cpu_count()} x {model}",
        f"memory: {memory}",
        f"load average at the start (1, 5, 15 min): {load}",
        f"Python {platform.python_version()} on {platform.system()} {platform.machine()}",
        "libraries: " + ", ".join(versions),
    ]


def suite(*argv: str, env: dict[str, str] | None = None) -> float:
    """Wall seconds of ``ppl-suite ARGV`` in a fresh interpreter (it must succeed)."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "ppl_suite.cli", *argv],
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def light_commands(repeats: int) -> list[Figure]:
    from benchmarks.bench_cli import wall_seconds  # median of fresh interpreters

    help_seconds, list_seconds = wall_seconds(["--help"], repeats), wall_seconds(["list"], repeats)
    return [
        Figure(f"ppl-suite list (median of {repeats})", list_seconds, "s", "--help", help_seconds, "<= 1 s")
    ]


def profile_runs(scratch: Path, quick: bool) -> list[Figure]:
    """The quick profile (or ``QUICK_MATRIX``): first run, ``--fresh`` warm, every cell stored."""
    matrix = QUICK_MATRIX if quick else ()
    what = "small matrix (--quick)" if quick else "quick profile"
    out = ("--out", str(scratch / "results"), "--report", str(scratch / "report"))
    cold = {"PPL_SUITE_XLA_CACHE": str(scratch / "xla-cache")}  # empty: nothing compiled yet
    first = suite("run", *matrix, *out, env=cold)
    fresh = suite("run", *matrix, *out, "--fresh", env=cold)
    stored = suite("run", *matrix, *out, env=cold)
    goals = ("", "", "") if quick else ("<= 90 s", "<= 40 s", "<= 4 s")  # the issue's, for the profile
    return [
        Figure(f"{what}: first run, empty compilation cache", first, "s", "--fresh", fresh, goals[0]),
        Figure(f"{what}: --fresh, compilation cache warm", fresh, "s", goal=goals[1]),
        Figure(f"{what}: rerun, every cell stored", stored, "s", "--fresh", fresh, goals[2]),
    ]


def check_runs() -> list[Figure]:
    from benchmarks.bench_check import check_seconds

    with tempfile.TemporaryDirectory() as scratch:
        out, cache = Path(scratch) / "check", Path(scratch) / "references"
        cold, _ = check_seconds(out, cache)
        refit, _ = check_seconds(out, cache, "--fresh")
        cached, _ = check_seconds(out, cache)
    return [
        Figure("check of the example: cold", cold, "s", goal="<= 35 s"),
        Figure("check of the example: references cached, fits redone", refit, "s", "cold", cold, "<= 20 s"),
        Figure("check of the example: all cached", cached, "s", "cold", cold, "<= 4 s"),
    ]


def pyro_steps(steps: int) -> list[Figure]:
    """Steps per second of the suite's Pyro backend and of a raw JitTrace_ELBO loop (a fresh process:
    torch's threads as the suite's workers set them), per model of ``benchmarks.pyro_steps``."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.pyro_steps", str(steps)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    figures = []
    for line in done.stdout.splitlines():
        model, suite_rate, raw_rate = line.split()
        figures.append(
            Figure(
                f"Pyro SVI steps/s, {model} mean_field, {steps} steps",
                float(suite_rate),
                "steps/CPU s",
                "raw JitTrace_ELBO loop",
                float(raw_rate),
                ">= 1.5x",
            )
        )
    return figures


def hash_seed_cache() -> list[Figure]:
    """A NumPyro cell's compile seconds in a new process with another PYTHONHASHSEED, the persistent
    cache filled by the first (``benchmarks.hash_seed_cache``), against the first process's."""
    from benchmarks.hash_seed_cache import two_processes

    (first, _, _), (second, new_entries, _) = two_processes("eight_schools_noncentered")
    what = f"NumPyro cell, new process, other hash seed: compile ({new_entries} new cache entries)"
    return [Figure(what, second, "s", "first process, empty cache", first, "0 new entries")]


def table(figures: list[Figure], quick: bool, seconds: float) -> str:
    lines = [
        "# Speed benchmarks (`python -m benchmarks" + (" --quick" if quick else "") + "`)",
        "",
        *(f"- {line}" for line in machine()),
        f"- whole benchmark: {seconds:.0f} s",
        "",
        "| what | figure | baseline (same run) | ratio | goal |",
        "|---|---|---|---|---|",
    ]
    for f in figures:
        base = f"{f.baseline_value:.2f} {f.unit} ({f.baseline})" if f.baseline else ""
        lines.append(f"| {f.what} | {f.value:.2f} {f.unit} | {base} | {f.ratio} | {f.goal} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about a minute: a small matrix, no check")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results.md")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print("\n".join(machine()))
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="ppl-suite-bench-") as scratch:
        steps = [
            lambda: light_commands(3 if args.quick else 7),
            lambda: profile_runs(Path(scratch), args.quick),
            lambda: pyro_steps(300 if args.quick else 3000),
            hash_seed_cache,
        ]
        if not args.quick:
            steps.append(check_runs)
        for step in steps:
            for figure in step():
                print(figure.line(), flush=True)
                figures.append(figure)
    args.out.write_text(table(figures, args.quick, time.perf_counter() - start), encoding="utf-8")
    print(f"table: {args.out}")
    return 0
