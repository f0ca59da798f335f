"""The recorded Pyro SVI step kept on disk (``backends.torch_program_cache``): a later fit with the same
key loads it and gives the recorded fit's numbers; a kept program that does not fit the step, or a
damaged file, costs a recording and never a wrong number; the folder stays bounded and holds only what
the suite wrote there; the key changes with what the step is recorded from."""

from __future__ import annotations

import errno
import os

import numpy as np
import pyro
import pytest
import torch

from ppl_suite import registry
from ppl_suite.backends import kept_programs, torch_program_cache
from ppl_suite.backends.base import SVIConfig
from ppl_suite.backends.pyro import as_torch, recording_key
from ppl_suite.backends.pyro_draws import check_draws
from ppl_suite.backends.pyro_recorded_step import AdamSteps, RecordedAdamSteps
from ppl_suite.problem import Problem
from ppl_suite.targets.torch_compiled import COMPILED
from tests.test_pyro_compiled_step import EPS, _family_steps, _run

KEY = "a" * 64
RATES = [0.1, 0.05, 0.02, 0.01]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PPL_SUITE_XLA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / torch_program_cache.FOLDER


def _fit(model_name: str, key: str | None, seed: int = 3):
    steps = _family_steps(model_name, RecordedAdamSteps, key=key)
    losses, parameters = _run(steps, RATES, seed=seed)
    assert steps.path == COMPILED
    return steps, losses, parameters


def _same(a, b) -> None:
    losses, parameters = a
    expected_losses, expected = b
    np.testing.assert_array_equal(losses, expected_losses)
    assert parameters.keys() == expected.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(parameters[name], value)


def test_a_kept_step_is_loaded_by_the_next_fit_and_gives_its_numbers(cache):
    first, *recorded = _fit("eight_schools_noncentered", KEY)
    assert not first.loaded
    assert (cache / f"{KEY}{torch_program_cache.SUFFIX}").is_file()
    again, *loaded = _fit("eight_schools_noncentered", KEY)
    assert again.loaded
    _same(loaded, recorded)
    # and both are the eager loop's numbers
    expected = _run(_family_steps("eight_schools_noncentered", AdamSteps), RATES, seed=3)
    np.testing.assert_allclose(loaded[0], expected[0], rtol=100 * EPS, atol=100 * EPS)


def test_a_kept_step_of_another_model_or_a_damaged_file_is_recorded_afresh(cache):
    _fit("normal_normal", KEY)  # kept under the key the next fit asks for
    other, *numbers = _fit("eight_schools_noncentered", KEY)
    assert not other.loaded  # normal_normal's step does not pass eight schools' checks
    _same(numbers, _fit("eight_schools_noncentered", None)[1:])
    assert _fit("eight_schools_noncentered", KEY)[0].loaded  # the fresh recording replaced it

    (cache / f"{KEY}{torch_program_cache.SUFFIX}").write_bytes(b"not a program")
    damaged, *numbers = _fit("eight_schools_noncentered", KEY)
    assert not damaged.loaded
    _same(numbers, _fit("eight_schools_noncentered", None)[1:])


def test_with_the_cache_off_nothing_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("PPL_SUITE_XLA_CACHE", "off")
    monkeypatch.chdir(tmp_path)
    steps, *_ = _fit("normal_normal", KEY)
    assert not steps.loaded
    assert torch_program_cache.folder() is None
    assert list(tmp_path.iterdir()) == []


def test_the_folder_keeps_the_most_recently_used_programs_and_nothing_else_is_touched(cache, monkeypatch):
    steps, *_ = _fit("normal_normal", None)
    keys = [str(index) * 64 for index in range(3)]
    for index, key in enumerate(keys):
        torch_program_cache.keep(key, steps.replay)
        os.utime(cache / f"{key}.pt", (1_000_000 + index, 1_000_000 + index))
    size = (cache / f"{keys[0]}.pt").stat().st_size
    users = cache / "mine.pt"  # a user's file named like a program, and older than every one
    users.write_text("mine")
    os.utime(users, (1, 1))
    stale, fresh = cache / ".partial-old.pt", cache / ".partial-new.pt"  # left by killed processes
    stale.write_bytes(b"x")
    os.utime(stale, (1, 1))
    fresh.write_bytes(b"x")
    assert torch_program_cache.load(keys[0]) is not None  # used now: the most recent
    monkeypatch.setattr(torch_program_cache, "MAX_BYTES", 2 * size)
    torch_program_cache.keep("9" * 64, steps.replay)
    kept = sorted(path.name for path in cache.glob("[0-9]*.pt"))
    assert kept == sorted(f"{key}.pt" for key in (keys[0], "9" * 64))  # keys 1 and 2: least recently used
    assert users.read_text() == "mine"
    assert not stale.exists() and fresh.exists()


@pytest.mark.parametrize("failure", ["save", "disk"])
def test_a_program_that_cannot_be_kept_costs_nothing_but_the_next_recording(cache, monkeypatch, failure):
    if failure == "save":

        def broken_save(*args, **kwargs):
            raise RuntimeError("cannot save")

        monkeypatch.setattr(torch.jit, "save", broken_save)
    else:

        def full_disk(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(kept_programs.os, "fdopen", full_disk)
    steps, *numbers = _fit("eight_schools_noncentered", KEY)
    assert steps.path == COMPILED and not steps.loaded
    _same(numbers, _fit("eight_schools_noncentered", None)[1:])
    assert not cache.exists() or not [path for path in cache.iterdir() if path.suffix == ".pt"]


def test_a_kept_step_of_other_data_of_the_same_shapes_is_not_used(cache):
    # normal_normal with another data set: the program replays, but not the eager step's numbers
    other = _family_steps("normal_normal", RecordedAdamSteps, data_seed=1)
    _run(other, RATES, seed=3)
    torch_program_cache.keep(KEY, other.replay)
    again, *numbers = _fit("normal_normal", KEY)
    assert not again.loaded
    _same(numbers, _fit("normal_normal", None)[1:])


def test_the_key_changes_with_the_data_the_guide_and_the_particles():
    def key(model_name: str, data_seed: int, guide: str, particles: int) -> str:
        problem = Problem.build(model_name, data_seed)
        model = registry.implementation(model_name, "pyro")
        draws = check_draws(model, as_torch(problem.data), as_torch(problem.params))
        return recording_key(problem, guide, SVIConfig(particles=particles), draws)

    base = key("normal_normal", 0, "mean_field", 16)
    assert key("normal_normal", 0, "mean_field", 16) == base
    others = [
        key("normal_normal", 1, "mean_field", 16),
        key("normal_normal", 0, "full_rank", 16),
        key("normal_normal", 0, "mean_field", 8),
        key("eight_schools_noncentered", 0, "mean_field", 16),
    ]
    assert len({base, *others}) == 5
    pyro.clear_param_store()
