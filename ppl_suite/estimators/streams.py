"""Independent random streams of one cell: one per estimator (or shared intermediate), by name.

    seed of stream s in a cell seeded c = SeedSequence([c, crc32(s)]).generate_state(2) as a 63-bit int

crc32 is a stable hash of the name (Python's ``hash`` changes between processes), so a stream's
numbers depend on the cell seed and the stream's name alone: adding, removing or reordering
estimators changes no other estimator's draws, and two routes that name the same stream (the
``elbo`` column and the ``kl_identity`` plug-in) compute the same numbers.
"""

from __future__ import annotations

import zlib

import numpy as np


def stream_seed(seed: int, stream: str) -> int:
    """The seed (an integer in [0, 2^63)) of stream ``stream`` in a cell seeded ``seed``."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"a cell seed is an integer >= 0, got {seed!r}")
    words = np.random.SeedSequence([int(seed), zlib.crc32(stream.encode())]).generate_state(2, np.uint64)
    return int(words[0] >> np.uint64(1))
