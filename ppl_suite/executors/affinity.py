"""Which cell a free worker takes next: cells of one problem stay on one worker where they can.

A worker process pays once per problem shape for tracing, XLA compilation and JAX's per-operation
dispatch caches (seconds each); the cells that follow on the same problem reuse all of it. So cells
are grouped by problem (model and size overrides) and a worker keeps drawing from its group:

1. from the group it worked on last, in expansion order (guide, backend, seed), while it has cells;
2. else from the largest group no other worker holds (largest first balances the load, as in
   longest-processing-time-first scheduling);
3. else, to stay busy near the end, from the back of the largest group held by another worker, so
   the two workers meet in the middle of that group instead of compiling the same program at once.

The order in which cells run changes no number: every cell is deterministic on its own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Sequence

from ppl_suite.cell import Cell


def problem_key(cell: Cell) -> Hashable:
    """Cells with equal keys share array shapes, hence compiled programs, within one worker."""
    return cell.model, cell.overrides


class AffinityQueue:
    """Cells still to run, handed out to workers (any hashable name) by the rules above."""

    def __init__(self, cells: Sequence[Cell]) -> None:
        self._groups: dict[Hashable, deque[Cell]] = {}
        for cell in cells:
            self._groups.setdefault(problem_key(cell), deque()).append(cell)
        self._held: dict[Hashable, Hashable] = {}  # worker -> the group it works on
        self._from_back: dict[Hashable, bool] = {}  # worker -> whether it takes its group's last cells

    def __len__(self) -> int:
        return sum(len(group) for group in self._groups.values())

    def next_for(self, worker: Hashable) -> Cell | None:
        """The next cell for ``worker``, or None when every cell has been handed out."""
        own = self._held.get(worker)
        if self._groups.get(own):
            return self._take(worker, own)
        remaining = {key: group for key, group in self._groups.items() if group}
        if not remaining:
            return None
        held_by_others = {key for other, key in self._held.items() if other != worker}
        free = [key for key in remaining if key not in held_by_others]
        if free:
            key = max(free, key=lambda k: len(remaining[k]))  # first largest, in expansion order
            self._held[worker], self._from_back[worker] = key, False
        else:
            key = max(remaining, key=lambda k: len(remaining[k]))
            self._held[worker], self._from_back[worker] = key, True
        return self._take(worker, key)

    def drain(self) -> list[Cell]:
        """Every cell not handed out yet, in expansion order of their groups; the queue is then empty."""
        left = [cell for group in self._groups.values() for cell in group]
        self._groups.clear()
        return left

    def release(self, worker: Hashable) -> None:
        """``worker`` left (stopped, restarted under a new name): its group is free for the others."""
        self._held.pop(worker, None)
        self._from_back.pop(worker, None)

    def _take(self, worker: Hashable, key: Hashable) -> Cell:
        group = self._groups[key]
        return group.pop() if self._from_back[worker] else group.popleft()
