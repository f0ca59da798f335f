"""The digits VAE's data, network and library implementations: the three agree at shared weights."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pyro
import pytest
import torch
from numpyro.infer.util import log_density
from pyro import poutine
from scipy import special, stats

import models
from models.vae_digits import data, network, numpyro_impl, pyro_impl

ATOL = 1e-6  # the conformance tolerance (absolute, on log densities of a few images)
# the images of each JAX check, one number for all: JAX compiles each of its operations once per shape
IMAGES = 6


@pytest.fixture(scope="module")
def digits() -> data.VAEData:
    return data.load()


def random_weights(seed: int, latent_dim: int = 3, hidden: int = 7) -> dict[str, np.ndarray]:
    """Weights with nonzero biases too (init_weights sets them to 0), of order 1."""
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=shape) for name, shape in network.shapes(latent_dim, hidden).items()}


def test_data_shapes_binary_and_labels(digits):
    assert digits.train.shape == (1297, 64) and digits.test.shape == (500, 64)
    assert digits.train.dtype == digits.test.dtype == np.float64
    for images in (digits.train, digits.test):
        assert set(np.unique(images)) == {0.0, 1.0}
    assert digits.train_labels.shape == (1297,) and digits.test_labels.shape == (500,)
    labels = np.concatenate([digits.train_labels, digits.test_labels])
    assert np.issubdtype(labels.dtype, np.integer) and set(labels) == set(range(10))


def test_split_is_the_documented_fixed_permutation_and_disjoint(digits):
    table = data._table()
    assert table.shape == (1797, 65) and table[:, :64].min() == 0 and table[:, :64].max() == 16
    order = np.random.default_rng(0).permutation(1797)
    test, train = order[:500], order[500:]
    assert not set(test) & set(train) and len(set(test) | set(train)) == 1797
    np.testing.assert_array_equal(digits.test, table[test, :64] >= 8)
    np.testing.assert_array_equal(digits.train, table[train, :64] >= 8)
    np.testing.assert_array_equal(digits.train_labels, table[train, 64])
    again = data.load()
    np.testing.assert_array_equal(again.train, digits.train)
    again.train[0, 0] = 2.0  # fresh arrays: a caller's edit does not reach the next load
    assert data.load().train[0, 0] != 2.0


def test_the_vae_folder_is_not_a_registered_cell_model():
    assert "vae_digits" not in models.names()


def test_init_weights_shapes_determinism_and_glorot_scale():
    weights = network.init_weights(4, latent_dim=3, hidden=50)
    assert {k: v.shape for k, v in weights.items()} == network.shapes(3, 50)
    assert set(weights) == {*network.DECODER, *network.ENCODER}
    assert all(np.array_equal(weights[k], v) for k, v in network.init_weights(4, 3, 50).items())
    assert not np.array_equal(weights["enc_w1"], network.init_weights(5, 3, 50)["enc_w1"])
    assert all(not weights[name].any() for name in ("dec_b1", "dec_b2", "enc_b1", "enc_b_loc", "enc_b_scale"))
    w = weights["enc_w1"]  # 64 x 50 draws of N(0, 2 / 114): sample variance within 4 SE of it
    variance = 2.0 / sum(w.shape)
    assert abs(w.var() - variance) < 4 * variance * np.sqrt(2.0 / w.size)


def test_densities_match_scipy():
    weights, rng = random_weights(0), np.random.default_rng(1)
    x, z = (rng.random((5, 64)) < 0.4).astype(float), rng.normal(size=(5, 3))
    p = special.expit(network.decoder_logits(weights, z))
    np.testing.assert_allclose(
        network.log_likelihood(weights, z, x), stats.bernoulli.logpmf(x, p).sum(-1), rtol=1e-12
    )
    np.testing.assert_allclose(network.log_prior(z), stats.norm.logpdf(z).sum(-1), rtol=1e-12)
    loc, scale = network.encode(weights, x)
    np.testing.assert_allclose(
        network.log_guide(weights, z, x), stats.norm.logpdf(z, loc, scale).sum(-1), rtol=1e-12
    )
    eps = rng.normal(size=(4, 5, 3))
    z_draws = network.reparametrize(weights, x, eps)
    np.testing.assert_allclose(z_draws, loc + scale * eps)
    np.testing.assert_allclose(
        network.elbo_terms(weights, x, eps),
        network.log_joint(weights, z_draws, x) - network.log_guide(weights, z_draws, x),
    )


def test_softplus_is_stable_at_extremes():
    a = np.array([-800.0, -60.0, 0.0, 60.0, 800.0])
    np.testing.assert_allclose(
        network.softplus(a), [0.0, np.exp(-60.0), np.log(2.0), 60.0, 800.0], rtol=1e-15
    )


def test_network_gives_the_same_numbers_in_numpy_jax_and_torch():
    weights, rng = random_weights(2), np.random.default_rng(3)
    x, z = (rng.random((IMAGES, 64)) < 0.5).astype(float), rng.normal(size=(IMAGES, 3))
    in_jax = {k: jnp.asarray(v) for k, v in weights.items()}
    in_torch = {k: torch.tensor(v) for k, v in weights.items()}
    for numpy_value, jax_value, torch_value in [
        (network.log_joint(weights, z, x), network.log_joint(in_jax, jnp.asarray(z), jnp.asarray(x), jnp),
         network.log_joint(in_torch, torch.tensor(z), torch.tensor(x), pyro_impl.TORCH)),
        (network.log_guide(weights, z, x), network.log_guide(in_jax, jnp.asarray(z), jnp.asarray(x), jnp),
         network.log_guide(in_torch, torch.tensor(z), torch.tensor(x), pyro_impl.TORCH)),
    ]:  # fmt: skip
        np.testing.assert_allclose(np.asarray(jax_value), numpy_value, rtol=1e-12)
        np.testing.assert_allclose(torch_value.numpy(), numpy_value, rtol=1e-12)


def pyro_log_density(make, weights, x, z, batch=None) -> float:
    """log density of a Pyro model or guide's trace at latents z (the trace's scaled log_prob_sum)."""
    pyro.get_param_store().clear()
    try:
        conditioned = poutine.condition(make(weights), data={"z": torch.tensor(z)})
        batch = None if batch is None else torch.as_tensor(batch)
        trace = poutine.trace(conditioned).get_trace(torch.tensor(x), batch)
        return trace.log_prob_sum().item()
    finally:
        pyro.get_param_store().clear()


def numpyro_log_density(make, weights, x, z, batch=None) -> float:
    args = (jnp.asarray(x),) if batch is None else (jnp.asarray(x), jnp.asarray(batch))
    return float(_compiled_log_density(make, weights, jnp.asarray(z), args))


@functools.partial(jax.jit, static_argnums=0)
def _compiled_log_density(make, weights, z, args):
    """NumPyro's log density at the weights and z as one compiled program (NumPyro's operations run
    one by one are each a program of their own, compiled once per shape)."""
    return log_density(make(weights), args, {}, {**weights, "z": z})[0]


@pytest.mark.parametrize("seed", [0, 1])
def test_log_joint_agrees_in_pyro_numpyro_and_network(seed, digits):
    """Pyro's and NumPyro's model log densities (whole data plate) equal network.log_joint summed
    over the images, at random weights and latents."""
    weights, rng = random_weights(seed), np.random.default_rng(seed + 10)
    x, z = digits.train[:IMAGES], 2 * rng.normal(size=(IMAGES, 3))
    expected = network.log_joint(weights, z, x).sum()
    assert abs(pyro_log_density(pyro_impl.make_model, weights, x, z) - expected) < ATOL
    assert abs(numpyro_log_density(numpyro_impl.make_model, weights, x, z) - expected) < ATOL


@pytest.mark.parametrize("seed", [0, 1])
def test_guide_log_density_agrees_in_pyro_numpyro_and_network(seed, digits):
    weights, rng = random_weights(seed), np.random.default_rng(seed + 20)
    x, z = digits.test[:IMAGES], rng.normal(size=(IMAGES, 3))
    loc, scale = network.encode(weights, x)
    expected = stats.norm.logpdf(z, loc, scale).sum()
    assert abs(pyro_log_density(pyro_impl.make_guide, weights, x, z) - expected) < ATOL
    assert abs(numpyro_log_density(numpyro_impl.make_guide, weights, x, z) - expected) < ATOL


@pytest.mark.parametrize("make", [pyro_impl.make_model, pyro_impl.make_guide, numpyro_impl.make_model,
                                  numpyro_impl.make_guide], ids=["pyro-model", "pyro-guide", "numpyro-model",
                                                                 "numpyro-guide"])  # fmt: skip
def test_subsampled_plate_uses_the_given_indices_and_scales_by_n_over_b(make, digits):
    """With batch indices, the library's log density is (N / B) times the sum over exactly those
    images: the scaling that makes -loss an unbiased estimate of the full-data ELBO."""
    weights, rng = random_weights(3), np.random.default_rng(30)
    x, batch = digits.train[:40], np.array([31, 2, 17, 8, 25, 12])  # IMAGES of the 40, unsorted
    assert len(batch) == IMAGES
    z = rng.normal(size=(len(batch), 3))
    density = network.log_joint if make.__name__ == "make_model" else network.log_guide
    expected = len(x) / len(batch) * density(weights, z, x[batch]).sum()
    compute = pyro_log_density if make.__module__ == pyro_impl.__name__ else numpyro_log_density
    assert abs(compute(make, weights, x, z, batch) - expected) < ATOL
