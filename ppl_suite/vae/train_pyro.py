"""Training the VAE with Pyro, eager, float64: ``SVI`` with ``Trace_ELBO`` over the data plate
subsampled at the shared minibatch indices (``pyro.plate(..., subsample=batch)`` in
``models/vae_digits/pyro_impl.py``: the library scales the minibatch by N / B).

Each step is what ``pyro.infer.SVI.step`` does, written out as the suite's Pyro backend writes it:
``Trace_ELBO.loss_and_grads`` fills the gradients, then one ``torch.optim.Adam`` over all parameters
steps (``pyro.optim.Adam`` would hold one optimizer per parameter: the same update, and a slower
step). The parameter store is cleared before and after the fit, and torch's global generator is
forked, so a fit leaves no state behind and depends on its seeds alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pyro
import torch
from pyro.infer import Trace_ELBO

from models.vae_digits import network, pyro_impl
from ppl_suite.backends.base import ADAM_BETAS, ADAM_EPS
from ppl_suite.vae.training import TrainedVAE, TrainingSettings


def fit(
    x: np.ndarray, init: Mapping[str, np.ndarray], batches: np.ndarray, settings: TrainingSettings
) -> TrainedVAE:
    def make_step():
        elbo = Trace_ELBO(num_particles=settings.particles, vectorize_particles=True, max_plate_nesting=1)
        model, guide = pyro_impl.make_model(init), pyro_impl.make_guide(init)
        return lambda images, batch: elbo.loss_and_grads(model, guide, images, batch)

    return fit_eagerly(
        make_step, (*network.DECODER, *network.ENCODER), x, init, batches, settings, fused=True
    )


def fit_eagerly(
    make_step: Callable[[], Callable[[torch.Tensor, torch.Tensor], float]],
    names: tuple[str, ...],
    x: np.ndarray,
    init: Mapping[str, np.ndarray],
    batches: np.ndarray,
    settings: Any,
    fused: bool | None = None,
    one_thread: bool = False,
) -> TrainedVAE:
    """Pyro's loop: ``make_step()`` (called with torch's generator forked and seeded by
    ``settings.noise``) gives step(images, batch), the loss that also fills the gradients; one
    ``torch.optim.Adam`` (``fused`` as torch takes it) over the parameters the first step created
    steps after it; the weights ``names`` kept at ``settings.checkpoints``; torch at one thread during
    the fit when ``one_thread``, its setting restored after."""
    store = pyro.get_param_store()
    store.clear()
    images, indices = torch.tensor(x, dtype=torch.float64), torch.as_tensor(batches)
    marks = set(settings.checkpoints)
    snapshots = {0: {name: value.copy() for name, value in init.items()}}
    losses = np.empty(settings.steps)
    setup_seconds, threads = 0.0, torch.get_num_threads()
    if one_thread:
        torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]), pyro.validation_enabled(False):
            torch.manual_seed(settings.noise)
            step = make_step()
            optimizer, seconds, cpu_seconds = None, 0.0, 0.0
            for t in range(settings.steps):
                start, cpu_start = time.perf_counter(), time.process_time()
                losses[t] = step(images, indices[t])
                if optimizer is None:  # the first step created the parameters
                    parameters = [value for _, value in store.named_parameters()]
                    optimizer = torch.optim.Adam(
                        parameters, lr=settings.lr, betas=ADAM_BETAS, eps=ADAM_EPS, fused=fused
                    )
                optimizer.step()
                optimizer.zero_grad()
                elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
                if t == 0:
                    setup_seconds = elapsed  # parameter creation and torch.optim's lazy imports
                else:
                    seconds, cpu_seconds = seconds + elapsed, cpu_seconds + cpu
                if t + 1 in marks:
                    snapshots[t + 1] = {name: store[name].detach().numpy().copy() for name in names}
    finally:
        store.clear()
        if one_thread:
            torch.set_num_threads(threads)
    return TrainedVAE(
        backend="pyro",
        settings=settings,
        weights=snapshots[settings.steps],
        checkpoints=snapshots,
        losses=losses,
        seconds=seconds,
        compile_seconds=setup_seconds,
        cpu_seconds=cpu_seconds,
    )
