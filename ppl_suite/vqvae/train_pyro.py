"""Training the VQ-VAE with Pyro, eager, float64, over the data plate subsampled at the shared
minibatch indices: ``TraceEnum_ELBO`` with the guide's sites enumerated (the exact ELBO) or
``Trace_ELBO`` (Pyro's score-function estimator for the discrete sites); the vq objective, which no
ELBO class computes, is ``network.vq_loss`` in torch. One ``torch.optim.Adam`` over every parameter,
as in ``ppl_suite.vae.train_pyro``; the parameter store is cleared before and after, torch's global
generator forked, and torch runs one thread during the fit (on a few shared cores, the many threads
of its default slowed the enumerated sum about threefold), its setting restored after."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import pyro
import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO

from models.vqvae_digits import network, pyro_impl
from ppl_suite.backends.base import ADAM_BETAS, ADAM_EPS
from ppl_suite.vae.training import TrainedVAE
from ppl_suite.vqvae.training import VQTrainingSettings

NAMES = (*network.DECODER, *network.ENCODER)


def loss_function(objective: str, settings: VQTrainingSettings, init: Mapping[str, np.ndarray]):
    """loss(images, batch) -> float that also fills the parameters' gradients."""
    if objective == "vq":

        def vq(images, batch):
            weights = pyro_impl.params(NAMES, init)
            value = (images.shape[0] / batch.shape[0]) * network.vq_loss(
                weights, images[batch], settings.beta, torch.Tensor.detach, pyro_impl.TORCH
            ).sum()
            value.backward()
            return value.item()

        return vq
    enumerated = objective == "enumerated"
    if enumerated:
        elbo = TraceEnum_ELBO(max_plate_nesting=1)
    else:
        elbo = Trace_ELBO(num_particles=settings.particles, vectorize_particles=True, max_plate_nesting=1)
    model = pyro_impl.make_model(init)
    guide = pyro_impl.make_guide(init, settings.temperature, enumerated)
    return lambda images, batch: elbo.loss_and_grads(model, guide, images, batch)


def weights_of(store) -> dict[str, np.ndarray]:
    """The parameter store's weights as NumPy copies."""
    return {name: store[name].detach().numpy().copy() for name in NAMES}


def fit(
    x: np.ndarray,
    init: Mapping[str, np.ndarray],
    batches: np.ndarray,
    settings: VQTrainingSettings,
    objective: str,
) -> TrainedVAE:
    store = pyro.get_param_store()
    store.clear()
    images, indices = torch.tensor(x, dtype=torch.float64), torch.as_tensor(batches)
    marks = set(settings.checkpoints)
    snapshots = {0: {name: value.copy() for name, value in init.items()}}
    losses = np.empty(settings.steps)
    setup_seconds, threads = 0.0, torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]), pyro.validation_enabled(False):
            torch.manual_seed(settings.noise)
            step = loss_function(objective, settings, init)
            optimizer, seconds, cpu_seconds = None, 0.0, 0.0
            for t in range(settings.steps):
                start, cpu_start = time.perf_counter(), time.process_time()
                losses[t] = step(images, indices[t])
                if optimizer is None:  # the first step created the parameters
                    parameters = [value for _, value in store.named_parameters()]
                    optimizer = torch.optim.Adam(parameters, lr=settings.lr, betas=ADAM_BETAS, eps=ADAM_EPS)
                optimizer.step()
                optimizer.zero_grad()
                elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
                if t == 0:
                    setup_seconds = elapsed
                else:
                    seconds, cpu_seconds = seconds + elapsed, cpu_seconds + cpu
                if t + 1 in marks:
                    snapshots[t + 1] = weights_of(store)
    finally:
        store.clear()
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
