"""Seconds of ``ppl_suite.check`` where people wait, in three states, each a fresh process:

    cold      empty reference and XLA caches, empty results folder: NUTS, AIS, compilation, every fit
    refit     the reference cached, every cell refit (``fresh=True`` / ``--fresh``)
    cached    the reference and every cell cached

for two checks: ``battery`` (tests/battery/varying_intercept.py: a 10-latent varying-intercept model
defined in a plain script, so its cells run in the calling process; issue 23's goals 90 s cold, 20 s
with the reference cached) and ``example`` (``ppl-suite check`` of examples/hierarchical_poisson,
NumPyro and Pyro, 4 cells; issue 26's goals 35 / 20 / 4 s). Prints wall seconds and the CPU seconds
of the child process (user + system, ``resource.getrusage(RUSAGE_CHILDREN)``: less sensitive to a
loaded machine than wall time) and the machine's 1-minute load average after each run.

    .venv/bin/python benchmarks/check_speed.py [battery] [example] [--states cold,refit,cached]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "hierarchical_poisson"
BATTERY = ROOT / "tests" / "battery" / "varying_intercept.py"
GOALS = {
    "battery": {"cold": 90.0, "refit": 20.0, "cached": 20.0},
    "example": {"cold": 35.0, "refit": 20.0, "cached": 4.0},
}
STATES = ("cold", "refit", "cached")


def command(which: str, out: Path, fresh: bool) -> tuple[list[str], dict[str, str]]:
    """The command line of one check and the environment it needs beyond the caches'."""
    if which == "example":
        line = [
            sys.executable, "-m", "ppl_suite.cli", "check",
            "--numpyro", f"{EXAMPLE / 'numpyro_model.py'}:model",
            "--pyro", f"{EXAMPLE / 'pyro_model.py'}:model",
            "--data", f"{EXAMPLE / 'data.py'}:simulate", "--name", "hierarchical_poisson",
            "--out", str(out / "results"), "--report", str(out / "report"), *(["--fresh"] if fresh else []),
        ]  # fmt: skip
        return line, {}
    sizes = f'{{"out": "{out / "results"}", "report": "{out / "report"}", "fresh": {str(fresh).lower()}}}'
    return [sys.executable, str(BATTERY)], {"PPL_SUITE_BATTERY_SIZES": sizes}


def timed(line: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one run; raises if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(line, env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(line)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checks", nargs="*", default=["battery", "example"], choices=sorted(GOALS))
    parser.add_argument("--states", default=",".join(STATES))
    options = parser.parse_args()
    states = [s for s in options.states.split(",") if s]
    for which in options.checks:
        with tempfile.TemporaryDirectory(prefix="check-speed-") as scratch:
            scratch_path = Path(scratch)
            env = {
                **os.environ,
                "PPL_SUITE_REFERENCE_CACHE": str(scratch_path / "references"),
                "PPL_SUITE_XLA_CACHE": str(scratch_path / "xla"),
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            }
            for state in states:
                line, extra = command(which, scratch_path / "check", fresh=state == "refit")
                wall, cpu = timed(line, {**env, **extra})
                goal = GOALS[which][state]
                verdict = "within goal" if wall <= goal else f"over its {goal:.0f} s goal"
                load = os.getloadavg()[0]  # the machine may be shared: its 1-minute load after the run
                times = f"wall {wall:6.1f} s  cpu {cpu:6.1f} s  load {load:4.1f}"
                print(f"{which:8s} {state:7s} {times}  ({verdict})", flush=True)


if __name__ == "__main__":
    main()
