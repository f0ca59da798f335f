"""One SVI step of Pyro's ``JitTrace_ELBO``, its compiled loss called directly.

``JitTrace_ELBO.loss_and_surrogate_loss`` traces model and guide once (``torch.jit.trace`` through
``pyro.ops.jit``) into a function of the parameters' unconstrained values and the data tensors that
returns (loss, surrogate loss): loss = -ELBO estimate, gradient of the surrogate = the ELBO's
gradient estimate (reparameterized sites pathwise, others by the score function; Ranganath et al.
2014, Schulman et al. 2015). Each call then still goes through Pyro's wrapper: a lookup and
constraint transform of every parameter in the param store, two poutine contexts, a hashed key of
the arguments; and ``loss_and_grads`` adds ``.item()`` and a NaN check. Here that compiled function
is traced once more, inside a function of those tensors, so each step is one call of one TorchScript
function (Pyro's graph, unchanged), the surrogate's ``backward()``, and the loss returned as a
tensor. Same estimator, same graph, same gradients; only the Python around it is gone.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pyro
import torch
from pyro.infer import JitTrace_ELBO


class CompiledELBOStep:
    """``step()``: the loss (a 0-d tensor, -ELBO estimate), the gradient of the surrogate loss added to
    every parameter's ``.grad``, as ``JitTrace_ELBO.loss_and_grads`` does. The first call creates the
    parameters and compiles."""

    def __init__(
        self, elbo: JitTrace_ELBO, model: Callable, guide: Callable, tensors: dict[str, torch.Tensor]
    ):
        self.elbo, self.model, self.guide, self.tensors = elbo, model, guide, tensors
        self.compiled: Callable | None = None
        self.parameters: tuple[torch.Tensor, ...] = ()
        self.inputs: tuple[torch.Tensor, ...] = ()

    def _compile(self) -> None:
        self.elbo.loss_and_surrogate_loss(self.model, self.guide, self.tensors)  # Pyro's trace; parameters
        self.parameters = tuple(value for _, value in pyro.get_param_store().named_parameters())
        names, count = tuple(self.tensors), len(self.parameters)

        def loss_and_surrogate_loss(*inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            # the parameters are read from the param store by identity: the inputs are those tensors
            tensors = dict(zip(names, inputs[count:], strict=True))
            return self.elbo.loss_and_surrogate_loss(self.model, self.guide, tensors)

        self.inputs = (*self.parameters, *self.tensors.values())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
            self.compiled = torch.jit.trace(loss_and_surrogate_loss, self.inputs, check_trace=False)

    def __call__(self) -> torch.Tensor:
        if self.compiled is None:
            self._compile()
        loss, surrogate = self.compiled(*self.inputs)
        # backward, not torch.autograd.grad: accumulating into .grad gives each gradient its
        # parameter's layout (a raw gradient can be a broadcast view, which fused Adam misreads)
        surrogate.backward()
        return loss.detach()
