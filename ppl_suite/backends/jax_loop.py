"""The whole SVI loop as one compiled JAX function, with parameter snapshots along the way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

CHECKPOINTS = 20


def checkpoint_every(steps: int) -> int:
    return max(steps // CHECKPOINTS, 1)


def checkpoint_steps(steps: int) -> np.ndarray:
    """Steps (1-based counts of updates done) after which parameters are snapshotted."""
    every = checkpoint_every(steps)
    return steps % every + every * np.arange(1, steps // every + 1)


def scan_with_checkpoints(
    step: Callable[[Any, Any], tuple[Any, Any]],
    snapshot: Callable[[Any], Any],
    steps: int,
    xs: Any | None = None,
) -> Callable[[Any], tuple[Any, Any, Any]]:
    """A function state -> (state, losses (steps,), snapshots stacked at ``checkpoint_steps``).

    ``step(state, x) -> (state, loss)`` is scanned over ``steps``; ``xs`` (optional, leading axis
    ``steps``) feeds per-step inputs such as the step index.
    """
    every = checkpoint_every(steps)
    head, chunks = steps % every, steps // every
    xs = np.arange(steps) if xs is None else xs

    def run(state):
        head_losses = np.empty(0)
        if head:  # a scan of length 0 would still be traced and compiled: skip it
            state, head_losses = jax.lax.scan(step, state, xs[:head])

        def chunk(state, chunk_xs):
            state, losses = jax.lax.scan(step, state, chunk_xs)
            return state, (losses, snapshot(state))

        state, (losses, snaps) = jax.lax.scan(chunk, state, xs[head:].reshape(chunks, every))
        return state, jax.numpy.concatenate([head_losses, losses.reshape(-1)]), snaps

    return run
