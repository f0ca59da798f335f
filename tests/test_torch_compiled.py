"""A batched torch function is recorded per batch shape and replayed (``targets.torch_compiled``):
the replay gives the eager numbers at any input of its shape; a function whose recording could not
stand for every input (a tensor turned into a Python number, a random draw) stays eager and says why."""

from __future__ import annotations

import pytest
import torch

from ppl_suite.targets.torch_compiled import COMPILED, EAGER, FROZEN_REASON, RECORD_AT, CompiledBatched


def value_and_gradient(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """f(u) = sum log N(u; 0, exp(u_0)) per row, and its gradient (autograd recorded with it)."""
    with torch.enable_grad():
        u = flat.detach().requires_grad_(True)
        value = torch.distributions.Normal(0.0, u[:, :1].exp(), validate_args=False).log_prob(u).sum(-1)
        (gradient,) = torch.autograd.grad(value.sum(), u)
    return value.detach(), gradient


def test_a_shape_met_twice_is_replayed_and_gives_the_eager_numbers_at_other_points():
    compiled = CompiledBatched(value_and_gradient)
    batch = torch.randn(5, 3, dtype=torch.float64)
    for _ in range(RECORD_AT):
        compiled(batch)
    assert compiled.path == COMPILED and list(compiled._recorded) == [(5, 3)]
    for seed in range(4):  # past TorchScript's profiling runs
        points = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        for found, expected in zip(compiled(points), value_and_gradient(points), strict=True):
            torch.testing.assert_close(found, expected, rtol=1e-12, atol=1e-12)
    compiled(torch.randn(2, 3, dtype=torch.float64))  # another shape, met once: eager, not recorded
    assert list(compiled._recorded) == [(5, 3)]


def branching(flat: torch.Tensor) -> tuple[torch.Tensor]:
    """Python control flow on a value: a recording would keep one branch."""
    return (flat.sum(-1) * (2.0 if float(flat[0, 0]) > 0 else -1.0),)


READS = {  # each reads the first coordinate into Python, some without an ATen operation
    "item": lambda flat: flat[0, 0].item(),
    "numpy": lambda flat: flat.detach().numpy()[0, 0],
    "tolist": lambda flat: flat.tolist()[0][0],
}


def drawing(flat: torch.Tensor) -> tuple[torch.Tensor]:
    return (flat.sum(-1) + torch.randn(flat.shape[0], dtype=flat.dtype),)


def test_data_dependent_control_flow_and_random_draws_stay_eager_and_say_why():
    compiled = CompiledBatched(branching)
    positive, negative = torch.ones(2, 2, dtype=torch.float64), -torch.ones(2, 2, dtype=torch.float64)
    for _ in range(RECORD_AT):
        compiled(positive)
    assert compiled.path.startswith(EAGER) and "Python number" in compiled.path
    torch.testing.assert_close(compiled(negative)[0], torch.full((2,), 2.0, dtype=torch.float64))
    random = CompiledBatched(drawing)
    for _ in range(RECORD_AT):
        random(positive)
    assert random.path.startswith(f"{EAGER}: the model draws random numbers")


@pytest.mark.parametrize("read", sorted(READS))
def test_a_branch_on_a_value_read_any_way_stays_eager_and_is_right_on_both_branches(read):
    def function(flat: torch.Tensor) -> tuple[torch.Tensor]:
        return (flat.sum(-1) * (2.0 if READS[read](flat) > 0 else -1.0),)

    compiled = CompiledBatched(function)
    positive, negative = torch.ones(2, 2, dtype=torch.float64), -torch.ones(2, 2, dtype=torch.float64)
    for _ in range(RECORD_AT):
        torch.testing.assert_close(compiled(positive)[0], torch.full((2,), 4.0, dtype=torch.float64))
    assert compiled.path.startswith(f"{EAGER}: {FROZEN_REASON}") and not compiled._recorded
    torch.testing.assert_close(compiled(negative)[0], torch.full((2,), 2.0, dtype=torch.float64))


def test_an_error_while_checking_a_recording_falls_back_to_eager_for_every_shape():
    """A function that raises while its recording is checked (here: from its fourth call on three
    rows: two eager calls, the recording, then the checks) runs eagerly from then on, earlier
    recordings dropped, saying why."""
    calls = []

    def fragile(flat: torch.Tensor) -> tuple[torch.Tensor]:
        calls.append(flat.shape[0])
        if flat.shape[0] == 3 and calls.count(3) == 4:
            raise ValueError("failed at a check")
        return (flat.sum(-1),)

    compiled = CompiledBatched(fragile)
    two, three = torch.ones(2, 2, dtype=torch.float64), torch.ones(3, 2, dtype=torch.float64)
    for _ in range(RECORD_AT):
        compiled(two)
    assert compiled.path == COMPILED
    for _ in range(RECORD_AT):
        torch.testing.assert_close(compiled(three)[0], torch.full((3,), 2.0, dtype=torch.float64))
    assert compiled.path.startswith(f"{EAGER}: ") and "ValueError: failed at a check" in compiled.path
    assert not compiled._recorded
    torch.testing.assert_close(compiled(two)[0], torch.full((2,), 2.0, dtype=torch.float64))


def test_compilation_off_runs_the_function_itself():
    compiled = CompiledBatched(value_and_gradient, enabled=False)
    for _ in range(RECORD_AT + 1):
        compiled(torch.ones(2, 3, dtype=torch.float64))
    assert compiled.path == f"{EAGER}: compilation off" and not compiled._recorded
