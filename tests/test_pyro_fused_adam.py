"""The Pyro backend's eager Adam step (``backends.pyro_recorded_step.AdamSteps``: the kernel
``torch._fused_adam_`` called directly) is ``torch.optim.Adam(fused=True)``'s step bit for bit:
parameters, moments and step counts, for parameters of two dtypes and one whose first gradient comes
at the second step."""

from __future__ import annotations

import torch

from ppl_suite.backends.base import ADAM_BETAS, ADAM_EPS
from ppl_suite.backends.pyro_recorded_step import AdamSteps

RATES = [0.1, 0.05, 0.05, 0.01]


def _parameters() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [
        torch.randn(3, 2, dtype=torch.float64, generator=generator).requires_grad_(),
        torch.randn(4, dtype=torch.float32, generator=generator).requires_grad_(),
        torch.randn(2, dtype=torch.float64, generator=generator).requires_grad_(),
    ]


def _loss_and_grads(parameters: list[torch.Tensor], step: list[int]):
    """A loss of every parameter but the last at the first call, of all of them after; its gradients
    added to ``.grad``."""

    def loss_and_grads() -> torch.Tensor:
        matrix, vector, late = parameters
        loss = (matrix.sin() ** 2).sum() + (vector.double() - 1.0).pow(4).sum()
        if step[0] > 0:
            loss = loss + (late * matrix[0]).exp().sum()
        step[0] += 1
        loss.backward()
        return loss.detach()

    return loss_and_grads


def test_the_eager_adam_step_is_torch_fused_adams_step_bit_for_bit():
    ours, theirs = _parameters(), _parameters()
    steps = AdamSteps(_loss_and_grads(ours, [0]), lambda: ours, ADAM_BETAS, ADAM_EPS)
    torch_loss = _loss_and_grads(theirs, [0])
    optimizer = torch.optim.Adam(theirs, lr=RATES[0], betas=ADAM_BETAS, eps=ADAM_EPS, fused=True)
    for rate in RATES:
        loss = steps(rate)
        optimizer.param_groups[0]["lr"] = rate
        assert torch.equal(loss, torch_loss())
        optimizer.step()
        optimizer.zero_grad()
        for mine, torch_parameter in zip(ours, theirs, strict=True):
            assert torch.equal(mine, torch_parameter) and mine.grad is None
            state = optimizer.state[torch_parameter]
            if not state:  # no gradient yet: no moments either
                assert mine not in steps.state
                continue
            moments = steps.state[mine]
            assert torch.equal(moments.exp_avg, state["exp_avg"])
            assert torch.equal(moments.exp_avg_sq, state["exp_avg_sq"])
            assert moments.step.dtype == state["step"].dtype and torch.equal(moments.step, state["step"])
    assert steps.state[ours[2]].step.item() == len(RATES) - 1  # its first gradient at the second step
