"""Training the VQ-VAE with Pyro, eager, float64, over the data plate subsampled at the shared
minibatch indices: ``TraceEnum_ELBO`` with the guide's sites enumerated (the exact ELBO) or
``Trace_ELBO`` (Pyro's score-function estimator for the discrete sites); the vq objective, which no
ELBO class computes, is ``network.vq_loss`` in torch. One ``torch.optim.Adam`` over every parameter,
as in ``ppl_suite.vae.train_pyro``; the parameter store is cleared before and after, torch's global
generator forked, and torch runs one thread during the fit (on a few shared cores, the many threads
of its default slowed the enumerated sum about threefold), its setting restored after."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO

from models.vqvae_digits import network, pyro_impl
from ppl_suite.vae.train_pyro import fit_eagerly
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


def fit(
    x: np.ndarray,
    init: Mapping[str, np.ndarray],
    batches: np.ndarray,
    settings: VQTrainingSettings,
    objective: str,
) -> TrainedVAE:
    return fit_eagerly(
        lambda: loss_function(objective, settings, init), NAMES, x, init, batches, settings, one_thread=True
    )
