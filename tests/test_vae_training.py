"""Training the digits VAE: settings, the shared minibatch order, the libraries' minibatch ELBO, and
the three backends' agreement."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pyro
import pytest
import torch
from numpyro.infer import Trace_ELBO as NumPyroTraceELBO
from pyro.infer import Trace_ELBO as PyroTraceELBO

from models.vae_digits import data, network, numpyro_impl, pyro_impl
from ppl_suite.vae.jax_segments import CHUNK, chunk_lengths
from ppl_suite.vae.train_handrolled import minibatch_loss
from ppl_suite.vae.training import BACKENDS, TrainingSettings, default_checkpoints, minibatches, train

N_TRAIN = 1297


@pytest.fixture(scope="module")
def digits() -> data.VAEData:
    return data.load()


def test_default_checkpoints_are_log_spaced_and_end_at_steps():
    assert default_checkpoints(1000) == (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
    assert default_checkpoints(15_000)[-6:] == (500, 1000, 2000, 5000, 10_000, 15_000)
    assert TrainingSettings(steps=30).checkpoints == (0, 1, 2, 5, 10, 20, 30)


def test_given_checkpoints_are_sorted_and_get_0_and_steps():
    assert TrainingSettings(steps=40, checkpoints=(30, 7, 7)).checkpoints == (0, 7, 30, 40)


def test_bad_settings_get_one_message_each():
    with pytest.raises(ValueError) as error:
        TrainingSettings(steps=0, lr=-1.0, batch_size=2.5)
    message = str(error.value)
    assert "steps must be an integer >= 1" in message and "lr must be a finite real number > 0" in message
    assert "batch_size must be an integer >= 1" in message
    problems = TrainingSettings.problems({"steps": 10, "checkpoints": (3, 11, -1), "learning_rate": 1.0})
    assert problems == [
        "unknown training setting 'learning_rate'; valid: latent_dim, hidden, steps, batch_size, lr, seed, "
        "particles, noise_seed, checkpoints",
        "each checkpoint must be an integer in [0, 10], got 11",
        "each checkpoint must be an integer in [0, 10], got -1",
    ]
    with pytest.raises(ValueError, match="unknown backend 'stan'; valid: pyro, numpyro, handrolled"):
        train("stan", data.load(), TrainingSettings(steps=1))


def test_minibatches_are_epochwise_permutations_fixed_by_the_seed():
    settings = TrainingSettings(steps=30, batch_size=100)
    batches = minibatches(settings, N_TRAIN)
    assert batches.shape == (30, 100) and batches.min() >= 0 and batches.max() < N_TRAIN
    per_epoch = N_TRAIN // 100
    for epoch in (batches[:per_epoch], batches[per_epoch : 2 * per_epoch]):
        assert len(np.unique(epoch)) == per_epoch * 100  # no image twice within an epoch
    assert not np.array_equal(batches[:per_epoch], batches[per_epoch : 2 * per_epoch])
    np.testing.assert_array_equal(minibatches(settings, N_TRAIN), batches)
    assert not np.array_equal(minibatches(TrainingSettings(steps=30, seed=1), N_TRAIN), batches)
    with pytest.raises(ValueError, match="batch_size must be at most the training set's size 50, got 100"):
        minibatches(settings, 50)


def full_data_elbo(weights, x, particles: int, seed: int) -> tuple[float, float]:
    """sum_n ELBO(x_n) by network.py with ``particles`` draws per image, and its standard error."""
    eps = np.random.default_rng(seed).normal(size=(particles, *x.shape[:-1], weights["enc_b_loc"].shape[0]))
    terms = network.elbo_terms(weights, x, eps)
    return float(terms.mean(0).sum()), float(np.sqrt((terms.var(0, ddof=1) / particles).sum()))


@pytest.fixture(scope="module")
def full_data_reference(digits) -> tuple[float, float]:
    """The full-data ELBO at ``network.init_weights(1)`` and its SE: the truth every backend's minibatch
    ELBO is checked against (independent of each backend's minibatch draws). Shared by the three
    backends' tests: each is as strong alone, their false alarms are correlated."""
    return full_data_elbo(network.init_weights(1), digits.train, particles=200, seed=1)


def within_4_se(replicates: np.ndarray, exact: float, exact_se: float) -> tuple[bool, str]:
    mean, se = replicates.mean(), replicates.std(ddof=1) / np.sqrt(len(replicates))
    bound = 4 * np.hypot(se, exact_se)
    note = f"minibatch mean {mean:.1f} (SE {se:.1f}) vs full {exact:.1f} (SE {exact_se:.1f})"
    return abs(mean - exact) < bound, note


def test_numpyro_minibatch_elbo_is_unbiased_for_the_full_data_elbo(digits, full_data_reference):
    """-loss of NumPyro's Trace_ELBO on the subsampled plate, over many shared minibatches and keys,
    averages to the full-data ELBO (a missing N / B would be off by a factor 13)."""
    weights, x = network.init_weights(1), digits.train
    replicates = 2000
    batches = jnp.asarray(minibatches(TrainingSettings(steps=replicates, seed=7), N_TRAIN))
    model, guide = numpyro_impl.make_model(weights), numpyro_impl.make_guide(weights)
    elbo = NumPyroTraceELBO()
    params = {name: jnp.asarray(value) for name, value in weights.items()}

    @jax.jit
    def minus_losses(keys, batches):
        return jax.vmap(lambda key, batch: -elbo.loss(key, params, model, guide, jnp.asarray(x), batch))(
            keys, batches
        )

    values = np.asarray(minus_losses(jax.random.split(jax.random.PRNGKey(0), replicates), batches))
    ok, note = within_4_se(values, *full_data_reference)
    assert ok, note


def test_handrolled_minibatch_elbo_is_unbiased_for_the_full_data_elbo(digits, full_data_reference):
    weights, x = network.init_weights(1), digits.train
    replicates = 2000
    batches = jnp.asarray(minibatches(TrainingSettings(steps=replicates, seed=9), N_TRAIN))
    params = {name: jnp.asarray(value) for name, value in weights.items()}
    losses = jax.jit(jax.vmap(lambda key, batch: minibatch_loss(params, jnp.asarray(x), batch, key, 1)))
    values = -np.asarray(losses(jax.random.split(jax.random.PRNGKey(1), replicates), batches))
    ok, note = within_4_se(values, *full_data_reference)
    assert ok, note


def test_pyro_minibatch_elbo_is_unbiased_for_the_full_data_elbo(digits, full_data_reference):
    weights, x = network.init_weights(1), digits.train
    replicates = 400
    batches = torch.as_tensor(minibatches(TrainingSettings(steps=replicates, seed=8), N_TRAIN))
    model, guide, elbo = pyro_impl.make_model(weights), pyro_impl.make_guide(weights), PyroTraceELBO()
    pyro.get_param_store().clear()
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(0)
            values = np.array([-elbo.loss(model, guide, torch.tensor(x), batch) for batch in batches])
    finally:
        pyro.get_param_store().clear()
    ok, note = within_4_se(values, *full_data_reference)
    assert ok, note


@pytest.fixture(scope="module")
def noiseless_runs(digits):
    """Ten steps of each backend from weights whose encoder scale is softplus(-60) = 9e-27 for every
    image: z = loc + scale * eps rounds to loc exactly, so no backend's random stream matters and the
    three must follow one deterministic trajectory."""
    weights = network.init_weights(0)
    weights["enc_w_scale"] = np.zeros_like(weights["enc_w_scale"])
    weights["enc_b_scale"] = np.full_like(weights["enc_b_scale"], -60.0)
    settings = TrainingSettings(steps=10, particles=2)  # the vectorized particles too
    runs = {backend: train(backend, digits, settings, init=weights) for backend in BACKENDS}
    return weights, settings, runs


# float64 round-off bound for these runs: each loss sums B * 64 = 6 400 terms, whose worst-case
# relative rounding error is 6 400 * 2^-53 = 7e-13; ten steps of Adam (whose update is scale-free)
# carry relative errors of that size into the weights. A different minibatch, scaling, init, or Adam
# beta or eps moves the weights by up to lr = 1e-3 per step, and the losses by far more than 1e-12.
ROUND_OFF = 1e-12


def test_first_loss_is_the_exact_scaled_minibatch_elbo_in_every_backend(noiseless_runs, digits):
    weights, settings, runs = noiseless_runs
    x = digits.train[minibatches(settings, N_TRAIN)[0]]
    loc, _ = network.encode(weights, x)
    elbo = network.log_joint(weights, loc, x) - network.log_guide(weights, loc, x)  # z = loc exactly
    exact = -N_TRAIN / len(x) * elbo.sum()
    for run in runs.values():
        assert abs(run.losses[0] / exact - 1) < ROUND_OFF, run.backend


def test_backends_follow_the_same_trajectory_from_the_same_weights_and_batches(noiseless_runs):
    weights, _, runs = noiseless_runs
    reference = runs["handrolled"]
    for run in runs.values():
        np.testing.assert_allclose(run.losses, reference.losses, rtol=ROUND_OFF, atol=0)
        for step, snapshot in reference.checkpoints.items():
            for name, value in snapshot.items():
                np.testing.assert_allclose(run.checkpoints[step][name], value, rtol=0, atol=ROUND_OFF)
    moved = max(np.abs(reference.weights[name] - weights[name]).max() for name in weights)
    assert moved > 1e3 * ROUND_OFF  # the trajectory is not trivially the start


@pytest.fixture(scope="module")
def short_runs(digits):
    settings = TrainingSettings(steps=200, checkpoints=(200,))
    return settings, {backend: train(backend, digits, settings) for backend in BACKENDS}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_trained_vae_holds_its_checkpoints_losses_and_times(short_runs, backend):
    settings, runs = short_runs
    run, start = runs[backend], network.init_weights(settings.seed)
    assert run.backend == backend and run.settings == settings
    assert sorted(run.checkpoints) == [0, 200] and run.losses.shape == (200,)
    assert all(np.array_equal(run.checkpoints[0][name], start[name]) for name in start)
    assert all(np.array_equal(run.checkpoints[200][name], run.weights[name]) for name in start)
    assert {name: value.shape for name, value in run.weights.items()} == network.shapes(2, 64)
    assert min(run.seconds, run.cpu_seconds, run.compile_seconds) > 0 and np.isfinite(run.losses).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_lowers_the_loss(short_runs, backend):
    """The mean loss of the last 50 steps lies below that of the first 50 by more than 4 SE."""
    first, last = short_runs[1][backend].losses[:50], short_runs[1][backend].losses[-50:]
    se = np.hypot(first.std(ddof=1), last.std(ddof=1)) / np.sqrt(50)
    assert first.mean() - last.mean() > 4 * se


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_noise_seed_moves_only_the_noise(short_runs, digits, backend):
    """noise_seed = seed is the default run, step for step; another noise seed keeps the minibatches
    (and the initial weights, drawn from the seed) and draws other noise from the first step."""
    settings, runs = short_runs
    short = dataclasses.replace(settings, steps=20, checkpoints=(20,))
    default = runs[backend].losses[:20]  # the default run's first 20 steps
    np.testing.assert_array_equal(
        train(backend, digits, dataclasses.replace(short, noise_seed=0)).losses, default
    )
    other = dataclasses.replace(short, noise_seed=1)
    np.testing.assert_array_equal(minibatches(other, N_TRAIN), minibatches(short, N_TRAIN))
    assert not np.any(train(backend, digits, other).losses == default)


def test_a_pyro_fit_leaves_no_parameters_and_no_generator_state_behind(digits):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train("pyro", digits, TrainingSettings(steps=2))
    assert not list(pyro.get_param_store().keys())
    torch.testing.assert_close(torch.rand(3), expected)


@pytest.mark.parametrize("n", [1, 99, 100, 3050, 15_000])
def test_jax_segments_cover_every_step_with_two_programs_at_most(n):
    lengths = chunk_lengths(n)
    assert sum(lengths) == n and set(lengths) <= {1, CHUNK}
