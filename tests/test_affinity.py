"""The local executor's scheduling policy: cells of one problem stay on one worker."""

from __future__ import annotations

import itertools

import pytest

from ppl_suite.cell import Cell
from ppl_suite.executors.affinity import AffinityQueue, problem_key


def cells(model: str, count: int, overrides: tuple = ()) -> list[Cell]:
    return [Cell(model, "numpyro", "mean_field", seed, seed, overrides) for seed in range(count)]


def drain(queue: AffinityQueue, order: list[int]) -> dict[int, list[Cell]]:
    """Hand out every cell, workers asking in the given repeating order."""
    taken: dict[int, list[Cell]] = {worker: [] for worker in order}
    for worker in itertools.cycle(order):
        cell = queue.next_for(worker)
        if cell is None:
            return taken
        taken[worker].append(cell)
    raise AssertionError("unreachable")


@pytest.mark.parametrize("order", [[0], [0, 1], [0, 1, 2], [0, 0, 1], [1, 0, 0, 0, 2]])
def test_every_cell_is_handed_out_exactly_once(order):
    everything = cells("a", 5) + cells("b", 3) + cells("a", 2, (("n", 7),)) + cells("c", 1)
    queue = AffinityQueue(everything)
    assert len(queue) == len(everything)
    taken = drain(queue, order)
    handed = [cell for worker in taken for cell in taken[worker]]
    assert sorted(handed, key=lambda c: c.key) == sorted(everything, key=lambda c: c.key)
    assert len(queue) == 0 and queue.next_for(0) is None


def test_workers_keep_their_problem_and_start_with_the_largest():
    queue = AffinityQueue(cells("small", 2) + cells("large", 4) + cells("middle", 3))
    first, second = queue.next_for(0), queue.next_for(1)
    assert (first.model, second.model) == ("large", "middle")
    assert [queue.next_for(0).model for _ in range(3)] == ["large"] * 3  # stays on its problem
    assert [queue.next_for(0).model for _ in range(2)] == ["small"] * 2  # then the one nobody holds
    assert [queue.next_for(1).model for _ in range(2)] == ["middle"] * 2
    assert queue.next_for(1) is None


def test_a_worker_left_idle_joins_the_largest_group_from_its_back():
    group = cells("only", 6)
    queue = AffinityQueue(group)
    assert queue.next_for(0) == group[0]
    assert queue.next_for(1) == group[5]  # nothing unheld: take the other end
    assert queue.next_for(1) == group[4]
    assert queue.next_for(0) == group[1]
    assert [queue.next_for(0), queue.next_for(1)] == [group[2], group[3]]
    assert queue.next_for(0) is None and queue.next_for(1) is None


def test_problems_differ_by_model_and_by_size_overrides():
    plain, resized = cells("a", 1)[0], cells("a", 1, (("n", 7),))[0]
    assert problem_key(plain) != problem_key(resized)
    assert problem_key(plain) == problem_key(Cell("a", "pyro", "full_rank", 3, 3))


def test_a_released_worker_frees_its_group_for_the_others():
    """A worker that leaves (timed out and restarted under a new name) holds nothing: a newcomer
    takes the group it left from the front, as a group nobody holds."""
    group = cells("only", 4)
    queue = AffinityQueue(group)
    assert queue.next_for("old") == group[0]
    queue.release("old")
    assert [queue.next_for("new"), queue.next_for("new")] == group[1:3]
