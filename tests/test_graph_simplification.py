"""A recorded graph's simplification (``targets.graph_simplification``) folds constants, merges
duplicates and drops aliases, and every output stays the same to the bit: each rewrite on a small
function; random draws, tensors written in place and the reads of them are never folded or merged;
an output never shares memory with an input, a constant or another output; negative views are not
aliases; BLAS operations do not fold, and a list's tensors count towards the chunk; the recorded Pyro
SVI step of shipped models and guides, and a Pyro model's recorded density, replay bit for bit as
their unsimplified recordings do, drawing the same random numbers."""

from __future__ import annotations

import io
from collections.abc import Callable

import pyro
import pytest
import torch
from torch.fx.experimental.proxy_tensor import make_fx

from ppl_suite import registry
from ppl_suite.backends.base import SVIConfig
from ppl_suite.backends.pyro import _family_run, as_torch
from ppl_suite.backends.pyro_draws import check_draws
from ppl_suite.backends.pyro_recorded_step import RECORD_MIN_STEPS
from ppl_suite.problem import Problem
from ppl_suite.targets import graph_simplification, torch_compiled
from ppl_suite.targets.graph_simplification import (
    ONE_CHUNK,
    drop_aliases,
    fold_constants,
    merge_duplicates,
    simplified,
)
from ppl_suite.targets.pyro_target import PyroTarget
from ppl_suite.targets.torch_compiled import COMPILED, RECORD_AT, record

X = torch.tensor([[0.5, -1.5, 2.0], [0.25, -0.0, 3.0]], dtype=torch.float64)


def _recorded(function: Callable, *inputs: torch.Tensor) -> torch.fx.GraphModule:
    graph = make_fx(function, tracing_mode="fake", _allow_non_fake_inputs=True)(*inputs)
    graph.graph.eliminate_dead_code()
    graph.recompile()
    return graph


def _operations(graph: torch.fx.GraphModule) -> list[str]:
    """The graph's operations in order, as ``div.Tensor``."""
    return [node.target.__name__ for node in graph.graph.nodes if node.op == "call_function"]


def _rewritten(graph: torch.fx.GraphModule, rewrite: Callable[[torch.fx.GraphModule], int]) -> int:
    count = rewrite(graph)
    graph.graph.eliminate_dead_code()
    graph.recompile()
    return count


def _bitwise_equal(found, expected) -> bool:
    return len(found) == len(expected) and all(
        a.dtype == b.dtype and torch.equal(a.view(-1).view(torch.int64), b.view(-1).view(torch.int64))
        for a, b in zip(found, expected, strict=True)
    )


def test_an_operation_of_constants_is_evaluated_once_into_a_constant():
    scale = torch.tensor([2.0, 3.0, 5.0], dtype=torch.float64)

    def function(x):
        prior = -((x / scale) ** 2) / 2 - torch.log(torch.full((3,), 2.0, dtype=torch.float64))
        return (prior - torch.ones_like(x).neg() + x.new_zeros(3).exp(),)

    graph = _recorded(function, X)
    expected = graph(X)
    assert _rewritten(graph, fold_constants) == 3  # log(full(2.0)), neg(ones_like(x)), exp(new_zeros)
    assert _operations(graph) == [  # full, log, ones_like, the second neg, new_zeros and exp gone
        "div.Tensor",
        "pow.Tensor_Scalar",
        "neg.default",
        "div.Tensor",
        "sub.Tensor",
        "sub.Tensor",
        "add.Tensor",
    ]
    assert _bitwise_equal(graph(X), expected) and _bitwise_equal(graph(X), function(X))


def test_an_operation_of_constants_on_more_than_one_chunk_is_recomputed_at_each_replay():
    size = ONE_CHUNK + 1  # split per thread: its rounding may depend on the thread count

    def function(x):
        return (x[0, 0] * torch.ones(size, dtype=torch.float64).exp(),)

    graph = _recorded(function, X)
    assert _rewritten(graph, fold_constants) == 0
    assert _operations(graph) == ["select.int", "select.int", "ones.default", "exp.default", "mul.Tensor"]


def test_a_repeated_operation_is_computed_once_and_signed_zeros_stay_apart():
    def function(x):
        return (x.exp() * 2.0 + x.exp(), (x + 0.0) * (x + -0.0))

    graph = _recorded(function, X)
    expected = graph(X)
    assert _rewritten(graph, merge_duplicates) == 1
    assert _operations(graph).count("exp.default") == 1
    assert _operations(graph).count("add.Tensor") == 3  # x + 0.0 and x + -0.0 differ at x = -0.0
    assert _bitwise_equal(graph(X), expected)


def test_a_view_or_copy_with_its_sources_layout_is_dropped_and_others_kept():
    def function(x):
        same = x.detach().expand(2, 3).view(2, 3).t().t().pow(1.0)
        broadcast = x.expand(4, 2, 3).pow(1.0)  # a contiguous copy of a broadcast view: kept
        return (same * 3.0, broadcast.sum(0))

    graph = _recorded(function, X)
    expected = graph(X)
    assert _rewritten(graph, drop_aliases) == 5  # detach, expand, view, t(t(.)), pow(., 1.0)
    assert _operations(graph) == ["expand.default", "pow.Tensor_Scalar", "mul.Tensor", "sum.dim_IntList"]
    assert _bitwise_equal(graph(X), expected)


def test_random_draws_are_neither_folded_nor_merged():
    def function(x):
        return (x + torch.randn(3, dtype=torch.float64) + torch.randn(3, dtype=torch.float64),)

    graph = simplified(_recorded(function, X))
    assert _operations(graph).count("randn.default") == 2
    torch.manual_seed(0)
    found, state = graph(X), torch.get_rng_state()
    torch.manual_seed(0)
    assert _bitwise_equal(found, function(X)) and torch.equal(torch.get_rng_state(), state)


def test_a_tensor_written_in_place_and_its_views_are_neither_folded_nor_merged():
    def function(x):
        written, untouched = torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
        head = written[:2]  # read after the write: sees it
        written.add_(x[0])
        return (head * 2.0 + untouched[:2],)

    graph = simplified(_recorded(function, X))
    assert "add_.Tensor" in _operations(graph) and "slice.Tensor" in _operations(graph)
    assert _operations(graph).count("zeros.default") == 1  # the written one; the other folded
    assert _bitwise_equal(graph(X), function(X)) and torch.equal(graph(X)[0], 2.0 * X[0, :2])


def test_reads_of_a_tensor_before_and_after_its_write_through_a_view_are_not_merged():
    def function(a):
        x = a * 2.0
        before = x.sum()
        x[0:2].mul_(10.0)  # the base's node stays the same; its value changes
        return (x.sum() - before,)  # merged, 0

    graph = _recorded(function, X[0])
    assert _rewritten(graph, merge_duplicates) == 0
    assert _bitwise_equal(graph(X[0]), function(X[0]))


def test_a_polya_urn_whose_counts_are_read_and_written_replays_as_the_eager_function():
    observed = [0, 2, 2, 1]

    def log_density(theta):  # counts updated in place while being read
        counts = torch.zeros(3, dtype=torch.float64)
        total = torch.zeros(theta.shape[0], dtype=torch.float64)
        for k in observed:
            total = total + (counts + theta).softmax(-1)[:, k].log()
            counts[k] += 1.0
        return (total,)

    theta = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert _bitwise_equal(tuple(record(log_density, (theta,))(theta)), log_density(theta))


def test_an_output_shares_memory_with_no_input_constant_or_other_output():
    def function(a):
        ones = torch.ones(3, dtype=torch.float64)
        return (a.clone().view(-1), ones.view(-1), a.exp().view(-1), a.exp().view(3, 2), ones * 2.0)

    graph = simplified(_recorded(function, X))
    storages = [X.untyped_storage().data_ptr()]
    for output in graph(X):
        storages.append(output.untyped_storage().data_ptr())
        output.add_(5.0)  # the caller's memory: a write changes no later call
    assert len(set(storages)) == len(storages)
    assert _bitwise_equal(graph(X), function(X))


def test_a_negative_view_is_not_dropped_as_an_alias():
    def function(x):
        return (torch._neg_view(x) * 2.0,)

    graph = _recorded(function, X)
    assert _rewritten(graph, drop_aliases) == 0
    assert _bitwise_equal(graph(X), function(X))


def test_a_blas_operation_of_constants_is_not_folded_and_a_lists_elements_count():
    def function(x):
        return (x[0, 0] * (torch.ones(2, 3, dtype=torch.float64) @ torch.ones(3, 2, dtype=torch.float64)),)

    graph = _recorded(function, X)  # mm runs in BLAS: its rounding may depend on the thread count
    assert _rewritten(graph, fold_constants) == 2  # the two ones, read by mm
    assert "mm.default" in _operations(graph)
    assert _bitwise_equal(graph(X), function(X))
    small, large = torch.zeros(1), torch.zeros(ONE_CHUNK + 1)
    assert not graph_simplification._one_chunk(small, ((small, [small, large]), {}))


def _unsimplified(monkeypatch: pytest.MonkeyPatch, recorder: Callable = record) -> Callable:
    """``recorder`` (``record`` or a partial of it) without the simplification (as before it existed)."""

    def recorded(*arguments, **options):
        with monkeypatch.context() as patch:
            patch.setattr(torch_compiled, "simplified", lambda graph: graph)
            return recorder(*arguments, **options)

    return recorded


def _replays(program: Callable, inputs: tuple[torch.Tensor, ...], steps: int, seed: int):
    """The outputs of ``steps`` replays of a recorded SVI step from ``inputs`` (each from the last's
    state), then torch's generator state."""
    torch.manual_seed(seed)
    lr, t, *state = inputs
    outputs = []
    for step in range(steps):
        loss, *state = program(lr / (step + 1), t + step, *state)
        outputs += [loss, *state]
    return outputs, torch.get_rng_state()


@pytest.mark.parametrize(
    "model_name, guide",
    [
        ("bayes_linreg", "mean_field"),
        ("ppca", "amortized"),
        ("beta_bernoulli", "conjugate"),  # drawn by rejection: draws whose count depends on values
        ("gaussian_mixture", "enumerate"),  # recorded on real tensors (a size that depends on values)
        *(
            pytest.param(model_name, guide, marks=pytest.mark.slow)
            for model_name, guide in [
                ("normal_normal", "mean_field"),
                ("bayes_linreg", "full_rank"),
                ("eight_schools_noncentered", "mean_field"),
                ("dirichlet_categorical", "mean_field"),
                ("logistic_regression", "full_rank"),
            ]
        ),
    ],
)
def test_the_simplified_pyro_step_replays_its_unsimplified_recording_bit_for_bit(
    model_name, guide, monkeypatch
):
    monkeypatch.setenv("PPL_SUITE_XLA_CACHE", "off")  # recorded here, neither loaded nor kept
    problem = Problem.build(model_name, 0)
    data, params = as_torch(problem.data), as_torch(problem.params)
    pyro.clear_param_store()
    torch.manual_seed(0)
    draws = check_draws(registry.implementation(model_name, "pyro"), data, params)
    config = SVIConfig(steps=RECORD_MIN_STEPS, particles=4)
    steps = _family_run(problem, guide, config, data, params, draws).steps
    steps(0.05)  # eager, then recorded (simplified) and checked
    assert steps.path == COMPILED
    inputs = (torch.tensor(0.05, dtype=torch.float64), torch.tensor(2.0), *steps.state)
    with torch.random.fork_rng(devices=[]), pyro.validation_enabled(False):
        step, recorder = steps._step()  # recorder: on fake tensors, or real ones (enumerated)
        unsimplified = _unsimplified(monkeypatch, recorder)(step, inputs)
    pyro.clear_param_store()
    found, state = _replays(steps.replay, inputs, steps=4, seed=1)
    expected, expected_state = _replays(unsimplified, inputs, steps=4, seed=1)
    assert _bitwise_equal(found, expected) and torch.equal(state, expected_state)
    kept = io.BytesIO()  # as the program cache keeps it: folded constants saved with their layout
    torch.jit.save(steps.replay, kept)
    kept.seek(0)
    assert _bitwise_equal(_replays(torch.jit.load(kept), inputs, steps=4, seed=1)[0], expected)


def test_a_pyro_models_simplified_density_and_gradient_replay_the_unsimplified_bit_for_bit(monkeypatch):
    target = PyroTarget(Problem.build("logistic_regression", 0))
    u = torch.randn(5, target.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    values_and_gradients = target._density.evaluations[1]
    for _ in range(RECORD_AT):  # eager, then recorded (simplified) and checked
        values_and_gradients(u)
    assert values_and_gradients.path == COMPILED
    replay = values_and_gradients._recorded[tuple(u.shape)]
    unsimplified = _unsimplified(monkeypatch)(values_and_gradients.function, (u,))
    for point in (u, -u, u, 2 * u):  # past TorchScript's profiling runs
        assert _bitwise_equal(tuple(replay(point)), tuple(unsimplified(point)))


def test_the_simplification_is_part_of_the_recording():
    assert torch_compiled.simplified is graph_simplification.simplified
