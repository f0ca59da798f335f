"""The per-cell cache of shared intermediates, passed in explicitly by the evaluation pipeline.

Importance log weights serve IS, IWAE and PSIS; the ELBO's draws serve the ``elbo`` column and the
``kl_identity`` plug-in. Each is computed once per cell for a given (target, guide, what, n, stream
seed) and reused; nothing is kept beyond the cell (the pipeline makes a new cache per cell).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class EvaluationCache:
    """A memo keyed by the identities of the target and guide and a hashable description."""

    def __init__(self) -> None:
        self._values: dict[tuple, Any] = {}
        self._held: list[Any] = []  # the keyed objects stay alive, so their ids are never reused

    def get(self, target: Any, guide: Any, key: Hashable, compute: Callable[[], T]) -> T:
        """The value of ``compute()`` for (target, guide, key), computed on the first request only."""
        full = (id(target), id(guide), key)
        if full not in self._values:
            self._values[full] = compute()
            self._held.extend((target, guide))
        return self._values[full]

    def __len__(self) -> int:
        return len(self._values)
