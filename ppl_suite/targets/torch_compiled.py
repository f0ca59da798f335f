"""A torch function of a batch, recorded once per batch shape and replayed without Python.

Evaluating a Pyro model's density eagerly runs Python on every call: Pyro's handlers trace the model
(``poutine.trace``, ``condition``, plates, ``torch.func.vmap`` of a one-draw model), torch builds an
autograd graph and walks it back. For a fixed batch shape the same tensor operations run every time,
so the whole computation, values and their gradients, is recorded once as a graph of ATen operations
(``torch.fx.experimental.proxy_tensor.make_fx``: Python runs once, autograd's backward is recorded
with the forward, as AOTAutograd records it) and that graph is traced to TorchScript
(``torch.jit.trace``) so a call runs the operations without Python in between. The operations are
those the eager call runs, so the numbers are the same (float64 rounding of the same sums). Before
tracing, the graph is simplified (``graph_simplification``): operations of constants are evaluated
once into constants, repeated operations merged, views and copies that keep their source's layout
dropped; each remaining operation runs the same kernel on the same values and layout, so every output
is the same to the bit. On the suite's Pyro steps 20-45 % fewer operations run (after TorchScript's
own optimizations) and a replay takes 10-35 % less time. Random draws are never folded, merged or
dropped: they keep their order and count.

Pyro's HMC does the like for its potential (``pyro.infer.mcmc.util.initialize_model(...,
jit_compile=True)`` traces it with ``torch.jit.trace`` under ``ignore_jit_warnings``); recording the
gradient too takes torch's backward pass, ~35 % of an eager call, out of Python as well.

The recording runs on fake tensors (``make_fx(..., tracing_mode="fake")``: shapes without values;
the model's data, closed over, stay real constants), so Python cannot branch on the input's values:
turning it into a Python number (``float(x)``, ``x.item()``, ``if x > 0``, ``.tolist()``,
``.numpy()``) raises while recording. A recording is kept only when, besides,

- no operation turns a tensor into a Python number (``aten._local_scalar_dense``);
- no random operation is recorded (it would replay the recorded draw);
- replayed at other points of the same shape (the point negated, moved, and perturbed at random), it
  gives the eager values to ``AGREEMENT``: a check at a few points, not a proof.

Otherwise, or when a check or a replay raises, every recording is dropped and the function runs
eagerly from then on; ``failure`` says why. A shape is recorded the second time it is met (recording
costs ~0.3-1.5 s: shapes met once, a start or a last short batch, stay eager); ``path`` says which
way calls went. Control flow on a Python value computed outside the function's input (data, flags)
is recorded as it stood, as for any trace.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch

from ppl_suite.targets.graph_simplification import simplified

# A torch function of one batch tensor returning a tuple of tensors
Batched = Callable[[torch.Tensor], tuple[torch.Tensor, ...]]

COMPILED, EAGER = "compiled", "eager"
NOT_YET = f"{EAGER}: no shape met twice yet"
AGREEMENT = 1e-12  # relative and absolute: the same operations, float64 rounding of sums at most
RECORD_AT = 2  # a shape is recorded when met this many times
FROZEN = "aten._local_scalar_dense"  # a tensor made a Python number: control flow may depend on it


FROZEN_REASON = "the model turns a tensor into a Python number (data-dependent control flow)"


def refusal_of(graph: torch.fx.GraphModule, draws: bool = False) -> str | None:
    """Why a recorded graph does not stand for every input of its shape, or None; ``draws``: random
    operations are meant to draw anew at each replay (they read torch's global generator)."""
    for node in graph.graph.nodes:
        if node.op != "call_function":
            continue
        name = str(node.target)
        if name.startswith(FROZEN):
            return FROZEN_REASON
        if not draws and torch.Tag.nondeterministic_seeded in getattr(node.target, "tags", ()):
            return f"the model draws random numbers ({name})"
    return None


def _other_points(batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Points of the same shape as ``batch``: negated (every sign crossed), moved (every coordinate
    changed), and perturbed by standard normal noise (fixed seed)."""
    noise = torch.randn(batch.shape, dtype=batch.dtype, generator=torch.Generator().manual_seed(0))
    return (-batch, 0.9 * batch.flip(0) + 0.3, batch + noise)


def first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def agree(found: tuple[torch.Tensor, ...], expected: tuple[torch.Tensor, ...]) -> bool:
    return len(found) == len(expected) and all(
        a.shape == b.shape and torch.allclose(a, b, rtol=AGREEMENT, atol=AGREEMENT, equal_nan=True)
        for a, b in zip(found, expected, strict=True)
    )


class NotRecorded(Exception):
    """``recorded_graph`` found that the function cannot be recorded; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def record(
    function: Callable[..., Any], inputs: tuple[torch.Tensor, ...], draws: bool = False, real: bool = False
) -> Any:
    """``recorded_graph(function, inputs, draws, real)`` traced to TorchScript: the TorchScript
    function. Raises what ``recorded_graph`` and TorchScript raise. Checking the recording against the
    function is the caller's."""
    graph = recorded_graph(function, inputs, draws, real)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)  # TorchScript's notice
        return torch.jit.trace(graph, inputs, check_trace=False)


def recorded_graph(
    function: Callable[..., Any], inputs: tuple[torch.Tensor, ...], draws: bool = False, real: bool = False
) -> torch.fx.GraphModule:
    """``function`` recorded at the shapes of ``inputs`` (``make_fx`` on fake tensors: a value read into
    Python raises; the model's data are real constants), dead code removed, simplified with every
    value bit for bit the same (``graph_simplification``): a graph of ATen operations. ``real``:
    ``make_fx`` on the real ``inputs`` instead, the operations run as they are recorded, so an output
    whose size depends on values (``masked_select``) is followed; a value read into Python is then
    recorded (``aten._local_scalar_dense``) and refused. Raises NotRecorded when make_fx cannot
    follow the function or the graph does not stand for every input of its shape (``refusal_of``;
    random draws allowed with ``draws``)."""
    from torch.fx.experimental.proxy_tensor import make_fx  # imports torch._dynamo

    try:
        if real:
            graph = make_fx(function, tracing_mode="real")(*inputs)
        else:
            graph = make_fx(function, tracing_mode="fake", _allow_non_fake_inputs=True)(*inputs)
    except Exception as error:  # a value read, a size from values, an operation it cannot follow
        raise NotRecorded(f"{FROZEN_REASON}, or cannot be recorded ({first_line(error)})") from error
    graph.graph.eliminate_dead_code()
    graph.recompile()
    refusal = refusal_of(graph, draws)
    if refusal is not None:
        raise NotRecorded(refusal)
    simplified(graph)
    return graph


class CompiledBatched:
    """``function`` (a batch tensor -> tuple of tensors, no state between calls), replayed from a
    recording per batch shape, else run eagerly (module docstring). Calls are serialized by ``lock``
    (shared by functions that share global state, as Pyro's handler stack and parameter store)."""

    def __init__(
        self, function: Batched, enabled: bool = True, lock: AbstractContextManager[Any] | None = None
    ) -> None:
        self.function = function
        self.enabled = enabled
        self.failure: str | None = None
        self._seen: dict[tuple[int, ...], int] = {}
        self._recorded: dict[tuple[int, ...], Batched] = {}
        self._lock = lock if lock is not None else threading.Lock()

    @property
    def path(self) -> str:
        """COMPILED when calls replay recordings, else EAGER with the reason."""
        if self.failure is not None:
            return f"{EAGER}: {self.failure}"
        if not self.enabled:
            return f"{EAGER}: compilation off"
        return COMPILED if self._recorded else NOT_YET

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        shape = tuple(batch.shape)
        with self._lock:
            recorded = self._recorded.get(shape)
            if recorded is not None:
                try:
                    return tuple(recorded(batch))
                except Exception as error:  # a replay that fails: eager from now on
                    self._fail(f"a replay failed ({first_line(error)})")
            found = self.function(batch)
            if not self.enabled or self.failure is not None or batch.numel() == 0:
                return found
            self._seen[shape] = self._seen.get(shape, 0) + 1
            if self._seen[shape] >= RECORD_AT:
                self._record(batch)
            return found

    def _fail(self, reason: str) -> None:
        """Run eagerly from now on, for every shape, saying why."""
        self.failure = reason
        self._recorded.clear()

    def _record(self, batch: torch.Tensor) -> None:
        """Record ``function`` at ``batch``'s shape, or fail (module docstring)."""
        try:
            replay = record(self.function, (batch,))
            checks = [(points, self.function(points)) for points in (batch, *_other_points(batch))]
            for points, expected in (
                checks + checks[:1]
            ):  # twice at one point: TorchScript optimizes after a run
                if not agree(tuple(replay(points)), expected):
                    self._fail("the recording disagrees with the eager function at other points")
                    return
        except NotRecorded as refused:
            self._fail(refused.reason)
            return
        except Exception as error:  # the model at an input it never met, or TorchScript
            self._fail(f"checking the recording failed ({first_line(error)})")
            return
        self._recorded[tuple(batch.shape)] = replay
