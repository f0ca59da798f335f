"""Two checkouts timed one after the other, round by round: the comparison these machines allow.

Wall times here drift by tens of percent within minutes, so two benchmark runs one after the other
can rank two versions either way. ``interleave`` runs a warm-up of each checkout, then ``rounds``
rounds of both, alternating which goes first, and prints each (wall, CPU) and the medians.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

Timing = tuple[float, float]  # (wall, CPU) seconds


def checkouts(description: str, argv: Sequence[str] | None, rounds: int) -> tuple[dict[str, Path], int]:
    """The ``before`` and ``after`` checkouts named on the command line, and the number of rounds."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=rounds)
    options = parser.parse_args(argv)
    return {"before": options.before.resolve(), "after": options.after.resolve()}, options.rounds


def interleave(
    trees: dict[str, Path], timed: Callable[[str, Path], Timing], rounds: int
) -> dict[str, list[Timing]]:
    """Each checkout's timings: ``timed(name, tree)`` once for each as a warm-up (not counted), then
    ``rounds`` times, the first checkout first in odd rounds and last in even ones."""
    for name, tree in trees.items():
        timed(name, tree)
    timings: dict[str, list[Timing]] = {name: [] for name in trees}
    for round_ in range(rounds):
        order = list(trees) if round_ % 2 == 0 else list(reversed(trees))
        for name in order:
            timings[name].append(timed(name, trees[name]))
            wall, cpu = timings[name][-1]
            print(f"round {round_ + 1} {name:6s} wall {wall:6.2f} s  CPU {cpu:6.2f} s", flush=True)
    for name, runs in timings.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"median {name:6s} wall {wall:6.2f} s  CPU {cpu:6.2f} s")
    return timings
