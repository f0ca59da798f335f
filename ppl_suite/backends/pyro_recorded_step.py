"""Pyro's SVI step (``JitTrace_ELBO`` or ``JitTraceEnum_ELBO`` gradient, fused Adam), recorded whole
once and replayed.

A step of the loop is, for parameters p (unconstrained), Adam's moments m, v, step count t, rate lr_t:

    loss, surrogate = the ELBO's loss (-ELBO estimate) and surrogate loss at p, particles drawn now
    g = d surrogate / d p           (reparameterized sites pathwise, others by the score function;
                                     Ranganath et al. 2014, Schulman et al. 2015; enumerated sites
                                     summed out, Obermeyer et al. 2019)
    m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2
    p = p - lr_t / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)      (Kingma & Ba 2015)

Eagerly (``AdamSteps``) that is Pyro's traced forward (``CompiledELBOStep`` for ``JitTrace_ELBO``,
``JitTraceEnum_ELBO.loss_and_grads``), the autograd engine's backward, and the kernel of
``torch.optim.Adam(fused=True)``: each tensor operation pays Python and the autograd engine's
per-node work, which is nearly the whole step on these small models. Here the whole step, forward,
its gradient (``torch.autograd.grad``: make_fx records the backward's ATen operations, as AOTAutograd
does) and the update (``aten._fused_adam``, the functional form of that kernel), is recorded once as
one graph of ATen operations (``make_fx``, then ``torch.jit.trace``: ``loss_body`` says how for each
ELBO) and replayed without Python in between, on the loop's own tensors (written back to the
parameter store for snapshots and at the end), in inference mode (``replayed``: the graph holds its
own gradient, so autograd's per-operation bookkeeping is skipped: about a tenth of a step's time on
the shipped models, ``benchmarks/results.md``). The same operations in the same order, less those
that compute nothing new at a replay (constants folded, duplicates merged, aliases dropped:
``graph_simplification``): the replay's numbers are the eager step's, bit for bit where TorchScript
runs the same kernels.

The step draws the guide's particles: the recording replays the draws (``aten.normal_`` and the like
read torch's global generator at each call), so a fit stays reproducible for a seed. The recording is
made after the first (eager) step, under a forked generator, so the fit's draws are those of the eager
loop. It is kept only when no operation turns a tensor into a Python number and, replayed at the
loop's state and at a perturbed one (at the same generator state), it gives the eager step's loss and
new parameters and moments to ``torch_compiled.AGREEMENT``; otherwise, or if a replay raises, the loop
goes on eagerly and ``path`` says why. The recording and its checks cost 0.2-0.7 s of one core
(make_fx is most of it) and save 0.4-0.9 ms a step (2-3x fewer CPU seconds a step on the shipped
models): a run of fewer than ``RECORD_MIN_STEPS`` steps stays eager. The first recording in a
process also imports ``torch._dynamo`` (make_fx needs it): about 1.2 s of CPU, once; a step loaded
from the program cache does not (the eager step's Adam is the fused kernel called directly, not
``torch.optim.Adam``, whose constructor imports it). Given a ``key`` (the backend's
``recording_key``), a checked recording is kept on disk (``torch_program_cache``) and a later fit with
that key loads it, checks it the same way, and records afresh only if it fails.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import pyro
import torch
from pyro import poutine
from pyro.infer import JitTrace_ELBO, JitTraceEnum_ELBO
from torch.distributions import transform_to

from ppl_suite.backends import torch_program_cache
from ppl_suite.backends.pyro_compiled_step import CompiledELBOStep
from ppl_suite.targets.torch_compiled import (
    COMPILED,
    EAGER,
    NotRecorded,
    agree,
    first_line,
    record,
)

State = tuple[torch.Tensor, ...]  # parameters, first moments, second moments (each in one fixed order)
# Pyro's loss as a function of the data tensors: (loss, surrogate loss)
LossBody = Callable[[dict[str, torch.Tensor]], tuple[torch.Tensor, torch.Tensor]]
Recorder = Callable[[Callable[..., State], State], Callable[..., State]]  # (step, inputs) -> its replay
JitELBO = JitTrace_ELBO | JitTraceEnum_ELBO
RECORD_MIN_STEPS = 1000  # about where the recording's cost equals what it saves (module docstring)
CHECK_SEED = 0  # the generator's seed for the checks of a recording (forked: the fit's draws are untouched)


@dataclass(frozen=True)
class AdamMoments:
    """A parameter's Adam state as ``torch.optim.Adam(fused=True)`` keeps it: first and second moments
    (the parameter's shape and dtype) and the step count t (a 0-d float32 tensor)."""

    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor
    step: torch.Tensor

    @classmethod
    def zeros_like(cls, parameter: torch.Tensor) -> AdamMoments:
        zeros = partial(torch.zeros_like, parameter, memory_format=torch.preserve_format)
        return cls(zeros(), zeros(), torch.zeros((), dtype=torch.float32, device=parameter.device))


class AdamSteps:
    """Step with rate ``lr``: ``loss_and_grads()`` (the loss; gradients added to ``.grad``), then one
    Adam step over ``parameters()`` (read after the first call, which creates them), gradients set to
    None: what ``pyro.infer.SVI.step`` does with one optimizer for all parameters. The update is
    ``torch.optim.Adam(fused=True)``'s, written out: per device and dtype, t += 1 then the kernel
    ``torch._fused_adam_`` on the parameters that have a gradient (their moments made at their first
    gradient); ``state`` holds each parameter's moments. The optimizer class is not used because its
    constructor imports ``torch._dynamo`` (about 1.6 s of CPU per process), which a step loaded from
    the program cache otherwise never needs."""

    def __init__(
        self,
        loss_and_grads: Callable[[], torch.Tensor | float],
        parameters: Callable[[], list[torch.Tensor]],
        betas: tuple[float, float],
        eps: float,
    ):
        self.loss_and_grads, self.parameters = loss_and_grads, parameters
        self.betas, self.eps = betas, eps
        self.state: dict[torch.Tensor, AdamMoments] = {}
        self._stepped: list[torch.Tensor] | None = None

    def __call__(self, lr: float) -> torch.Tensor | float:
        loss = self.loss_and_grads()
        if self._stepped is None:
            self._stepped = self.parameters()
        groups: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
        for parameter in self._stepped:
            if parameter.grad is not None:
                if parameter not in self.state:
                    self.state[parameter] = AdamMoments.zeros_like(parameter)
                groups.setdefault((parameter.device, parameter.dtype), []).append(parameter)
        with torch.no_grad():
            for group in groups.values():
                moments = [self.state[parameter] for parameter in group]
                counts = [moment.step for moment in moments]
                torch._foreach_add_(counts, 1)
                torch._fused_adam_(
                    group,
                    [parameter.grad for parameter in group],
                    [moment.exp_avg for moment in moments],
                    [moment.exp_avg_sq for moment in moments],
                    [],
                    counts,
                    lr=lr,
                    beta1=self.betas[0],
                    beta2=self.betas[1],
                    weight_decay=0.0,
                    eps=self.eps,
                    amsgrad=False,
                    maximize=False,
                )
        for parameter in self._stepped:
            parameter.grad = None
        return loss

    def write_back(self) -> None:
        """The parameters are updated in place: nothing to write."""


def eager_loss_and_grads(
    elbo: JitELBO, model: Callable, guide: Callable, tensors: dict[str, torch.Tensor]
) -> Callable[[], torch.Tensor | float]:
    """The eager step's loss and gradients: ``CompiledELBOStep`` for ``JitTrace_ELBO``,
    ``JitTraceEnum_ELBO.loss_and_grads`` itself for the enumerated ELBO."""
    if isinstance(elbo, JitTraceEnum_ELBO):
        return partial(elbo.loss_and_grads, model, guide, tensors)
    return CompiledELBOStep(elbo, model, guide, tensors)


def loss_body(elbo: JitELBO, model: Callable, guide: Callable) -> tuple[LossBody, Recorder]:
    """Pyro's loss as a function of the data tensors, reading its parameters with ``pyro.param``
    (tensors -> loss, surrogate loss), and how a step around it is recorded.

    ``JitTrace_ELBO``: its ``loss_and_surrogate_loss`` untraced (the function ``pyro.ops.jit`` traced
    at the first step), recorded on fake tensors (``torch_compiled.record``: a value read raises).
    ``JitTraceEnum_ELBO``: its ``differentiable_loss``, the Dice surrogate with the enumerated sites
    summed out (tensor variable elimination, Obermeyer et al. 2019), whose value is the loss and whose
    gradient the ELBO's estimate, so it is both; called as the eager step calls it, through the
    TorchScript function Pyro traced, recorded on real tensors (``torch_compiled.record`` with ``real``): its
    expectation keeps the terms of nonzero probability (``masked_select``, under TorchScript
    tracing), an output whose size depends on values, which fake tensors cannot follow, and which
    untraced Python would replace by a branch on ``mask.all()``, read into Python."""
    if isinstance(elbo, JitTraceEnum_ELBO):

        def enumerated(tensors: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
            loss = elbo.differentiable_loss(model, guide, tensors)
            return loss, loss

        return enumerated, partial(record, draws=True, real=True)
    body = partial(elbo._loss_and_surrogate_loss.fn, _pyro_model_id=id(model), _pyro_guide_id=id(guide))
    return body, partial(record, draws=True)


class RecordedAdamSteps:
    """``AdamSteps`` of ``JitTrace_ELBO`` or ``JitTraceEnum_ELBO`` on ``model`` and ``guide``
    (functions of the ``tensors`` dict), the first step eager, the others replayed from a recording
    of one whole step (module docstring), or eager when it cannot be recorded or the run has fewer
    than RECORD_MIN_STEPS ``steps`` (``path`` says why). ``write_back()`` puts the current
    parameters in the param store (and the moments in the eager step's state)."""

    def __init__(
        self,
        elbo: JitELBO,
        model: Callable,
        guide: Callable,
        tensors: dict[str, torch.Tensor],
        betas: tuple[float, float],
        eps: float,
        steps: int,
        key: str | None = None,
    ):
        self.elbo, self.model, self.guide, self.tensors = elbo, model, guide, tensors
        self.key = key  # of what the step is recorded from (``torch_program_cache``); None: not kept
        self.eager = AdamSteps(
            eager_loss_and_grads(elbo, model, guide, tensors), trainable_parameters, betas, eps
        )
        self.failure: str | None = None
        if steps < RECORD_MIN_STEPS:
            self.failure = (
                f"{steps} steps, fewer than {RECORD_MIN_STEPS}: recording would cost more than it saves"
            )
        self.replay: Callable[..., State] | None = None
        self.state: State = ()
        self.count = 0  # steps taken (Adam's t of the last)
        self.loaded = False  # the recording was loaded from the program cache, not made here

    @property
    def path(self) -> str:
        """COMPILED when steps replay the recording, else EAGER with the reason."""
        if self.failure is not None:
            return f"{EAGER}: {self.failure}"
        return COMPILED if self.replay is not None else f"{EAGER}: not recorded yet"

    def __call__(self, lr: float) -> torch.Tensor | float:
        if self.replay is not None:
            try:
                loss, *state = replayed(self.replay, step_inputs(lr, self.count + 1, self.state))
            except Exception as error:  # the state is untouched (the replay returns new tensors)
                self._fail(f"a replay failed ({first_line(error)})")
            else:
                self.state, self.count = tuple(state), self.count + 1
                return loss
        loss = self.eager(lr)
        self.count += 1
        if self.failure is None and self.replay is None:
            self._record(lr)
        return loss

    def write_back(self) -> None:
        if self.replay is None:
            return
        parameters = trainable_parameters()
        count = len(parameters)
        with torch.no_grad():
            for index, parameter in enumerate(parameters):
                parameter.copy_(self.state[index])
                moments = self.eager.state[parameter]
                moments.exp_avg.copy_(self.state[count + index])
                moments.exp_avg_sq.copy_(self.state[2 * count + index])
                moments.step.fill_(self.count)

    def _fail(self, reason: str) -> None:
        """Step eagerly from here on, from the replay's state, saying why."""
        self.write_back()
        self.failure, self.replay = reason, None

    def _step(self) -> tuple[Callable[..., State], Recorder]:
        """One whole step as a function of (lr, t, *parameters, *m, *v) -> (loss, *parameters, *m, *v),
        the parameters bound into Pyro's loss (``loss_body``) by ``poutine.replay`` as ``pyro.ops.jit``
        binds them; and how it is recorded."""
        names = [name for name, _ in pyro.get_param_store().named_parameters()]
        constraints = pyro.get_param_store().get_state()["constraints"]
        body, recorder = loss_body(self.elbo, self.model, self.guide)
        count, (beta1, beta2), eps = len(names), self.eager.betas, self.eager.eps

        def step(lr: torch.Tensor, t: torch.Tensor, *state: torch.Tensor) -> State:
            parameters, m, v = state[:count], state[count : 2 * count], state[2 * count :]
            with torch.enable_grad():
                leaves = [parameter.detach().requires_grad_() for parameter in parameters]
                constrained = {}
                for name, leaf in zip(names, leaves, strict=True):
                    constrained[name] = transform_to(constraints[name])(leaf)
                    constrained[name].unconstrained = weakref.ref(leaf)  # as the param store's values
                loss, surrogate = poutine.replay(body, params=constrained)(self.tensors)
                # contiguous: a raw gradient can be a broadcast view, which fused Adam misreads
                gradients = [gradient.contiguous() for gradient in torch.autograd.grad(surrogate, leaves)]
            stepped, _, m, v, _ = torch.ops.aten._fused_adam(
                [leaf.detach() for leaf in leaves],
                gradients,
                list(m),
                list(v),
                [],
                [t] * count,
                lr=lr,
                beta1=beta1,
                beta2=beta2,
                weight_decay=0.0,
                eps=eps,
                amsgrad=False,
                maximize=False,
            )
            return (loss.detach(), *stepped, *m, *v)

        return step, recorder

    def _record(self, lr: float) -> None:
        """Record the step at the loop's state after the first step (or load the program kept for
        ``key``), check it, keep it or fail."""
        parameters = trainable_parameters()
        if any(parameter not in self.eager.state for parameter in parameters):
            self._fail("a parameter had no gradient at the first step")
            return
        moments = [self.eager.state[parameter] for parameter in parameters]
        state = (
            *(parameter.detach() for parameter in parameters),
            *(moment.exp_avg for moment in moments),
            *(moment.exp_avg_sq for moment in moments),
        )
        inputs = step_inputs(lr, self.count + 1, state)
        with torch.random.fork_rng(devices=[]), pyro.validation_enabled(False):
            step, recorder = self._step()
            if self._load_kept(step, inputs, len(parameters)):
                self.state = state
                return
            try:
                replay = recorder(step, inputs)
                if not _agrees(step, replay, inputs, len(parameters)):
                    self._fail("the recorded step disagrees with the eager step")
                    return
            except NotRecorded as refused:
                self._fail(refused.reason)
                return
            except Exception as error:  # the model at a state it never met, or TorchScript
                self._fail(f"checking the recorded step failed ({first_line(error)})")
                return
        if self.key is not None:
            torch_program_cache.keep(self.key, replay)
        self.state, self.replay = state, replay

    def _load_kept(self, step: Callable[..., State], inputs: State, count: int) -> bool:
        """Replay the program kept under ``key`` from now on, if there is one and it passes a fresh
        recording's checks at this fit's state; else nothing changes."""
        kept = torch_program_cache.load(self.key) if self.key is not None else None
        if kept is None:
            return False
        try:
            if not _agrees(step, kept, inputs, count):
                return False
        except Exception:  # a kept program that does not fit this step: record afresh
            return False
        self.replay, self.loaded = kept, True
        return True


def step_inputs(lr: float, t: int, state: State) -> State:
    """A recorded step's inputs: the rate (float64) and Adam's step count t (float32, as torch keeps
    it) as 0-d tensors, then ``state``. ``torch.full`` makes them in about half of ``torch.tensor``'s
    time (the same values), a few microseconds a step."""
    return (torch.full((), lr, dtype=torch.float64), torch.full((), float(t), dtype=torch.float32), *state)


def replayed(replay: Callable[..., State], inputs: State) -> State:
    """``replay`` (a recorded step) at ``inputs`` (lr, t, *parameters, *m, *v), run in inference mode:
    the recording holds its own gradient operations, so the autograd engine's per-operation
    bookkeeping (its dispatch, version counters, views) is skipped; the kernels and their numbers are
    the same. The outputs are inference tensors, read outside it only by copies."""
    with torch.inference_mode():
        return replay(*inputs)


def trainable_parameters(module: torch.nn.Module | None = None) -> list[torch.Tensor]:
    """Every trainable tensor once: the param store's (unconstrained values, in its order), then
    ``module``'s own."""
    found = [value for _, value in pyro.get_param_store().named_parameters()]
    found += list(module.parameters()) if module is not None else []
    return list({id(t): t for t in found}.values())


def _agrees(step: Callable[..., State], replay: Callable[..., State], inputs: State, count: int) -> bool:
    """Whether ``replay`` gives ``step``'s loss, parameters and moments (at the same generator state)
    at ``inputs``, at a perturbed point, and at ``inputs`` again (TorchScript optimizes after a run).
    Raises what the step or the replay raises."""
    for point in (inputs, _perturbed(inputs, count), inputs):
        torch.manual_seed(CHECK_SEED)
        expected = step(*point)
        torch.manual_seed(CHECK_SEED)
        if not agree(tuple(replayed(replay, point)), expected):
            return False
    return True


def _perturbed(inputs: tuple[torch.Tensor, ...], count: int) -> tuple[torch.Tensor, ...]:
    """Another point of the step: half the rate, a later step, every parameter and first moment moved
    by standard normal noise and every second moment by its square (fixed seed)."""
    generator = torch.Generator().manual_seed(0)
    lr, t, *state = inputs

    def noise(value: torch.Tensor) -> torch.Tensor:
        return torch.randn(value.shape, dtype=value.dtype, generator=generator)

    moved = [value + noise(value) for value in state[: 2 * count]]
    moved += [value + noise(value) ** 2 for value in state[2 * count :]]
    return (lr / 2, t + 10, *moved)
