"""A JAX training loop run as compiled ``lax.scan`` segments between checkpoints.

The checkpoints (log-spaced steps) cut the run into segments of uneven lengths; each segment is cut
again into scans of ``CHUNK`` steps and single steps (3 050 = 30 x 100 + 50 x 1), so a run compiles
two programs whatever its checkpoints, ahead of time (timed apart), and the weights are read at every
checkpoint without a buffer in the loop. The default checkpoints of 15 000 steps make about 250 calls,
a few milliseconds of dispatch in all.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from ppl_suite.vae.training import TrainedVAE, TrainingSettings

CHUNK = 100


def chunk_lengths(n: int) -> list[int]:
    """n steps as scans of CHUNK steps, then single steps."""
    return [CHUNK] * (n // CHUNK) + [1] * (n % CHUNK)


@dataclass
class SegmentedRun:
    """The end state, the loss of every step, the weights at each checkpoint, and the seconds spent
    compiling (ahead of time) and running (wall and process CPU time)."""

    state: Any
    losses: np.ndarray
    snapshots: dict[int, dict[str, np.ndarray]]
    compile_seconds: float
    run_seconds: float
    cpu_seconds: float

    def trained(self, backend: str, settings: TrainingSettings) -> TrainedVAE:
        """The run as a TrainedVAE: the last checkpoint's weights are the final ones."""
        return TrainedVAE(
            backend=backend,
            settings=settings,
            weights=self.snapshots[settings.steps],
            checkpoints=self.snapshots,
            losses=self.losses,
            seconds=self.run_seconds,
            compile_seconds=self.compile_seconds,
            cpu_seconds=self.cpu_seconds,
        )


def run_segments(
    update: Callable[[Any, Any, Any], tuple[Any, Any]],
    weights_of: Callable[[Any], dict[str, Any]],
    state: Any,
    x: np.ndarray,
    batches: np.ndarray,
    checkpoints: Sequence[int],
) -> SegmentedRun:
    """Scan ``update(state, x, batch) -> (state, loss)`` over the rows of ``batches``, keeping
    ``weights_of(state)`` (as NumPy) after every number of steps in ``checkpoints`` (0 = before any)."""
    x = jax.numpy.asarray(x)
    bounds = list(itertools.pairwise(checkpoints))

    def advance(state, x, chunk):
        return jax.lax.scan(lambda state, batch: update(state, x, batch), state, chunk)

    start = time.perf_counter()
    lengths = sorted({length for a, b in bounds for length in chunk_lengths(b - a)})
    programs = {n: jax.jit(advance).lower(state, x, batches[:n]).compile() for n in lengths}
    compile_seconds = time.perf_counter() - start

    def snapshot(state) -> dict[str, np.ndarray]:
        return {name: np.array(value) for name, value in weights_of(state).items()}

    start, cpu_start = time.perf_counter(), time.process_time()
    snapshots, losses = {checkpoints[0]: snapshot(state)}, []
    for a, b in bounds:
        at = a
        for n in chunk_lengths(b - a):
            state, chunk_losses = programs[n](state, x, batches[at : at + n])
            losses.append(chunk_losses)
            at += n
        snapshots[b] = snapshot(state)
    losses = np.concatenate([np.asarray(chunk) for chunk in losses])
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return SegmentedRun(state, losses, snapshots, compile_seconds, wall, cpu)
