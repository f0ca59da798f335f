"""Fewer operations in a recorded graph of ATen operations, every value bit for bit the same.

A graph recorded by ``make_fx`` (``torch_compiled.record``) holds every operation the eager call ran,
and a replay pays ~2 us of interpreter and dispatcher per operation whatever its size: on the small
models of the suite that per-operation cost is nearly the whole replay. Many operations compute nothing
new at a replay. Three rewrites remove them, each keeping every remaining operation's kernel and the
values and memory layout (sizes, strides) it reads, so every output is the same to the bit:

- constants folded: an operation whose inputs are all constants (the model's data, tensors made from
  literals, shape-only functions of a recorded tensor: ``ones_like``, ``new_zeros``...) is
  evaluated once, at recording, by the same kernel on the same values, and its result becomes a
  constant of the graph (prior terms such as ``log(scale)``, expands of data, the gradient's seed).
  Only operations ATen computes itself fold: element by element (``torch.Tag.pointwise``),
  reductions (``torch.Tag.reduction``), views, copies and fills (``full``, ``ones``, the shape-only
  functions...); not the ones BLAS or LAPACK compute (``mm``, ``addmm``, ``dot``, ``linalg_*``...),
  whose rounding can depend on the library's thread count and code path. Apart from views, only
  operations on at most ONE_CHUNK elements (the result and every tensor input, lists' elements
  included) fold: ATen runs those in one chunk on one thread, so their rounding is that of any
  process, whatever its thread count (a larger operation is split in chunks per thread, and a
  reduction's sum, or which elements a vectorized kernel leaves to its scalar tail, can change with
  the split); a recording, and a program kept on disk, gains at most 256 KiB (float64) a folded
  constant;
- duplicates merged: an operation with the same target and the same arguments as an earlier one
  computes the same value (the loss and Pyro's surrogate loss repeat their shared terms), so its users
  read the earlier result (common subexpression elimination);
- aliases dropped: a view whose sizes, strides, offset, dtype and negative and conjugate bits are
  those of a tensor it views (``detach``, ``expand`` or ``view`` to the same shape,
  ``t(transpose(x))``; not ``_neg_view``), and a copy with the same layout as its source (``clone``,
  ``lift_fresh_copy``, ``pow(x, 1)``, which ATen computes as a copy), are replaced by that tensor.
  A replay runs without gradients, so ``detach`` changes nothing there.

None of them touches an operation that draws random numbers (``torch.Tag.nondeterministic_seeded``:
the draws keep their order and count, so a replay reads torch's generator as the eager call does),
writes in place, or returns uninitialized memory (``empty``), nor any tensor that shares storage with
one written in place, nor an operation that reads such a tensor (its value depends on when it is
read: two reads around a write differ though their arguments are the same nodes), nor any tensor
that shares storage with an output: the outputs are kept as they are, and each is memory of its own
wherever the unsimplified graph's was (never an input's, a folded constant's or another output's),
so a caller may write into it. Shapes are those of the recording (a recording stands for one
shape), which is why a shape-only function folds.
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch.fx import GraphModule, Node
from torch.fx.node import map_arg
from torch.utils._pytree import tree_leaves

UNINITIALIZED = frozenset(
    {"empty", "empty_like", "empty_strided", "empty_permuted", "new_empty", "new_empty_strided"}
)
# functions that read of their first input only its sizes, strides, dtype and device
SHAPE_ONLY = frozenset({"ones_like", "zeros_like", "full_like", "new_ones", "new_zeros", "new_full"})
# functions that fill a new tensor with values given as arguments
FACTORIES = frozenset({"full", "ones", "zeros", "scalar_tensor", "arange"})
COPIES = frozenset({torch.ops.aten.clone.default, torch.ops.aten.lift_fresh_copy.default})
POWER = torch.ops.aten.pow.Tensor_Scalar
UNSAFE_TAGS = (torch.Tag.nondeterministic_seeded, torch.Tag.nondeterministic_bitwise)
FOLDED = "_folded_constant"  # the attribute names of folded constants: _folded_constant_<i>
ONE_CHUNK = 32_768  # ATen's parallel grain (at::internal::GRAIN_SIZE): fewer elements, one thread
MAX_ROUNDS = 8  # each rewrite can open others (a dropped alias makes a duplicate); a few rounds settle

Geometry = tuple[tuple[int, ...], tuple[int, ...], int, torch.dtype, torch.device, bool, bool]


def simplified(module: GraphModule) -> GraphModule:
    """``module`` with its constants folded, duplicates merged and aliases dropped (module docstring),
    dead code removed, recompiled; rewritten in place and returned."""
    for _ in range(MAX_ROUNDS):
        changed = fold_constants(module) + merge_duplicates(module) + drop_aliases(module)
        module.graph.eliminate_dead_code()
        if not changed:
            break
    _drop_unused_constants(module)
    module.graph.lint()
    module.recompile()
    return module


def fold_constants(module: GraphModule) -> int:
    """Evaluate once every operation whose inputs are constants (module docstring) and give its users
    the result as a new constant; how many operations were replaced."""
    graph, protected = module.graph, _protected(module.graph)
    values: dict[Node, Any] = {}
    for node in graph.nodes:
        if node in protected:
            continue
        if node.op == "get_attr":
            values[node] = _attribute(module, node.target)
        elif node.op == "call_function" and _is_pure(node) and _foldable(node.target):
            inputs = _constant_inputs(node, values)
            if inputs is not None:
                with torch.no_grad():
                    result = node.target(*inputs[0], **inputs[1])
                if isinstance(result, torch.Tensor) and (
                    _viewed(node) is not None or _one_chunk(result, inputs)
                ):
                    values[node] = result
    folded, names = 0, _free_names(module)
    for node, value in values.items():
        if node.op != "call_function" or all(user in values for user in node.users):
            continue  # a constant read only by constants is folded with its last reader
        name = next(names)
        setattr(module, name, value)
        with graph.inserting_before(node):
            constant = graph.create_node("get_attr", name)  # a plain attribute, as make_fx's constants
        constant.meta = dict(node.meta)
        node.replace_all_uses_with(constant)
        folded += 1
    return folded


def merge_duplicates(module: GraphModule) -> int:
    """Give the users of every operation that repeats an earlier one (the same target and arguments)
    the earlier result; how many were merged."""
    protected = _protected(module.graph)
    first: dict[tuple[Any, ...], Node] = {}
    merged = 0
    for node in module.graph.nodes:
        if node.op != "call_function" or not _is_pure(node) or node in protected:
            continue
        key = (node.target, _argument_key(node.args), _argument_key(node.kwargs))
        earlier = first.setdefault(key, node)
        if earlier is not node:
            node.replace_all_uses_with(earlier)
            merged += 1
    return merged


def drop_aliases(module: GraphModule) -> int:
    """Replace every view or copy that has the layout of its source (module docstring) by that source;
    how many were replaced."""
    protected = _protected(module.graph)  # an unprotected node's view chain holds nothing written
    dropped = 0
    for node in module.graph.nodes:
        if node.op != "call_function" or not _is_pure(node) or node in protected:
            continue
        layout = _geometry(module, node)
        if layout is None:
            continue
        for source in _sources(node):
            if _geometry(module, source) == layout:
                node.replace_all_uses_with(source)
                dropped += 1
                break
    return dropped


def _sources(node: Node) -> Iterable[Node]:
    """The tensors ``node`` may stand for: the tensor a copy copies, or the chain of tensors a view
    views (its input, that input's input while it is a view, ...)."""
    if _is_copy(node):
        source = node.args[0]
        if isinstance(source, Node):
            yield source
        return
    while (source := _viewed(node)) is not None:
        yield source
        node = source


def _is_copy(node: Node) -> bool:
    """A copy of its first argument by ATen's definition (``pow`` by exactly 1 copies its base)."""
    if node.target in COPIES:
        return True
    if node.target is POWER:
        exponent = node.args[1] if len(node.args) > 1 else node.kwargs.get("exponent")
        return type(exponent) in (int, float) and exponent == 1
    return False


def _viewed(node: Node) -> Node | None:
    """The tensor ``node``'s result is a view of (or, written in place, is), or None."""
    value = _viewed_value(node)
    return value if isinstance(value, Node) else None


def _viewed_value(node: Node) -> Any:
    """The argument ``node``'s result aliases (a tensor, or a list of them), or None."""
    if not isinstance(node.target, torch._ops.OpOverload):
        return None
    place = _viewed_argument(node.target)
    if place is None:
        return None
    index, name = place
    return node.args[index] if index < len(node.args) else node.kwargs.get(name)


@functools.cache
def _viewed_argument(target: torch._ops.OpOverload) -> tuple[int, str] | None:
    """(position, name) of the argument the single result of ``target`` aliases, from its schema."""
    schema = target._schema
    aliased = [r.alias_info.before_set for r in schema.returns if r.alias_info is not None]
    if len(schema.returns) != 1 or not aliased:
        return None
    for index, argument in enumerate(schema.arguments):
        if argument.alias_info is not None and argument.alias_info.before_set & aliased[0]:
            return index, argument.name
    return None


def _is_pure(node: Node) -> bool:
    """An ATen operation that writes nothing, draws nothing and returns initialized memory."""
    return isinstance(node.target, torch._ops.OpOverload) and _pure_target(node.target)


@functools.cache
def _pure_target(target: torch._ops.OpOverload) -> bool:
    return (
        not target._schema.is_mutable
        and not any(tag in target.tags for tag in UNSAFE_TAGS)
        and target.overloadpacket.__name__ not in UNINITIALIZED
    )


def _protected(graph: torch.fx.Graph) -> set[Node]:
    """The nodes no rewrite may touch: those whose result shares storage with a tensor some operation
    writes in place (or that an operation other than a known ATen one receives: it might write it),
    the nodes that read one of them (a read before a write and one after it differ), and every node
    whose result shares storage with an output (the caller receives memory the unsimplified graph gave
    it, which it may write)."""
    roots: dict[Node, frozenset[Node]] = {}  # the storages each node's result may share
    written_roots: set[Node] = set()
    for node in graph.nodes:
        inputs = node.all_input_nodes
        if node.op == "call_function" and node.target is operator.getitem:
            roots[node] = roots[inputs[0]]
        elif node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload):
            roots[node] = frozenset({node}).union(*(roots[i] for i in _nodes(_viewed_value(node))))
            for index, name in _written_arguments(node.target):
                value = node.args[index] if index < len(node.args) else node.kwargs.get(name)
                written_roots |= {root for value_node in _nodes(value) for root in roots[value_node]}
        elif node.op == "call_function":  # an unknown function: it may write or alias its inputs
            roots[node] = frozenset({node}).union(*(roots[i] for i in inputs))
            written_roots |= {root for i in inputs for root in roots[i]}
        elif node.op == "output":
            roots[node] = frozenset().union(*(roots[i] for i in inputs))
        else:
            roots[node] = frozenset({node})
    output_roots = frozenset().union(*(roots[node] for node in graph.find_nodes(op="output")))
    written = {node for node, shared in roots.items() if shared & written_roots}
    protected = {node for node, shared in roots.items() if shared & output_roots} | written
    protected |= {node for node in graph.nodes if any(i in written for i in node.all_input_nodes)}
    return protected


@functools.cache
def _written_arguments(target: torch._ops.OpOverload) -> tuple[tuple[int, str], ...]:
    """(position, name) of every argument ``target`` writes in place, from its schema."""
    return tuple(
        (index, argument.name)
        for index, argument in enumerate(target._schema.arguments)
        if argument.alias_info is not None and argument.alias_info.is_write
    )


def _nodes(value: Any) -> list[Node]:
    found: list[Node] = []
    map_arg(value, found.append)
    return found


def _constant_inputs(node: Node, values: dict[Node, Any]) -> tuple[Any, dict[str, Any]] | None:
    """``node``'s arguments with constants' values, or None when one is not constant. The first
    argument of a shape-only function stands by a tensor of its recorded geometry."""
    geometry_only = node.target.overloadpacket.__name__ in SHAPE_ONLY
    if geometry_only and isinstance(node.args[0], Node) and node.args[0] not in values:
        shaped = _empty_of(node.args[0].meta.get("val"))
        if shaped is None:
            return None
        values = {**values, node.args[0]: shaped}
    if any(source not in values for source in node.all_input_nodes):
        return None
    return map_arg(node.args, values.__getitem__), map_arg(node.kwargs, values.__getitem__)


def _one_chunk(result: torch.Tensor, inputs: tuple[Any, dict[str, Any]]) -> bool:
    """Whether ``result`` and every tensor input (lists' elements too) have at most ONE_CHUNK
    elements."""
    tensors = [value for value in tree_leaves(inputs) if isinstance(value, torch.Tensor)]
    return all(tensor.numel() <= ONE_CHUNK for tensor in (result, *tensors))


@functools.cache
def _foldable(target: torch._ops.OpOverload) -> bool:
    """An operation ATen computes itself, element by element or by reduction (``pointwise`` or
    ``reduction`` tag), a view, or one that computes nothing (FACTORIES, SHAPE_ONLY, COPIES): not
    one that BLAS or LAPACK computes (``mm``, ``addmm``, ``dot``, ``linalg_*``...), whose rounding
    can depend on the library's thread count and code path."""
    return (
        any(tag in target.tags for tag in (torch.Tag.pointwise, torch.Tag.reduction))
        or _viewed_argument(target) is not None
        or target.overloadpacket.__name__ in FACTORIES | SHAPE_ONLY
        or target in COPIES
    )


def _empty_of(recorded: Any) -> torch.Tensor | None:
    """An uninitialized tensor with the sizes, strides, dtype and device of ``recorded``, or None."""
    if not isinstance(recorded, torch.Tensor):
        return None
    return torch.empty_strided(
        recorded.shape, recorded.stride(), dtype=recorded.dtype, device=recorded.device
    )


def _geometry(module: GraphModule, node: Node) -> Geometry | None:
    """Sizes, strides, offset, dtype, device and negative and conjugate bits of ``node``'s result
    (recorded, or the constant's)."""
    value = _attribute(module, node.target) if node.op == "get_attr" else node.meta.get("val")
    if not isinstance(value, torch.Tensor):
        return None
    return (
        tuple(value.shape),
        value.stride(),
        value.storage_offset(),
        value.dtype,
        value.device,
        value.is_neg(),
        value.is_conj(),
    )


def _argument_key(value: Any) -> Any:
    """A hashable key equal only for the same arguments: nodes and tensors by identity, other values
    by type and ``repr`` (so 0, 0.0, -0.0 and False stay apart)."""
    if isinstance(value, Node):
        return value
    if isinstance(value, torch.Tensor):  # a tensor by identity (its repr can elide values)
        return ("tensor", id(value))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_argument_key(item) for item in value))
    if isinstance(value, dict):
        return tuple((name, _argument_key(item)) for name, item in value.items())
    return (type(value).__name__, repr(value))


def _attribute(module: GraphModule, target: str) -> Any:
    return functools.reduce(getattr, target.split("."), module)


def _free_names(module: GraphModule) -> Iterator[str]:
    """Names for new constants that no attribute of ``module`` has."""
    return (name for index in itertools.count() if not hasattr(module, name := f"{FOLDED}_{index}"))


def _drop_unused_constants(module: GraphModule) -> None:
    """Remove the constants (buffers and plain tensor attributes of the module itself) no node reads
    any more, so that a kept program does not carry them."""
    read = {node.target for node in module.graph.find_nodes(op="get_attr")}
    plain = [name for name, value in vars(module).items() if isinstance(value, torch.Tensor)]
    for name in [*(name for name, _ in module.named_buffers(recurse=False)), *plain]:
        if name not in read:
            delattr(module, name)
