"""The Pyro backend's recorded SVI step replayed in inference mode against grad mode, in one process.

    python -m benchmarks.pyro_replay_inference_mode [--rounds 4]

The recording (``backends.pyro_recorded_step``) holds its own gradient operations, so its replays
need none of autograd's per-operation bookkeeping; ``replayed`` runs them under
``torch.inference_mode()``. Here the same fits (quick-profile settings: 3 000 steps, 16 particles)
alternate between that and the replay called in grad mode (``replayed`` swapped for a plain call),
round by round, the order flipped each round. Prints each model's median seconds of the timed steps
(``Fit.run_seconds``) both ways, their ratio, and whether the losses and guide parameters are the
same bits both ways (they must be: the same kernels run). A fit whose steps did not replay the
recording (an eager fallback: both ways would run the same code) stops the benchmark.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
from collections.abc import Callable

from ppl_suite.executors.worker import configure

configure()  # float64, one thread, the compilation cache: as in a worker

import numpy as np  # noqa: E402

from ppl_suite.backends import SVIConfig, get, pyro_recorded_step  # noqa: E402
from ppl_suite.backends.pyro_recorded_step import State  # noqa: E402
from ppl_suite.problem import Problem  # noqa: E402

CELLS = (
    ("normal_normal", "mean_field"),
    ("bayes_linreg", "mean_field"),
    ("dirichlet_categorical", "mean_field"),
    ("gaussian_mixture", "enumerate"),
    ("ppca", "mean_field"),
    ("ppca", "amortized"),
)
INFERENCE = "inference mode"
GRAD = "grad mode"


def grad_mode(replay: Callable[..., State], inputs: State) -> State:
    """The replay called as it was before ``replayed``: in the caller's (grad) mode."""
    return replay(*inputs)


WAYS: dict[str, Callable[[Callable[..., State], State], State]] = {
    INFERENCE: pyro_recorded_step.replayed,
    GRAD: grad_mode,
}


def fitted(model: str, guide: str, way: str) -> tuple[float, str]:
    """(seconds of the timed steps, a digest of the losses and guide parameters) of one quick-profile
    fit whose replays run ``way``; raises unless every timed step was a replay."""
    replays = 0

    def counted(replay: Callable[..., State], inputs: State) -> State:
        nonlocal replays
        replays += 1
        return WAYS[way](replay, inputs)

    pyro_recorded_step.replayed = counted
    try:
        fit = get("pyro").fit(Problem.build(model, 0), guide, SVIConfig(), 0)
    finally:
        pyro_recorded_step.replayed = WAYS[INFERENCE]
    if replays < fit.timed_steps:  # the recording's checks replay a few times more
        raise SystemExit(f"{model}/{guide}: {replays} replays for {fit.timed_steps} timed steps")
    arrays = [fit.losses, *(np.ascontiguousarray(fit.phi[name]) for name in sorted(fit.phi))]
    return fit.run_seconds, hashlib.sha256(b"".join(a.tobytes() for a in arrays)).hexdigest()


def _compared(grad: float, inference: float) -> str:
    return f"{grad:.3f} | {inference:.3f} | {grad / inference:.2f}x"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    rounds = parser.parse_args(argv).rounds
    seconds = {way: {cell: [] for cell in CELLS} for way in WAYS}
    digests: dict[tuple[str, str], set[str]] = {cell: set() for cell in CELLS}
    for round_ in range(rounds):
        order = list(WAYS) if round_ % 2 == 0 else list(reversed(WAYS))
        for way in order:
            for cell in CELLS:
                run_seconds, digest = fitted(*cell, way)
                seconds[way][cell].append(run_seconds)
                digests[cell].add(digest)
    print(f"| model | guide | {GRAD} (s) | {INFERENCE} (s) | ratio | same bits |")
    print("|---|---|---|---|---|---|")
    totals = dict.fromkeys(WAYS, 0.0)
    for cell in CELLS:
        medians = {way: statistics.median(seconds[way][cell]) for way in WAYS}
        for way, value in medians.items():
            totals[way] += value
        same = "yes" if len(digests[cell]) == 1 else "no"
        print(f"| {cell[0]} | {cell[1]} | {_compared(medians[GRAD], medians[INFERENCE])} | {same} |")
    print(f"| all | | {_compared(totals[GRAD], totals[INFERENCE])} | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
